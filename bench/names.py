"""Payloads that name their server, for the synthetic capture of ``bench/replay.py``.

- ``tls_client_hello``: a TLS 1.3 ClientHello in one TLS record, the first bytes a client sends on
  a TLS connection: a Chrome-like cipher list and extensions (GREASE included), the server name,
  ALPN h2 / http/1.1, padded with the padding extension to an exact size.
- ``quic_initial``: a QUIC v1 client Initial packet (RFC 9000 §17.2.2) carrying that kind of
  ClientHello in a CRYPTO frame, padded to 1200 bytes and protected as RFC 9001 §5 says: keys
  derived from the Destination Connection ID, AES-128-GCM payload protection, AES-ECB header
  protection. Anyone can remove that protection, which is how a passive monitor reads the SNI.
- ``http_request`` / ``http_response``: HTTP/1.1 messages with a Host header, of a given size.

Everything random comes from the caller's ``random.Random``: the capture stays deterministic.
"""

from __future__ import annotations

import hashlib
import hmac
import random

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

GREASE = tuple(0x0A0A + 0x1010 * i for i in range(16))
"""RFC 8701 GREASE values: clients offer a random one among real ciphers, extensions, groups."""
CIPHER_SUITES = (
    0x1301,  # TLS_AES_128_GCM_SHA256
    0x1302,  # TLS_AES_256_GCM_SHA384
    0x1303,  # TLS_CHACHA20_POLY1305_SHA256
    0xC02B,  # ECDHE-ECDSA-AES128-GCM-SHA256
    0xC02F,  # ECDHE-RSA-AES128-GCM-SHA256
    0xC02C,
    0xC030,
    0xCCA9,
    0xCCA8,
    0xC013,
    0xC014,
    0x009C,
    0x009D,
    0x002F,
    0x0035,
)
SIGNATURE_ALGORITHMS = (0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601)
X25519, SECP256R1, SECP384R1, X25519_MLKEM768 = 0x001D, 0x0017, 0x0018, 0x11EC
MLKEM768_SHARE = 1184 + 32  # ML-KEM-768 encapsulation key, then the X25519 share

QUIC_V1 = 0x00000001
QUIC_V1_SALT = bytes.fromhex("38762cf7f55934b34d179ae6a4c80cadccbb7f0a")
QUIC_INITIAL_SIZE = 1200
"""A client pads its first Initial to at least 1200 bytes (RFC 9000 §14.1)."""

# Extension types
_SERVER_NAME, _STATUS_REQUEST, _SUPPORTED_GROUPS, _EC_POINT_FORMATS = 0x00, 0x05, 0x0A, 0x0B
_SIGNATURE_ALGORITHMS, _ALPN, _SCT, _PADDING = 0x0D, 0x10, 0x12, 0x15
_EXTENDED_MASTER_SECRET, _COMPRESS_CERTIFICATE, _SESSION_TICKET = 0x17, 0x1B, 0x23
_SUPPORTED_VERSIONS, _PSK_MODES, _KEY_SHARE = 0x2B, 0x2D, 0x33
_QUIC_TRANSPORT_PARAMETERS, _APPLICATION_SETTINGS, _RENEGOTIATION_INFO = 0x39, 0x4469, 0xFF01


def _u8v(data: bytes) -> bytes:
    return len(data).to_bytes(1, "big") + data


def _u16v(data: bytes) -> bytes:
    return len(data).to_bytes(2, "big") + data


def _u16s(values: tuple[int, ...]) -> bytes:
    return b"".join(v.to_bytes(2, "big") for v in values)


def _ext(kind: int, data: bytes = b"") -> bytes:
    return kind.to_bytes(2, "big") + _u16v(data)


def _varint(value: int) -> bytes:
    """A QUIC variable-length integer (RFC 9000 §16), in the shortest form."""
    for prefix, size in ((0x00, 1), (0x40, 2), (0x80, 4), (0xC0, 8)):
        if value < 1 << (8 * size - 2):
            return (value | prefix << (8 * size - 8)).to_bytes(size, "big")
    raise ValueError(value)


_Randoms = tuple[tuple[int, int, int, int, int], bytes, bytes, bytes]
"""GREASE values (cipher, first and last extension, group, version), random, session id, key."""


def _greases(rng: random.Random) -> tuple[int, int, int, int, int]:
    """GREASE values for the cipher list, the first and last extension, groups and versions."""
    first, last = rng.sample(GREASE, 2)  # two GREASE extensions must differ
    return rng.choice(GREASE), first, last, rng.choice(GREASE), rng.choice(GREASE)


