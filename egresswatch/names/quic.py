"""The TLS ClientHello inside QUIC v1 and v2 client Initial packets.

QUIC encrypts even its first packets, but with keys anyone can derive from the Destination
Connection ID the client chose (RFC 9001 §5.2; RFC 9369 §3.3 for version 2), so a passive observer
can read the ClientHello, and with it the server name. The ClientHello travels in CRYPTO frames that
may be split over several Initial packets and datagrams, arrive out of order, or be retransmitted
with overlaps; ``InitialCollector`` puts it back together.

Pure: bytes in, a result out; no I/O, no clock. Memory per collector stays under ``2 * limit``
bytes plus a few keys. Nothing here raises on any input: giving up is a short reason string.

Reasons, once final:

- ``quic_undecryptable``: too many Initial packets failed to decrypt with any known keys.
- ``quic_too_large``: the ClientHello is longer than the collector's ``limit``.
- ``quic_too_fragmented``: more than 64 separate pieces of the CRYPTO stream were pending.
- ``quic_malformed``: an authenticated Initial has broken frame encoding, or the first handshake
  message is not a ClientHello.
- ``quic_no_client_hello``: 128 datagrams passed without completing the ClientHello.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass
from typing import NamedTuple

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "QUIC_V1",
    "QUIC_V2",
    "InitialCollector",
    "InitialKeys",
    "InitialPacket",
    "client_initial_keys",
    "crypto_frames",
    "initial_packets",
    "initial_version",
    "unprotect",
]

QUIC_V1 = 0x00000001
QUIC_V2 = 0x6B3343CF

_MAX_CID = 20  # RFC 9000 §17.2: a v1 (and v2) endpoint drops longer connection IDs
_SAMPLE = 16  # header protection samples 16 bytes, 4 bytes past the packet number's start
_MAX_FRAGMENTS = 64
_MAX_FAILURES = 16
_MAX_PENDING = 8
_MAX_DATAGRAMS = 128
_MAX_KEYS = 8
_MAX_WORKING = 4
_CLIENT_HELLO = 0x01

_PADDING, _PING, _ACK, _ACK_ECN, _CRYPTO, _CONNECTION_CLOSE = 0x00, 0x01, 0x02, 0x03, 0x06, 0x1C
# Clients pad Initials to 1200 bytes with PADDING frames: skipping the run in C, not byte by byte,
# makes frame parsing several times faster.
_NOT_PADDING = re.compile(rb"[^\x00]")


@dataclass(frozen=True, slots=True, kw_only=True)
class _Version:
    salt: bytes
    """Initial salt: HKDF-Extract(salt, client DCID) is the initial secret."""
    initial: int
    """Long-header type bits of an Initial packet (v2 reassigned them on purpose, RFC 9369 §3.2)."""
    retry: int
    """Type bits of a Retry, the one long-header packet without a Length field."""
    label: bytes
    """Prefix of the key, iv and hp labels: b"quic " for v1, b"quicv2 " for v2."""


_VERSIONS = {
    QUIC_V1: _Version(
        salt=bytes.fromhex("38762cf7f55934b34d179ae6a4c80cadccbb7f0a"),
        initial=0,
        retry=3,
        label=b"quic ",
    ),
    QUIC_V2: _Version(
        salt=bytes.fromhex("0dede3def700a6db819381be6e269dcbf9bd2ed9"),
        initial=1,
        retry=0,
        label=b"quicv2 ",
    ),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class InitialKeys:
    """Packet protection keys for one direction of the Initial packet number space."""

    key: bytes
    """AES-128-GCM key for the payload."""
    iv: bytes
    """12-byte IV; the nonce is this XOR the packet number."""
    hp: bytes
    """AES-128 key whose ECB encryption of a payload sample masks the header."""


@dataclass(frozen=True, slots=True, kw_only=True)
class InitialPacket:
    """One Initial packet cut out of a (possibly coalesced) datagram, still protected."""

    version: int
    """QUIC_V1 or QUIC_V2."""
    dcid: bytes
    """Destination Connection ID as sent: it may differ from the one the keys come from."""
    data: bytes
    """The packet, from its first byte to the end of its Length field's span."""
    pn_offset: int
    """Where the protected packet number starts in ``data``."""


def initial_version(datagram: bytes) -> int | None:
    """The version if this UDP payload starts with a QUIC v1 or v2 Initial packet, else None.

    The fixed bit is not checked: RFC 9287 lets a client grease it, and the AEAD tag is the real
    test of whether a packet is QUIC.
    """
    span = _long_header(datagram, 0)
    return span.version if span is not None and span.initial else None


