"""IPv4/IPv6 and TCP/UDP/ICMP: one captured frame in, the facts a flow table needs out.

This is the hot path (every captured packet passes here), so it uses precompiled ``struct``
unpackers and plain tuples instead of per-layer objects. A malformed or truncated packet is never an
exception: ``decode`` returns a short reason string that the caller counts.
"""

from __future__ import annotations

import socket
import struct
from typing import NamedTuple

from egresswatch.decode.linktypes import ETH_IPV4, PARSERS, LinkType, raw_ip

TCP = 6
UDP = 17
ICMP = 1
ICMP6 = 58

_IPV4 = struct.Struct("!BxHHHxBxx4s4s").unpack_from  # vihl, total, id, frag, proto, src, dst
_TCP = struct.Struct("!HHI4xBB").unpack_from  # sport, dport, seq, data offset, flags
_PORTS = struct.Struct("!HH").unpack_from
_new = tuple.__new__

# IPv6 extension headers that have the generic (next header, length in 8-octet units) shape.
_IPV6_GENERIC_EXT = frozenset({0, 43, 60, 135, 139, 140})
_IPV6_FRAGMENT = 44
_IPV6_AH = 51
_MAX_IPV6_EXT = 8


class PacketFacts(NamedTuple):
    """What one IP packet says about its flow. Addresses are raw bytes (4 or 16)."""

    src: bytes
    """Source address, 4 bytes (IPv4) or 16 bytes (IPv6)."""
    dst: bytes
    """Destination address, same length as ``src``."""
    proto: int
    """IP protocol number of the transport (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6, ...)."""
    sport: int
    """Source port; for ICMP the message type (Zeek's convention)."""
    dport: int
    """Destination port; for ICMP the counterpart type of a request/reply pair, else the code."""
    tcp_flags: int
    """TCP flag byte (FIN 0x01, SYN 0x02, RST 0x04, PSH 0x08, ACK 0x10), 0 for other protocols."""
    ip_bytes: int
    """IP-layer length of the packet, header included (Zeek's ip_bytes)."""
    payload_len: int
    """Transport payload length as the headers state it (what was sent, not what was captured)."""
    data: bytes
    """The buffer holding the payload (the frame, or a reassembled datagram)."""
    payload_offset: int
    """Where the transport payload starts in ``data``; captured bytes may end early (snaplen)."""
    seq: int
    """TCP sequence number, 0 for other protocols."""


class Fragment(NamedTuple):
    """One fragment of an IP datagram, waiting for reassembly."""

    src: bytes
    dst: bytes
    proto: int
    ident: int
    offset: int
    """Byte offset of this fragment's payload in the datagram."""
    more: bool
    """More fragments follow (the MF flag)."""
    header_len: int
    """IP header length including options / extension headers before the fragment header."""
    payload: bytes


DecodeResult = PacketFacts | Fragment | str


def address_text(addr: bytes) -> str:
    """An address as PacketFacts carry it (4 or 16 bytes) in its usual text form."""
    return socket.inet_ntop(socket.AF_INET if len(addr) == 4 else socket.AF_INET6, addr)


def decode(frame: bytes, linktype: int = LinkType.ETHERNET, wire_len: int = -1) -> DecodeResult:
    """Decode one captured frame.

    ``wire_len`` is the frame's length on the wire (pcap's orig_len); when it exceeds the captured
    length the capture was cut by the snap length, which is not an error as long as the headers
    egresswatch needs were captured. Returns facts, a fragment, or a skip reason.
    """
    if linktype == LinkType.ETHERNET and len(frame) >= 14 and frame[12] == 8 and frame[13] == 0:
        offset, ethertype = 14, ETH_IPV4  # the common case, without a function call
    else:
        parser = PARSERS.get(linktype)
        if parser is None:
            return "unsupported_linktype"
        link = parser(frame)
        if isinstance(link, str):
            return link
        offset, ethertype = link
    wire_len = max(wire_len, len(frame))
    if ethertype == ETH_IPV4:
        return _ipv4(frame, offset, wire_len - offset)
    return _ipv6(frame, offset, wire_len - offset)


def decode_ip(data: bytes, offset: int = 0) -> DecodeResult:
    """Decode a bare IP packet (a tunnel's inner packet, a raw-IP capture)."""
    link = raw_ip(data[offset : offset + 1])
    if isinstance(link, str):
        return link
    if link == (0, ETH_IPV4):
        return _ipv4(data, offset, len(data) - offset)
    return _ipv6(data, offset, len(data) - offset)