def _client_hello(
    rng: random.Random,
    server_name: str,
    *,
    quic_parameters: bytes | None = None,
    post_quantum: bool = False,
    padding: int | None = None,
    randoms: _Randoms | None = None,
) -> tuple[bytes, _Randoms]:
    """The ClientHello handshake message (type, 3-byte length, body) and the random parts it
    used (so the same hello can be rebuilt with padding). QUIC hellos (``quic_parameters``) offer
    TLS 1.3 only, ALPN h3 and no session id (RFC 9001 §8.4)."""
    quic = quic_parameters is not None
    if randoms is None:
        randoms = (
            _greases(rng),
            rng.randbytes(32),
            b"" if quic else rng.randbytes(32),
            rng.randbytes(MLKEM768_SHARE if post_quantum else 32),
        )
    (g_cipher, g_first, g_last, g_group, g_version), client_random, session_id, key = randoms
    ciphers = (g_cipher, *(CIPHER_SUITES[:3] if quic else CIPHER_SUITES))
    groups = (g_group, *((X25519_MLKEM768,) if post_quantum else ()), X25519, SECP256R1, SECP384R1)
    shares = g_group.to_bytes(2, "big") + _u16v(b"\x00")
    shares += (X25519_MLKEM768 if post_quantum else X25519).to_bytes(2, "big") + _u16v(key)
    alpn = (b"h3",) if quic else (b"h2", b"http/1.1")
    versions = (g_version, 0x0304) if quic else (g_version, 0x0304, 0x0303)
    name = server_name.encode("ascii")
    extensions = [
        _ext(g_first),
        _ext(_SERVER_NAME, _u16v(b"\x00" + _u16v(name))),
        _ext(_EXTENDED_MASTER_SECRET),
        _ext(_SUPPORTED_GROUPS, _u16v(_u16s(groups))),
        _ext(_ALPN, _u16v(b"".join(_u8v(p) for p in alpn))),
        _ext(_STATUS_REQUEST, b"\x01\x00\x00\x00\x00"),
        _ext(_SIGNATURE_ALGORITHMS, _u16v(_u16s(SIGNATURE_ALGORITHMS))),
        _ext(_SCT),
        _ext(_KEY_SHARE, _u16v(shares)),
        _ext(_PSK_MODES, b"\x01\x01"),
        _ext(_SUPPORTED_VERSIONS, _u8v(_u16s(versions))),
        _ext(_COMPRESS_CERTIFICATE, b"\x02\x00\x02"),  # brotli
        _ext(_APPLICATION_SETTINGS, _u16v(_u8v(alpn[0]))),
    ]
    if quic:
        extensions.append(_ext(_QUIC_TRANSPORT_PARAMETERS, quic_parameters or b""))
    else:
        extensions[3:3] = [_ext(_RENEGOTIATION_INFO, b"\x00")]
        extensions[5:5] = [_ext(_EC_POINT_FORMATS, b"\x01\x00"), _ext(_SESSION_TICKET)]
    extensions.append(_ext(g_last, b"\x00"))
    if padding is not None:
        extensions.append(_ext(_PADDING, bytes(padding)))
    body = (
        b"\x03\x03"
        + client_random
        + _u8v(session_id)
        + _u16v(_u16s(ciphers))
        + b"\x01\x00"  # compression: null only
        + _u16v(b"".join(extensions))
    )
    return b"\x01" + len(body).to_bytes(3, "big") + body, randoms


def tls_client_hello(rng: random.Random, server_name: str, size: int) -> bytes:
    """A TLS record (0x16 0x03 0x01) holding a ClientHello for ``server_name``, padded to exactly
    ``size`` bytes with the padding extension. Hellos of 1,500 bytes or more carry an
    X25519MLKEM768 key share, as browsers' post-quantum hellos do (and span two TCP segments)."""
    message, randoms = _client_hello(rng, server_name, post_quantum=size >= 1500)
    room = size - (5 + len(message)) - 4  # the padding extension's own header takes 4 bytes
    if room < 0:
        raise ValueError(f"a ClientHello for {server_name!r} does not fit in {size} bytes")
    message, _ = _client_hello(
        rng, server_name, post_quantum=size >= 1500, padding=room, randoms=randoms
    )
    return b"\x16\x03\x01" + _u16v(message)


# --- QUIC -----------------------------------------------------------------------------------------


def _expand_label(secret: bytes, label: bytes, length: int) -> bytes:
    """TLS 1.3 HKDF-Expand-Label with an empty context (outputs up to 32 bytes: one block)."""
    full = b"tls13 " + label
    info = length.to_bytes(2, "big") + _u8v(full) + b"\x00"
    return hmac.digest(secret, info + b"\x01", hashlib.sha256)[:length]


def client_initial_keys(dcid: bytes) -> tuple[bytes, bytes, bytes]:
    """(key, iv, hp) protecting a v1 client's Initial packets (RFC 9001 §5.2)."""
    initial_secret = hmac.digest(QUIC_V1_SALT, dcid, hashlib.sha256)  # HKDF-Extract
    secret = _expand_label(initial_secret, b"client in", 32)
    return (
        _expand_label(secret, b"quic key", 16),
        _expand_label(secret, b"quic iv", 12),
        _expand_label(secret, b"quic hp", 16),
    )


