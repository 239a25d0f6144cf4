"""The TLS ClientHello: the server name, ALPN and JA4 fingerprint a client sends in the clear.

Pure and bounded: bytes in, a ``ClientHello`` or a short reason string out, never an exception.
Reasons (counted by the caller, never raised):

- ``not_tls``: the connection's first bytes are not a TLS handshake record.
- ``tls_not_client_hello``: the first handshake message is of another type.
- ``tls_truncated``: a handshake message shorter than its own length field says.
- ``tls_malformed``: a length or list that does not fit where it sits, a record that breaks the
  record-layer rules before the hello is complete.
- ``tls_too_large``: the hello would not be complete within ``limit`` bytes of the stream.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from egresswatch.names.ja4 import Transport, ja4

HANDSHAKE = 0x16
CLIENT_HELLO = 0x01
MAX_RECORD = 1 << 14
"""Largest plaintext record payload (RFC 8446 5.1): anything longer is refused unbuffered."""

_RECORD_HEADER = 5
_MESSAGE_HEADER = 4
_EXTENSION_HEADER = struct.Struct(">HH")

_SERVER_NAME = 0x0000
_SIGNATURE_ALGORITHMS = 0x000D
_ALPN = 0x0010
_SUPPORTED_VERSIONS = 0x002B
_ENCRYPTED_CLIENT_HELLO = 0xFE0D


@dataclass(frozen=True, slots=True)
class ClientHello:
    """What a TLS client says about its destination and itself before encryption starts."""

    server_name: str | None
    """SNI host_name, lower-cased (non-ASCII bytes backslash-escaped); None when absent. With
    ECH this is the outer, public name: the real one is encrypted."""
    alpn: tuple[str, ...]
    """ALPN protocol names in the order offered ("h2", "http/1.1"); a name that is not
    printable ASCII is given as hex."""
    ech: bool
    """The encrypted_client_hello extension (0xfe0d) is present."""
    ja4: str
    """JA4 fingerprint (FoxIO), e.g. "t13d1516h2_8daaf6152771_e5627efa2ab1"."""


class _MalformedError(Exception):
    """A length that does not fit: internal, always turned into a reason string."""


def looks_like_tls(first_bytes: bytes) -> bool:
    """Cheap check on a connection's first payload bytes: a TLS handshake record header
    (0x16, then record version 0x0300..0x0304). Needs at least 3 bytes."""
    return (
        len(first_bytes) >= 3
        and first_bytes[0] == HANDSHAKE
        and first_bytes[1] == 3
        and first_bytes[2] <= 4
    )


def parse_client_hello(message: bytes, *, transport: Transport = "t") -> ClientHello | str:
    """One TLS handshake message starting at its type byte (0x01, a 3-byte length, the body),
    as carried in TLS records or QUIC CRYPTO frames; bytes after the message are ignored.
    ``transport`` is JA4's first letter: "t" TCP, "q" QUIC. A ClientHello or a reason string."""
    if len(message) < _MESSAGE_HEADER:
        return "tls_truncated"
    if message[0] != CLIENT_HELLO:
        return "tls_not_client_hello"
    end = _MESSAGE_HEADER + int.from_bytes(message[1:_MESSAGE_HEADER], "big")
    if len(message) < end:
        return "tls_truncated"
    try:
        return _client_hello(bytes(message), end, transport)
    except _MalformedError:
        return "tls_malformed"


def client_hello_from_stream(data: bytes, *, limit: int = 16384) -> ClientHello | str | None:
    """The ClientHello at the start of a TCP stream: ``data`` is the first bytes the client
    sent, in order (TLS records; the hello may be fragmented over several records and reach
    us over several segments). None while ``data`` is a valid prefix that needs more bytes; a
    reason string when it is not TLS, is malformed, or the hello would not be complete within
    the first ``limit`` bytes of the stream (record headers included), so a caller never needs
    to buffer more than ``limit`` bytes. Only ``data[:limit]`` is read."""
    view = memoryview(data)[:limit]
    pieces: list[memoryview] = []
    have = 0  # handshake bytes collected from the records so far
    need = 0  # handshake message length with its header, once known
    at = 0
    while True:
        header = view[at : at + _RECORD_HEADER]
        problem = _record_problem(header, first=at == 0)
        if problem is not None or len(header) < _RECORD_HEADER:
            return problem or _wait(at + _RECORD_HEADER + max(need - have, 1), limit)
        length = header[3] << 8 | header[4]
        payload = view[at + _RECORD_HEADER : at + _RECORD_HEADER + length]
        pieces.append(payload)
        have += len(payload)
        if not need and have:
            if pieces[0][0] != CLIENT_HELLO:  # records are never empty: see _record_problem
                return "tls_not_client_hello"
            if have >= _MESSAGE_HEADER:
                head = b"".join(pieces)[:_MESSAGE_HEADER]
                need = _MESSAGE_HEADER + int.from_bytes(head[1:], "big")
        if need and have >= need:
            return parse_client_hello(b"".join(pieces)[:need])
        if len(payload) < length:
            # The record is cut short by the end of data: the earliest the hello can end is
            # within this record, or after a further record header if this one is too short.
            missing = max(need - have, 1)
            room = length - len(payload)
            start = at + _RECORD_HEADER + len(payload)
            return _wait(start + missing + (0 if missing <= room else _RECORD_HEADER), limit)
        at += _RECORD_HEADER + length


