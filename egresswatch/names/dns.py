"""DNS messages as a passive observer reads them: the question, and the addresses it led to.

Only what naming flows needs is decoded: the header, the first question, and the A, AAAA and
CNAME records of the answer section (authority and additional records are glue, not answers, and
are not read). Every malformation ends the parse with a short reason string to count; nothing
raises, and the work per message is bounded by its size: compression pointers may go forward (as
tshark and Suricata allow) but never back to where the name has been, and a name stops at 255
octets.

Reasons: ``dns_truncated``, ``dns_malformed``, ``dns_bad_label``, ``dns_name_too_long``,
``dns_pointer_loop``, ``dns_pointer_out_of_range``, ``dns_tcp_overflow``.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Sequence
from typing import NamedTuple

A = 1
CNAME = 5
AAAA = 28
_KEPT = (A, AAAA, CNAME)
_CLASS_IN = 1
_CLASS_MASK = 0x7FFF  # mDNS borrows the top bit of the class for "cache flush"
_TTL_CEILING = 0x7FFFFFFF  # RFC 2181 §8: a TTL with the top bit set means zero

_HEADER = struct.Struct("!6H")
_HEADER_LEN = 12
_QTYPE = struct.Struct("!H")
_RR_FIXED = struct.Struct("!HHIH")  # type, class, ttl, rdlength
_MIN_QUESTION = 5  # root name + type + class: lets an absurd QDCOUNT fail before any loop
_MIN_RR = 11  # root name + type, class, ttl, rdlength

_Names = dict[int, tuple[str, int]]  # a message's names read so far: offset -> (text, octets)

_MAX_NAME = 255  # RFC 1035 §2.3.4: octets on the wire, length bytes and root included
_MAX_HOPS = 32  # pointers followed per name: real names need a few (Go's resolver stops at 10)

TRUNCATED = "dns_truncated"
MALFORMED = "dns_malformed"
BAD_LABEL = "dns_bad_label"
NAME_TOO_LONG = "dns_name_too_long"
POINTER_LOOP = "dns_pointer_loop"
POINTER_OUT_OF_RANGE = "dns_pointer_out_of_range"
TCP_OVERFLOW = "dns_tcp_overflow"
REASONS = (
    TRUNCATED,
    MALFORMED,
    BAD_LABEL,
    NAME_TOO_LONG,
    POINTER_LOOP,
    POINTER_OUT_OF_RANGE,
    TCP_OVERFLOW,
)
"""Every reason string this module returns: the names of its error counters."""

_TYPES = {
    1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 10: "NULL", 12: "PTR", 13: "HINFO", 15: "MX",
    16: "TXT", 17: "RP", 18: "AFSDB", 24: "SIG", 25: "KEY", 28: "AAAA", 29: "LOC", 33: "SRV",
    35: "NAPTR", 36: "KX", 37: "CERT", 39: "DNAME", 41: "OPT", 42: "APL", 43: "DS", 44: "SSHFP",
    45: "IPSECKEY", 46: "RRSIG", 47: "NSEC", 48: "DNSKEY", 49: "DHCID", 50: "NSEC3",
    51: "NSEC3PARAM", 52: "TLSA", 53: "SMIMEA", 55: "HIP", 59: "CDS", 60: "CDNSKEY",
    61: "OPENPGPKEY", 62: "CSYNC", 63: "ZONEMD", 64: "SVCB", 65: "HTTPS", 99: "SPF",
    108: "EUI48", 109: "EUI64", 249: "TKEY", 250: "TSIG", 251: "IXFR", 252: "AXFR",
    255: "ANY", 256: "URI", 257: "CAA", 32768: "TA", 32769: "DLV",
}  # fmt: skip
_RCODES = {
    0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED",
    6: "YXDOMAIN", 7: "YXRRSET", 8: "NXRRSET", 9: "NOTAUTH", 10: "NOTZONE", 11: "DSOTYPENI",
}  # fmt: skip

# Bytes that stand for themselves in a name's text; the rest are escaped as dig prints them.
_PLAIN = bytes(b for b in range(0x21, 0x7F) if b not in b".\\")
_PLAIN_OR_DOT = _PLAIN + b"."
_ESCAPED = tuple(
    chr(b) if b in _PLAIN else ("\\" + chr(b) if b in b".\\" else f"\\{b:03d}") for b in range(256)
)


class DnsRecord(NamedTuple):
    """One A, AAAA or CNAME record of an answer section. (Tuples: a dataclass's __init__ would
    be a third of a short message's parse time.)"""

    name: str
    """Owner name: lower case, no trailing dot ("" for the root), escaped as by `name_text`."""
    rtype: int
    """1 (A), 28 (AAAA) or 5 (CNAME)."""
    ttl: int
    """Seconds the answer may be cached (0 when the wire value has its top bit set)."""
    value: str
    """A/AAAA: the address as text (RFC 5952 form for IPv6); CNAME: the target name."""


class DnsMessage(NamedTuple):
    """The parts of one DNS message that name flows."""

    id: int
    """Transaction id: pairs a response with its query."""
    response: bool
    """The QR bit: True for a response."""
    rcode: int
    """Response code from the header (4 bits; `rcode_name` gives its name)."""
    query: str
    """First question's name, as `DnsRecord.name`; "" without a question."""
    qtype: int
    """First question's type (`type_name` gives its name); 0 without a question."""
    answers: tuple[DnsRecord, ...]
    """A, AAAA and CNAME records of class IN from the answer section, in wire order."""

    def resolved(self) -> list[tuple[str, int]]:
        """(address, ttl) of every A/AAAA record reachable from `query` through the CNAME chain
        in the answers (query -> cname -> ... -> address), loop-safe; the ttl is the smallest
        along the chain. An address owned by some unrelated name is not included."""
        chains: dict[str, list[DnsRecord]] = {}
        for record in self.answers:
            if record.rtype == CNAME:
                chains.setdefault(record.name, []).append(record)
        if not chains:  # no CNAME: the query's own addresses
            found: dict[str, int] = {}
            for record in self.answers:
                if record.name == self.query:
                    found[record.value] = min(record.ttl, found.get(record.value, record.ttl))
            return list(found.items())
        # Breadth first, so a name reached twice keeps its shortest chain's TTL.
        reach = {self.query: _TTL_CEILING}
        queue = [self.query]
        for name in queue:
            for record in chains.get(name, ()):
                if record.value not in reach:
                    reach[record.value] = min(reach[name], record.ttl)
                    queue.append(record.value)
        found = {}
        for record in self.answers:
            chain_ttl = reach.get(record.name)
            if chain_ttl is not None and record.rtype != CNAME:
                ttl = min(chain_ttl, record.ttl)
                found[record.value] = min(ttl, found.get(record.value, ttl))
        return list(found.items())


def type_name(rtype: int) -> str:
    """The mnemonic of a record type ("A", "HTTPS", ...), else "TYPE<n>" as RFC 3597 writes it."""
    return _TYPES.get(rtype) or f"TYPE{rtype}"


def rcode_name(rcode: int) -> str:
    """The mnemonic of a response code ("NOERROR", "NXDOMAIN", ...), else the number."""
    return _RCODES.get(rcode) or str(rcode)


def name_text(labels: Sequence[bytes]) -> str:
    """A name's labels as text: lower case, dot-separated, no trailing dot, "" for the root.

    Names are bytes, not ASCII: bytes outside printable ASCII become ``\\DDD`` and a dot or
    backslash inside a label is backslash-escaped, as dig prints them, so the text is printable,
    unambiguous, and never fails to decode.
    """
    joined = b".".join(labels).lower()
    if not joined.translate(None, _PLAIN_OR_DOT) and joined.count(b".") == len(labels) - 1:
        return joined.decode("ascii")
    return ".".join("".join([_ESCAPED[b] for b in label.lower()]) for label in labels)


def parse_message(data: bytes) -> DnsMessage | str:
    """One DNS message (UDP payload, or one TCP message without its length prefix). Returns the
    message or a short reason string ("dns_truncated", "dns_malformed", "dns_pointer_loop", ...)."""
    data = bytes(data)  # a bytearray or memoryview from a stream buffer: index it as bytes
    size = len(data)
    if size < _HEADER_LEN:
        return TRUNCATED
    ident, flags, qdcount, ancount, _, _ = _HEADER.unpack_from(data)
    if qdcount * _MIN_QUESTION + ancount * _MIN_RR > size - _HEADER_LEN:
        return TRUNCATED
    names: _Names = {}
    pos, query, qtype = _HEADER_LEN, "", 0
    for index in range(qdcount):
        name = _read_name(data, pos, names)
        if isinstance(name, str):
            return name
        if name[1] + 4 > size:
            return TRUNCATED
        if index == 0:
            query, qtype = name[0], _QTYPE.unpack_from(data, name[1])[0]
        pos = name[1] + 4
    answers = _read_answers(data, pos, ancount, names)
    if isinstance(answers, str):
        return answers
    return DnsMessage(ident, bool(flags & 0x8000), flags & 0x000F, query, qtype, answers)


def _read_answers(data: bytes, pos: int, count: int, names: _Names) -> tuple[DnsRecord, ...] | str:
    """The kept records among `count` resource records starting at `pos`."""
    size = len(data)
    kept: list[DnsRecord] = []
    for _ in range(count):
        owner = _read_name(data, pos, names)
        if isinstance(owner, str):
            return owner
        pos = owner[1] + 10
        if pos > size:
            return TRUNCATED
        rtype, rclass, ttl, rdlength = _RR_FIXED.unpack_from(data, owner[1])
        start, pos = pos, pos + rdlength
        if pos > size:
            return TRUNCATED
        if rtype not in _KEPT or rclass & _CLASS_MASK != _CLASS_IN:
            continue
        if rtype == CNAME:
            target = _read_name(data, start, names)
            if isinstance(target, str):
                return target
            if target[1] > pos:
                return MALFORMED  # the target's labels run past its own rdata
            value = target[0]
        elif rdlength == (4 if rtype == A else 16):
            family = socket.AF_INET if rtype == A else socket.AF_INET6
            value = socket.inet_ntop(family, data[start:pos])
        else:
            return MALFORMED
        kept.append(DnsRecord(owner[0], rtype, ttl if ttl <= _TTL_CEILING else 0, value))
    return tuple(kept)


def _read_name(data: bytes, pos: int, names: _Names) -> tuple[str, int] | str:
    """The name at `pos` and the offset just past it in place, or a reason.

    Bounded: a pointer may not land where this name has been (so no cycle repeats), at most
    `_MAX_HOPS` are followed, and the labels stop at 255 octets. Every name read, and every
    pointer target on its way, is remembered in `names`: compression points owners and targets
    at the question and at each other, so most names cost one lookup, and a message of thousands
    of records sharing one long pointer chain walks that chain once, not once per record.
    """
    start, size = pos, len(data)
    if pos + 1 < size and data[pos] >= 0xC0:  # a bare pointer to a name already read: most
        known = names.get((data[pos] & 0x3F) << 8 | data[pos + 1])  # owners in an answer
        if known is not None:
            return known[0], pos + 2
    labels: list[bytes] = []
    octets = 1  # the root label's length byte
    after = -1  # where the name ends in place: just past its first pointer, if it has one
    jumps: list[tuple[int, int, int]] = []  # (target, labels read before it, octets before it)
    tail: tuple[str, int] | None = None  # a name already read that this one ends in
    while True:
        if pos >= size:
            return TRUNCATED
        length = data[pos]
        if length == 0:
            break
        if length < 0x40:
            end = pos + 1 + length
            octets += length + 1
            if end > size:
                return TRUNCATED
            if octets > _MAX_NAME:
                return NAME_TOO_LONG
            labels.append(data[pos + 1 : end])
            pos = end
        elif length >= 0xC0:
            if pos + 1 >= size:
                return TRUNCATED
            target = (length & 0x3F) << 8 | data[pos + 1]
            if after < 0:
                after = pos + 2
            tail = names.get(target)
            if tail is not None:
                octets += tail[1] - 1
                if octets > _MAX_NAME:
                    return NAME_TOO_LONG
                break
            if target >= size:
                return POINTER_OUT_OF_RANGE
            if target in (start, pos) or len(jumps) >= _MAX_HOPS or _jumped(jumps, target):
                return POINTER_LOOP
            jumps.append((target, len(labels), octets))
            pos = target
        else:
            return BAD_LABEL  # 0x40 and 0x80: extended label types (RFC 6891 §5), unused
    names[start] = (_joined(labels, tail), octets)
    for target, count, before in jumps:
        names[target] = (_joined(labels[count:], tail), octets - before + 1)
    return names[start][0], (after if after >= 0 else pos + 1)


def _jumped(jumps: list[tuple[int, int, int]], target: int) -> bool:
    return any(jump[0] == target for jump in jumps)


def _joined(labels: list[bytes], tail: tuple[str, int] | None) -> str:
    """The text of `labels` followed by an already-read name."""
    if tail is None:
        return name_text(labels)
    if not labels:
        return tail[0]
    return f"{name_text(labels)}.{tail[0]}" if tail[0] else name_text(labels)


class DnsTcpStream:
    """One direction of a DNS-over-TCP connection: 2-byte length-prefixed messages, several per
    connection, split or merged across TCP segments at any byte. Bounded buffer."""

    __slots__ = ("_buffer", "_limit", "_overflowed")

    def __init__(self, limit: int = 131072) -> None:
        self._buffer = bytearray()
        self._limit = limit
        self._overflowed = False

    @property
    def buffered(self) -> int:
        """Bytes held for a message not yet complete (never more than the limit)."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[DnsMessage | str]:
        """Append the next in-order payload bytes; return every message completed by them."""
        if self._overflowed:
            return []  # framing is lost for good: every later "length" would be noise
        buffer = self._buffer
        buffer += data
        done: list[DnsMessage | str] = []
        pos = 0
        while len(buffer) - pos >= 2:
            end = pos + 2 + (buffer[pos] << 8 | buffer[pos + 1])
            if end - pos > self._limit:
                self._overflowed = True
                buffer.clear()
                done.append(TCP_OVERFLOW)
                return done
            if end > len(buffer):
                break
            done.append(parse_message(bytes(buffer[pos + 2 : end])))
            pos = end
        del buffer[:pos]  # once per feed, not per message: merged segments stay linear
        return done