def _transport_parameters(scid: bytes) -> bytes:
    """A browser's usual QUIC transport parameters (RFC 9000 §18.2)."""
    params = (
        (0x01, _varint(30_000)),  # max_idle_timeout, ms
        (0x03, _varint(1472)),  # max_udp_payload_size
        (0x04, _varint(15_728_640)),  # initial_max_data
        (0x05, _varint(6_291_456)),  # initial_max_stream_data_bidi_local
        (0x06, _varint(6_291_456)),  # initial_max_stream_data_bidi_remote
        (0x07, _varint(6_291_456)),  # initial_max_stream_data_uni
        (0x08, _varint(100)),  # initial_max_streams_bidi
        (0x09, _varint(103)),  # initial_max_streams_uni
        (0x0F, scid),  # initial_source_connection_id
    )
    return b"".join(_varint(kind) + _varint(len(value)) + value for kind, value in params)


def quic_initial(
    rng: random.Random,
    server_name: str,
    dcid: bytes,
    scid: bytes,
    packet_number: int = 0,
    size: int = QUIC_INITIAL_SIZE,
) -> bytes:
    """A client's first QUIC v1 Initial: a CRYPTO frame with the whole ClientHello, PADDING
    frames up to ``size`` bytes, AEAD and header protection applied (RFC 9001 §5.3, §5.4)."""
    hello, _ = _client_hello(rng, server_name, quic_parameters=_transport_parameters(scid))
    crypto = b"\x06" + _varint(0) + _varint(len(hello)) + hello
    pn_len = 4
    first = 0xC0 | (pn_len - 1)  # long header, fixed bit, type Initial, packet number length
    start = (
        first.to_bytes(1, "big") + QUIC_V1.to_bytes(4, "big") + _u8v(dcid) + _u8v(scid) + b"\x00"
    )  # no token
    length = size - len(start) - 2  # the Length field (2 bytes) covers packet number + payload
    plaintext = crypto + bytes(length - pn_len - 16 - len(crypto))  # PADDING frames are zeros
    if len(plaintext) < len(crypto):
        raise ValueError(f"a ClientHello for {server_name!r} does not fit in {size} bytes")
    header = start + (0x4000 | length).to_bytes(2, "big") + packet_number.to_bytes(pn_len, "big")
    key, iv, hp = client_initial_keys(dcid)
    nonce = (int.from_bytes(iv, "big") ^ packet_number).to_bytes(12, "big")
    sealed = AESGCM(key).encrypt(nonce, plaintext, header)
    sample = sealed[4 - pn_len : 20 - pn_len]  # 16 bytes from 4 bytes past the packet number
    encryptor = Cipher(algorithms.AES(hp), modes.ECB()).encryptor()
    mask = encryptor.update(sample) + encryptor.finalize()
    pn_at = len(header) - pn_len
    protected_pn = bytes(b ^ m for b, m in zip(header[pn_at:], mask[1 : 1 + pn_len], strict=True))
    return bytes([header[0] ^ (mask[0] & 0x0F)]) + header[1:pn_at] + protected_pn + sealed


# --- HTTP -----------------------------------------------------------------------------------------

_API_PATHS = ("/v1/chat/completions", "/v1/embeddings", "/api/models", "/simple/", "/v2/")


def http_request(rng: random.Random, host: str, size: int) -> bytes:
    """An HTTP/1.1 request with a Host header, about ``size`` bytes: a POST with a JSON body
    when there is room for one, else a GET (never shorter than its headers)."""
    path = rng.choice(_API_PATHS)
    common = (
        f"Host: {host}\r\nUser-Agent: python-httpx/0.27.0\r\nAccept: application/json\r\n"
        "Accept-Encoding: gzip, deflate\r\nConnection: keep-alive\r\n"
    )
    get = f"GET {path} HTTP/1.1\r\n{common}\r\n".encode()
    head = f"POST {path} HTTP/1.1\r\n{common}Content-Type: application/json\r\nContent-Length: "
    for digits in (2, 3, 4):  # the Content-Length value's own length counts too
        body_len = size - len(head) - 4 - digits  # 4: the "\r\n\r\n" ending the headers
        if len(str(body_len)) == digits and body_len >= 16:
            body = b'{"input": "' + b"x" * (body_len - 13) + b'"}'
            return f"{head}{body_len}\r\n\r\n".encode() + body
    return get


def http_response(size: int) -> bytes:
    """An HTTP/1.1 200 response of ``size`` bytes (at least its headers)."""
    head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
    body_len = max(2, size - len(head) - 4 - len(str(size)))
    return f"{head}{body_len}\r\n\r\n".encode() + b"{" + b" " * (body_len - 2) + b"}"