def initial_packets(datagram: bytes) -> list[InitialPacket]:
    """The v1/v2 Initial packets among the coalesced packets of one datagram, in order.

    Other long-header packets are skipped by their Length; a short-header packet, a Retry or an
    unknown version ends the datagram (none of them says where it stops).
    """
    packets = []
    start = 0
    while start < len(datagram):
        span = _long_header(datagram, start)
        if span is None:
            break
        if span.initial:
            packets.append(
                InitialPacket(
                    version=span.version,
                    dcid=datagram[start + 6 : span.scid_at],
                    data=datagram[start : span.end],
                    pn_offset=span.pn_at - start,
                )
            )
        start = span.end
    return packets


def client_initial_keys(version: int, dcid: bytes) -> InitialKeys:
    """Client Initial keys for a Destination Connection ID (RFC 9001 §5.2, RFC 9369 §3.3.1-2).

    ``version`` must be QUIC_V1 or QUIC_V2 (KeyError otherwise).
    """
    spec = _VERSIONS[version]
    initial_secret = hmac.digest(spec.salt, dcid, "sha256")  # HKDF-Extract
    secret = _expand_label(initial_secret, b"client in", 32)
    return InitialKeys(
        key=_expand_label(secret, spec.label + b"key", 16),
        iv=_expand_label(secret, spec.label + b"iv", 12),
        hp=_expand_label(secret, spec.label + b"hp", 16),
    )


def unprotect(
    packet: InitialPacket, keys: InitialKeys, largest_pn: int = -1
) -> tuple[int, bytes] | None:
    """Remove header protection and decrypt: (packet number, frames), or None if keys don't fit.

    ``largest_pn`` is the largest packet number decrypted so far in this space, which the
    truncated packet number on the wire is relative to (RFC 9000 §17.1).
    """
    data, pn_at = packet.data, packet.pn_offset
    sample = data[pn_at + 4 : pn_at + 4 + _SAMPLE]
    if len(sample) < _SAMPLE:
        return None
    mask = Cipher(algorithms.AES(keys.hp), modes.ECB()).encryptor().update(sample)
    first = data[0] ^ (mask[0] & 0x0F)
    pn_len = (first & 0x03) + 1
    truncated = int.from_bytes(data[pn_at : pn_at + pn_len], "big")
    truncated ^= int.from_bytes(mask[1 : 1 + pn_len], "big")
    pn = _decode_packet_number(largest_pn, truncated, pn_len * 8)
    nonce = (int.from_bytes(keys.iv, "big") ^ pn).to_bytes(12, "big")
    aad = bytes([first]) + data[1:pn_at] + truncated.to_bytes(pn_len, "big")
    ciphertext = data[pn_at + pn_len :]  # the sample check left at least a tag's worth
    try:
        return pn, AESGCM(keys.key).decrypt(nonce, ciphertext, aad)
    except InvalidTag:
        return None


def crypto_frames(frames: bytes) -> list[tuple[int, bytes]] | None:
    """(offset, data) of each CRYPTO frame in a decrypted Initial payload; None if malformed.

    Reading stops, keeping what came before, at the first frame type an Initial packet may not
    carry (RFC 9000 §12.4): its layout is unknown here, so nothing after it can be trusted.
    """
    pieces: list[tuple[int, bytes]] = []
    pos: int | None = 0
    while pos is not None and pos < len(frames):
        kind = frames[pos]
        if kind == _PADDING:
            after = _NOT_PADDING.search(frames, pos)
            pos = len(frames) if after is None else after.start()
        elif kind == _PING:
            pos += 1
        elif kind in (_ACK, _ACK_ECN):
            pos = _skip_ack(frames, pos + 1, kind == _ACK_ECN)
        elif kind == _CONNECTION_CLOSE:
            pos = _skip_connection_close(frames, pos + 1)
        elif kind == _CRYPTO:
            pos = _read_crypto(frames, pos + 1, pieces)
        else:
            break
    return None if pos is None else pieces


