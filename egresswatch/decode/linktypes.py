"""Link layers: find where the IP packet starts in a captured frame.

Each parser returns ``(ip_offset, ethertype)`` or a skip reason (a short string that the caller
counts). Only the IP ethertypes are returned; anything else is reported as ``not_ip``.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import IntEnum

ETH_IPV4 = 0x0800
ETH_IPV6 = 0x86DD
_VLAN_TAGS = frozenset({0x8100, 0x88A8, 0x9100})
_MAX_VLAN_TAGS = 4  # QinQ is two; more than four is a malformed or hostile frame

LinkResult = tuple[int, int] | str
LinkParser = Callable[[bytes], LinkResult]


class LinkType(IntEnum):
    """The pcap LINKTYPE_* values egresswatch decodes."""

    NULL = 0  # BSD loopback, address family in host byte order
    ETHERNET = 1
    RAW = 101
    LOOP = 108  # OpenBSD loopback, address family in network byte order
    LINUX_SLL = 113  # Linux cooked capture v1 ("any" before libpcap 1.10)
    IPV4 = 228
    IPV6 = 229
    LINUX_SLL2 = 276  # Linux cooked capture v2 ("any" since libpcap 1.10)


def ethernet(frame: bytes) -> LinkResult:
    """Ethernet II with any number (up to four) of 802.1Q / 802.1ad tags."""
    if len(frame) < 14:
        return "truncated_ethernet"
    ethertype = frame[12] << 8 | frame[13]
    offset = 14
    tags = 0
    while ethertype in _VLAN_TAGS:
        tags += 1
        if tags > _MAX_VLAN_TAGS:
            return "too_many_vlan_tags"
        if len(frame) < offset + 4:
            return "truncated_vlan"
        ethertype = frame[offset + 2] << 8 | frame[offset + 3]
        offset += 4
    return _ip_ethertype(offset, ethertype)


def linux_sll(frame: bytes) -> LinkResult:
    if len(frame) < 16:
        return "truncated_sll"
    return _ip_ethertype(16, frame[14] << 8 | frame[15])


def linux_sll2(frame: bytes) -> LinkResult:
    if len(frame) < 20:
        return "truncated_sll2"
    return _ip_ethertype(20, frame[0] << 8 | frame[1])


def raw_ip(frame: bytes) -> LinkResult:
    if not frame:
        return "truncated_ip"
    version = frame[0] >> 4
    if version == 4:
        return (0, ETH_IPV4)
    if version == 6:
        return (0, ETH_IPV6)
    return "bad_ip_version"


# BSD AF_INET6 differs per OS (24 NetBSD/OpenBSD, 28 FreeBSD, 30 macOS); AF_INET is 2 everywhere.
_AF_INET6 = frozenset({24, 28, 30})


def bsd_null(frame: bytes) -> LinkResult:
    """BSD loopback: 4-byte address family in the *capturing* host's byte order."""
    if len(frame) < 4:
        return "truncated_loopback"
    family = int.from_bytes(frame[:4], "little")
    if family > 0xFFFF:  # written by a big-endian host
        family = int.from_bytes(frame[:4], "big")
    return _loopback_family(family)


def bsd_loop(frame: bytes) -> LinkResult:
    if len(frame) < 4:
        return "truncated_loopback"
    return _loopback_family(int.from_bytes(frame[:4], "big"))


def _loopback_family(family: int) -> LinkResult:
    if family == 2:
        return (4, ETH_IPV4)
    if family in _AF_INET6:
        return (4, ETH_IPV6)
    return "not_ip"


def _ip_ethertype(offset: int, ethertype: int) -> LinkResult:
    if ethertype in (ETH_IPV4, ETH_IPV6):
        return (offset, ethertype)
    return "not_ip"


def _ipv4_only(frame: bytes) -> LinkResult:
    return (0, ETH_IPV4)


def _ipv6_only(frame: bytes) -> LinkResult:
    return (0, ETH_IPV6)


PARSERS: dict[int, LinkParser] = {
    LinkType.NULL: bsd_null,
    LinkType.ETHERNET: ethernet,
    LinkType.RAW: raw_ip,
    12: raw_ip,  # DLT_RAW as some BSDs number it in old files
    14: raw_ip,
    LinkType.LOOP: bsd_loop,
    LinkType.LINUX_SLL: linux_sll,
    LinkType.IPV4: _ipv4_only,
    LinkType.IPV6: _ipv6_only,
    LinkType.LINUX_SLL2: linux_sll2,
}
"""Link parsers by pcap link type."""