def _record_problem(header: memoryview, *, first: bool) -> str | None:
    """Why a (possibly partial) record header cannot carry the hello, or None."""
    if len(header) >= 1 and header[0] != HANDSHAKE:
        return "not_tls" if first else "tls_malformed"
    if (len(header) >= 2 and header[1] != 3) or (len(header) >= 3 and header[2] > 4):
        return "not_tls" if first else "tls_malformed"
    if len(header) == _RECORD_HEADER:
        length = header[3] << 8 | header[4]
        # Zero-length handshake fragments are forbidden (RFC 8446 5.1) and would let a peer
        # make us walk headers without progress.
        if length == 0 or length > MAX_RECORD:
            return "tls_malformed"
    return None


def _wait(earliest_end: int, limit: int) -> str | None:
    """None (more bytes needed) while the hello can still end within ``limit`` stream bytes."""
    return "tls_too_large" if earliest_end > limit else None


# The parsers below walk offsets into the message with struct rather than slicing it: a hello
# has a few dozen fields and this runs on every new connection, so calls and copies add up.


def _client_hello(data: bytes, end: int, transport: Transport) -> ClientHello:
    """The hello whose body is ``data[4:end]``."""
    at = _MESSAGE_HEADER + 2 + 32  # legacy_version, random
    if at > end:
        raise _MalformedError
    legacy_version = data[4] << 8 | data[5]
    _, at = _vector(data, at, 1, end)  # legacy_session_id
    suites, at = _vector(data, at, 2, end)
    ciphers = _u16_list(data, suites, at)
    _, at = _vector(data, at, 1, end)  # legacy_compression_methods
    hello = _Extensions()
    # Extensions are optional before TLS 1.2: a body may end after the compression methods.
    if at < end:
        hello.read(data, *_vector(data, at, 2, end))
    return ClientHello(
        server_name=hello.server_name,
        alpn=tuple(_alpn_text(name) for name in hello.alpn),
        ech=_ENCRYPTED_CLIENT_HELLO in hello.types,
        ja4=ja4(
            transport,
            legacy_version,
            hello.supported_versions,
            ciphers,
            hello.types,
            hello.alpn[0] if hello.alpn else None,
            hello.signature_algorithms,
        ),
    )


def _vector(data: bytes, at: int, length_size: int, end: int) -> tuple[int, int]:
    """The TLS vector at ``at`` (a 1- or 2-byte big-endian length, then that many bytes) as
    the (start, stop) offsets of its content; it must end by ``end``."""
    start = at + length_size
    stop = start + int.from_bytes(data[at:start], "big")
    if stop > end:
        raise _MalformedError
    return start, stop


def _u16_list(data: bytes, start: int, stop: int) -> tuple[int, ...]:
    if (stop - start) % 2:
        raise _MalformedError
    return struct.unpack_from(f">{(stop - start) // 2}H", data, start)


class _Extensions:
    """The extensions JA4 and naming need. A repeated extension is forbidden (RFC 8446 4.2);
    every occurrence counts for JA4, the first one's content is used."""

    __slots__ = (
        "_seen",
        "alpn",
        "server_name",
        "signature_algorithms",
        "supported_versions",
        "types",
    )

    def __init__(self) -> None:
        self.types: list[int] = []
        self._seen: set[int] = set()
        self.server_name: str | None = None
        self.alpn: list[bytes] = []
        self.supported_versions: tuple[int, ...] = ()
        self.signature_algorithms: tuple[int, ...] = ()

    def read(self, data: bytes, at: int, end: int) -> None:
        while at < end:
            if at + 4 > end:
                raise _MalformedError
            kind, size = _EXTENSION_HEADER.unpack_from(data, at)
            start, at = at + 4, at + 4 + size
            if at > end:
                raise _MalformedError
            if kind not in self._seen:
                self._seen.add(kind)
                self._content(kind, data, start, at)
            self.types.append(kind)

    def _content(self, kind: int, data: bytes, start: int, stop: int) -> None:
        if kind == _SERVER_NAME:
            self.server_name = _server_name(data, *_vector(data, start, 2, stop))
        elif kind == _ALPN:
            at, end = _vector(data, start, 2, stop)
            while at < end:
                name, at = _vector(data, at, 1, end)
                self.alpn.append(data[name:at])
        elif kind == _SUPPORTED_VERSIONS:
            self.supported_versions = _u16_list(data, *_vector(data, start, 1, stop))
        elif kind == _SIGNATURE_ALGORITHMS:
            self.signature_algorithms = _u16_list(data, *_vector(data, start, 2, stop))


def _server_name(data: bytes, at: int, end: int) -> str | None:
    """The first host_name in a server_name list (RFC 6066 3)."""
    while at < end:
        name_type = data[at]
        start, at = _vector(data, at + 1, 2, end)
        if name_type == 0:
            name = data[start:at]
            if not name:
                return None
            if name.isascii():
                return name.decode("ascii").lower()
            return name.decode("utf-8", "backslashreplace").lower()
    return None


def _alpn_text(name: bytes) -> str:
    if name.isascii():
        text = name.decode("ascii")
        if text.isprintable():
            return text
    return name.hex()