class InitialCollector:
    """Reassembles the ClientHello of one QUIC connection from the client's datagrams.

    Feed it the client-to-server UDP payloads in arrival order. Keys come from the Destination
    Connection ID of the client's first Initial, and a client keeps using them after it switches to
    the server's connection ID; after a Retry it derives new ones from the new ID. So each packet
    is tried with the keys that already worked, then with keys from its own DCID. A packet no keys
    open yet is kept (bounded) and retried when new keys start working, since out-of-order arrival
    can deliver a switched-DCID packet before the one that reveals the original DCID.
    """

    def __init__(self, limit: int = 65536) -> None:
        self._limit = limit
        self._stream = _CryptoStream(limit)
        self._working: list[bytes] = []
        """DCIDs whose keys opened a packet, most recent newcomer first."""
        self._keys: dict[tuple[int, bytes], InitialKeys] = {}
        self._pending: list[InitialPacket] = []
        self._largest_pn = -1
        self._failures = 0
        self._datagrams = 0
        self._result: bytes | str | None = None

    @property
    def buffered(self) -> int:
        """Bytes held: CRYPTO data plus packets kept for retry; never more than 2 * limit."""
        return self._stream.buffered + sum(len(p.data) for p in self._pending)

    def add(self, datagram: bytes) -> bytes | str | None:
        """The complete ClientHello once available, None while more is needed, or a reason.

        After a final result (bytes or str) every call returns that same result.
        """
        if self._result is None:
            self._result = self._add(datagram)
            if self._result is not None:  # free the buffers: a collector may live on with its flow
                self._stream, self._pending, self._keys = _CryptoStream(0), [], {}
        return self._result

    def _add(self, datagram: bytes) -> bytes | str | None:
        self._datagrams += 1
        for packet in initial_packets(datagram):
            outcome = self._take(packet)
            if outcome is not None:
                return outcome
        if self._datagrams >= _MAX_DATAGRAMS:
            return "quic_no_client_hello"
        return None

    def _take(self, packet: InitialPacket) -> bytes | str | None:
        opened = self._open(packet)
        if opened is None:
            return self._set_aside(packet)
        (pn, frames), fresh = opened
        outcome = self._feed(pn, frames)
        if outcome is None and fresh:
            return self._retry_pending()
        return outcome

    def _open(self, packet: InitialPacket) -> tuple[tuple[int, bytes], bool] | None:
        """Decrypted (pn, frames) and whether the keys that worked are new to this collector."""
        # After compatible version negotiation (RFC 9368) a client's v2 Initials use keys from its
        # original DCID with the v2 salt, so a working DCID is tried with the packet's own version.
        candidates = [dcid for dcid in self._working if dcid != packet.dcid]
        for dcid in [*candidates, packet.dcid]:
            opened = unprotect(packet, self._keys_for(packet.version, dcid), self._largest_pn)
            if opened is not None:
                fresh = dcid not in self._working
                if fresh:
                    self._working = [dcid, *self._working][:_MAX_WORKING]
                return opened, fresh
        return None

    def _keys_for(self, version: int, dcid: bytes) -> InitialKeys:
        keys = self._keys.get((version, dcid))
        if keys is None:
            if len(self._keys) >= _MAX_KEYS:
                self._keys.clear()
            keys = self._keys[(version, dcid)] = client_initial_keys(version, dcid)
        return keys

    def _set_aside(self, packet: InitialPacket) -> str | None:
        self._failures += 1
        if self._failures > _MAX_FAILURES:
            return "quic_undecryptable"
        if len(self._pending) < _MAX_PENDING and self.buffered + len(packet.data) <= self._limit:
            self._pending.append(packet)
        return None

    def _retry_pending(self) -> bytes | str | None:
        pending, self._pending = self._pending, []
        for packet in pending:
            opened = self._open(packet)
            if opened is None:
                self._pending.append(packet)
                continue
            outcome = self._feed(*opened[0])
            if outcome is not None:
                return outcome
        return None

    def _feed(self, pn: int, frames: bytes) -> bytes | str | None:
        self._largest_pn = max(self._largest_pn, pn)
        pieces = crypto_frames(frames)
        if pieces is None:
            return "quic_malformed"
        for offset, data in pieces:
            reason = self._stream.add(offset, data)
            if reason is not None:
                return reason
        return self._stream.message()


class _CryptoStream:
    """The Initial CRYPTO stream as disjoint pieces, merged as gaps fill, clipped to ``limit``."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._pieces: list[tuple[int, bytes]] = []
        """(offset, data), sorted, neither overlapping nor touching."""

    @property
    def buffered(self) -> int:
        return sum(len(data) for _, data in self._pieces)

    def add(self, offset: int, data: bytes) -> str | None:
        """Merge one CRYPTO frame's data in; a reason if the stream cannot be kept."""
        size = self._message_size()
        end = offset + len(data) if size is None else min(offset + len(data), size)
        if end <= offset:
            return None  # empty, or wholly past the end of the ClientHello
        if end > self._limit:
            return "quic_too_large"  # a client's Initial stream holds nothing but the ClientHello
        start, merged = offset, bytearray(data[: end - offset])
        kept = []
        for at, piece in self._pieces:
            if at + len(piece) < start or at > start + len(merged):
                kept.append((at, piece))
                continue
            merged = _overlay(start, merged, at, piece)
            start = min(start, at)
        kept.append((start, bytes(merged)))
        kept.sort()
        self._pieces = kept
        return "quic_too_fragmented" if len(kept) > _MAX_FRAGMENTS else None

    def message(self) -> bytes | str | None:
        """The first handshake message once it is all here, or why it never will be."""
        size = self._message_size()
        if size is None:
            return None
        first = self._pieces[0][1]
        if first[0] != _CLIENT_HELLO:
            return "quic_malformed"
        if size > self._limit:
            return "quic_too_large"
        return first[:size] if len(first) >= size else None

    def _message_size(self) -> int | None:
        """4 + the handshake message's length, once its 4-byte header has arrived."""
        if not self._pieces or self._pieces[0][0] != 0 or len(self._pieces[0][1]) < 4:
            return None
        return 4 + int.from_bytes(self._pieces[0][1][1:4], "big")