def _ipv4(frame: bytes, off: int, wire_avail: int) -> DecodeResult:
    if len(frame) - off < 20:
        return "truncated_ip"
    vihl, total, ident, frag, proto, src, dst = _IPV4(frame, off)
    if vihl >> 4 != 4:
        return "bad_ip_version"
    ihl = (vihl & 0x0F) << 2
    if ihl < 20:
        return "bad_ip_header_length"
    if total == 0:
        total = wire_avail  # segmentation offload: the NIC fills the length in later
    if total < ihl:
        return "bad_ip_length"
    if total > wire_avail:
        return "truncated_ip"  # the frame on the wire is shorter than the IP header claims
    if len(frame) - off < ihl:
        return "truncated_ip"
    end = off + total
    if frag & 0x3FFF:  # MF set or a non-zero offset
        return _new(
            Fragment,
            (
                src,
                dst,
                proto,
                ident,
                (frag & 0x1FFF) << 3,
                bool(frag & 0x2000),
                ihl,
                bytes(frame[off + ihl : end]),
            ),
        )
    return transport(src, dst, proto, frame, off + ihl, end, total)


def _ipv6(frame: bytes, off: int, wire_avail: int) -> DecodeResult:
    if len(frame) - off < 40:
        return "truncated_ipv6"
    if frame[off] >> 4 != 6:
        return "bad_ip_version"
    total = 40 + (frame[off + 4] << 8 | frame[off + 5])
    nh = frame[off + 6]
    if total == 40 and nh == 0:
        total = wire_avail  # a jumbogram: the real length is in a hop-by-hop option
    if total > wire_avail:
        return "truncated_ipv6"
    src = frame[off + 8 : off + 24]
    dst = frame[off + 24 : off + 40]
    end = off + total
    p = off + 40
    for _ in range(_MAX_IPV6_EXT):
        if nh in _IPV6_GENERIC_EXT:
            if p + 2 > end or p + 2 > len(frame):
                return "truncated_ipv6_extension"
            nh, p = frame[p], p + ((frame[p + 1] + 1) << 3)
        elif nh == _IPV6_AH:
            if p + 2 > end or p + 2 > len(frame):
                return "truncated_ipv6_extension"
            nh, p = frame[p], p + ((frame[p + 1] + 2) << 2)
        elif nh == _IPV6_FRAGMENT:
            if p + 8 > end or p + 8 > len(frame):
                return "truncated_ipv6_extension"
            frag = frame[p + 2] << 8 | frame[p + 3]
            if frag & 0xFFF9:  # a real fragment, not an "atomic" one (offset 0, M clear)
                ident = int.from_bytes(frame[p + 4 : p + 8], "big")
                return _new(
                    Fragment,
                    (
                        src,
                        dst,
                        frame[p],
                        ident,
                        frag & 0xFFF8,
                        bool(frag & 1),
                        p - off,
                        bytes(frame[p + 8 : end]),
                    ),
                )
            nh, p = frame[p], p + 8
        else:
            break
    else:
        return "too_many_ipv6_extensions"
    if p > end:
        return "truncated_ipv6_extension"
    return transport(src, dst, nh, frame, p, end, total)


# ICMP request/reply pairs, as Zeek keys them: a request's "ports" are (type, reply type); a reply
# is the same key seen from the other side, so both land in one flow. One-way messages use
# (type, code).
_ICMP4_PAIRS = {8: 0, 0: 8, 13: 14, 14: 13, 15: 16, 16: 15, 10: 9, 9: 10, 17: 18, 18: 17}
_ICMP6_PAIRS = {
    128: 129,
    129: 128,
    133: 134,
    134: 133,
    135: 136,
    136: 135,
    130: 131,
    131: 130,
    139: 140,
    140: 139,
    144: 145,
    145: 144,
}


def transport(
    src: bytes, dst: bytes, proto: int, data: bytes, l4: int, end: int, ip_bytes: int
) -> PacketFacts | str:
    """Decode the transport header at ``data[l4:end]`` (``end`` may lie beyond a cut capture)."""
    captured = (end if end < len(data) else len(data)) - l4
    if proto == TCP:
        if captured < 20:
            return "truncated_tcp"
        sport, dport, seq, offres, flags = _TCP(data, l4)
        header = (offres >> 4) << 2
        if header < 20 or l4 + header > end:
            return "bad_tcp_header_length"
        return _new(
            PacketFacts,
            (
                src,
                dst,
                TCP,
                sport,
                dport,
                flags,
                ip_bytes,
                end - l4 - header,
                data,
                l4 + header,
                seq,
            ),
        )
    if proto == UDP:
        if captured < 8:
            return "truncated_udp"
        sport, dport = _PORTS(data, l4)
        return _new(
            PacketFacts, (src, dst, UDP, sport, dport, 0, ip_bytes, end - l4 - 8, data, l4 + 8, 0)
        )
    if proto in (ICMP, ICMP6):
        if captured < 4:
            return "truncated_icmp"
        kind, code = data[l4], data[l4 + 1]
        counterpart = (_ICMP4_PAIRS if proto == ICMP else _ICMP6_PAIRS).get(kind)
        sport, dport = kind, code if counterpart is None else counterpart
        return _new(
            PacketFacts, (src, dst, proto, sport, dport, 0, ip_bytes, end - l4 - 8, data, l4 + 8, 0)
        )
    return _new(PacketFacts, (src, dst, proto, 0, 0, 0, ip_bytes, end - l4, data, l4, 0))
