"""JA4, FoxIO's TLS client fingerprint, from the fields of one ClientHello.

Follows the specification in FoxIO-LLC/ja4, ``technical_details/JA4.md`` (JA4 itself is
BSD-3-Clause; the other JA4+ methods are licensed differently and are not implemented here)::

    t13d1516h2_8daaf6152771_e5627efa2ab1
    a: transport, version, SNI d/i, cipher count, extension count, ALPN first+last character
    b: sha256 of the sorted cipher list, first 12 hex digits
    c: sha256 of the sorted extension list (SNI and ALPN left out) "_" signature algorithms
       in the order offered, first 12 hex digits

GREASE values (RFC 8701) are ignored everywhere: they are random per connection, and keeping
them would give one client a different fingerprint on every connection.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from typing import Literal

Transport = Literal["t", "q", "d"]
"""JA4's first letter: TLS over TCP, QUIC, DTLS."""

SERVER_NAME = 0x0000
ALPN = 0x0010

_EMPTY_HASH = "000000000000"
"""The spec's value for an empty list, so 'nothing offered' stands out from a real hash."""

_VERSIONS = {
    0x0304: "13",
    0x0303: "12",
    0x0302: "11",
    0x0301: "10",
    0x0300: "s3",
    0x0200: "s2",
    0x0002: "s2",  # the spec text says 0x0002; FoxIO's tools and s2n map 0x0200: accept both
    0x0100: "s1",
    0xFEFF: "d1",
    0xFEFD: "d2",
    0xFEFC: "d3",
}


GREASE = frozenset(0x0A0A + 0x1010 * i for i in range(16))
"""RFC 8701 GREASE code points: 0x0a0a, 0x1a1a, ... 0xfafa (same byte twice, low nibble a)."""


def is_grease(value: int) -> bool:
    """Whether ``value`` is one of the 16 GREASE code points."""
    return value in GREASE


def ja4(
    transport: Transport,
    legacy_version: int,
    supported_versions: Sequence[int],
    ciphers: Sequence[int],
    extensions: Sequence[int],
    alpn_first: bytes | None,
    signature_algorithms: Sequence[int],
) -> str:
    """The JA4 fingerprint. Lists are as offered on the wire (GREASE included, in order);
    ``alpn_first`` is the first ALPN protocol name, None without an ALPN extension."""
    a, b, c, has_extensions = _parts(
        transport,
        legacy_version,
        supported_versions,
        ciphers,
        extensions,
        alpn_first,
        signature_algorithms,
    )
    # An empty extension list leaves c empty or, in theory, only signature algorithms: both
    # count as "no extensions" in the spec.
    return f"{a}_{_hash12(b)}_{_hash12(c) if has_extensions else _EMPTY_HASH}"


def ja4_r(
    transport: Transport,
    legacy_version: int,
    supported_versions: Sequence[int],
    ciphers: Sequence[int],
    extensions: Sequence[int],
    alpn_first: bytes | None,
    signature_algorithms: Sequence[int],
) -> str:
    """JA4_r, the same fingerprint before hashing: for debugging and comparing with other tools."""
    a, b, c, _ = _parts(
        transport,
        legacy_version,
        supported_versions,
        ciphers,
        extensions,
        alpn_first,
        signature_algorithms,
    )
    return f"{a}_{b}_{c}"


def _parts(
    transport: Transport,
    legacy_version: int,
    supported_versions: Sequence[int],
    ciphers: Sequence[int],
    extensions: Sequence[int],
    alpn_first: bytes | None,
    signature_algorithms: Sequence[int],
) -> tuple[str, str, str, bool]:
    suites = [c for c in ciphers if c not in GREASE]
    types = [e for e in extensions if e not in GREASE]
    sni = "d" if SERVER_NAME in types else "i"
    a = (
        f"{transport}{_version(legacy_version, supported_versions)}{sni}"
        f"{min(len(suites), 99):02d}{min(len(types), 99):02d}{_alpn_chars(alpn_first)}"
    )
    # Sorting the numbers sorts their fixed-width lower-case hex the same way.
    b = _hex_list(sorted(suites))
    kept = sorted(e for e in types if e not in (SERVER_NAME, ALPN))
    c = _hex_list(kept)
    algorithms = _hex_list([s for s in signature_algorithms if s not in GREASE])
    if algorithms:
        c = f"{c}_{algorithms}"
    return a, b, c, bool(kept)


def _version(legacy_version: int, supported_versions: Sequence[int]) -> str:
    # The record-layer version is ignored (spec); supported_versions, when it names anything
    # besides GREASE, overrides the legacy field, which TLS 1.3 freezes at 0x0303.
    offered = [v for v in supported_versions if v not in GREASE]
    return _VERSIONS.get(max(offered) if offered else legacy_version, "00")


def _alpn_chars(first: bytes | None) -> str:
    if not first:
        return "00"
    if first[:1].isalnum() and first[-1:].isalnum():  # bytes.isalnum is ASCII-only
        return chr(first[0]) + chr(first[-1])
    # Otherwise the first and last characters of the value's hex form: the high nibble of
    # the first byte and the low nibble of the last.
    return f"{first[0] >> 4:x}{first[-1] & 0xF:x}"


def _hex_list(values: list[int]) -> str:
    """16-bit values as comma-separated 4-digit lower-case hex: "1301,c02b"."""
    # bytes.hex with a separator formats in C, several times faster than an f-string per value.
    return struct.pack(f">{len(values)}H", *values).hex(",", 2)


def _hash12(text: str) -> str:
    if not text:
        return _EMPTY_HASH
    return hashlib.sha256(text.encode("ascii")).hexdigest()[:12]