def _overlay(start: int, data: bytearray, at: int, piece: bytes) -> bytearray:
    """``data`` (at ``start``) and an overlapping or adjacent ``piece``; ``piece`` wins overlaps."""
    low = min(start, at)
    out = bytearray(max(start + len(data), at + len(piece)) - low)
    out[start - low : start - low + len(data)] = data
    out[at - low : at - low + len(piece)] = piece
    return out


class _Span(NamedTuple):
    """Where one long-header packet's parts lie in its datagram (absolute offsets)."""

    version: int
    initial: bool
    scid_at: int
    """Offset of the SCID length byte, which is where the DCID ends."""
    pn_at: int
    end: int


def _long_header(datagram: bytes, start: int) -> _Span | None:
    """The v1/v2 long-header packet at ``start``, None if there is none that says where it ends."""
    if start + 7 > len(datagram) or not datagram[start] & 0x80:
        return None
    version = int.from_bytes(datagram[start + 1 : start + 5], "big")
    spec = _VERSIONS.get(version)
    kind = (datagram[start] >> 4) & 0x03
    if spec is None or kind == spec.retry:
        return None
    dcid_len = datagram[start + 5]
    scid_at = start + 6 + dcid_len
    if dcid_len > _MAX_CID or scid_at >= len(datagram) or datagram[scid_at] > _MAX_CID:
        return None
    pos = scid_at + 1 + datagram[scid_at]
    if kind == spec.initial:
        token = _varint(datagram, pos)
        if token is None:
            return None
        pos = token[1] + token[0]
    length = _varint(datagram, pos)
    if length is None or length[1] + length[0] > len(datagram):
        return None
    return _Span(version, kind == spec.initial, scid_at, length[1], length[1] + length[0])


def _varint(data: bytes, pos: int) -> tuple[int, int] | None:
    """A variable-length integer (RFC 9000 §16) at ``pos``: (value, position after it)."""
    if pos >= len(data):
        return None
    end = pos + (1 << (data[pos] >> 6))
    if end > len(data):
        return None
    value = int.from_bytes(data[pos:end], "big") & ((1 << (8 * (end - pos) - 2)) - 1)
    return value, end


def _skip_varints(data: bytes, pos: int, count: int) -> int | None:
    for _ in range(count):
        field = _varint(data, pos)
        if field is None:
            return None
        pos = field[1]
    return pos


def _skip_ack(frames: bytes, pos: int, ecn: bool) -> int | None:
    """Past an ACK frame's body: largest, delay, range count, first range, ranges, ECN counts."""
    head = _skip_varints(frames, pos, 2)
    count = None if head is None else _varint(frames, head)
    if count is None or count[0] > len(frames):  # each range takes at least two bytes
        return None
    return _skip_varints(frames, count[1], 1 + 2 * count[0] + (3 if ecn else 0))


def _skip_connection_close(frames: bytes, pos: int) -> int | None:
    """Past a transport CONNECTION_CLOSE body: error code, frame type, reason phrase."""
    head = _skip_varints(frames, pos, 2)
    reason = None if head is None else _varint(frames, head)
    if reason is None or reason[1] + reason[0] > len(frames):
        return None
    return reason[1] + reason[0]


def _read_crypto(frames: bytes, pos: int, pieces: list[tuple[int, bytes]]) -> int | None:
    """Append one CRYPTO frame's (offset, data) to ``pieces``; the position after it."""
    offset = _varint(frames, pos)
    length = None if offset is None else _varint(frames, offset[1])
    if offset is None or length is None or length[1] + length[0] > len(frames):
        return None
    end = length[1] + length[0]
    pieces.append((offset[0], frames[length[1] : end]))
    return end


def _expand_label(secret: bytes, label: bytes, length: int) -> bytes:
    """TLS 1.3 HKDF-Expand-Label with an empty context, for outputs of one SHA-256 block."""
    full = b"tls13 " + label
    info = length.to_bytes(2, "big") + bytes([len(full)]) + full + b"\x00"
    return hmac.digest(secret, info + b"\x01", "sha256")[:length]


def _decode_packet_number(largest: int, truncated: int, bits: int) -> int:
    """The full packet number nearest the expected one (RFC 9000 Appendix A.3)."""
    expected = largest + 1
    window = 1 << bits
    candidate = (expected & ~(window - 1)) | truncated
    if candidate <= expected - window // 2 and candidate < (1 << 62) - window:
        return candidate + window
    if candidate > expected + window // 2 and candidate >= window:
        return candidate - window
    return candidate
