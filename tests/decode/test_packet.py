"""The hot-path decoder against packets crafted with scapy, one link and IP variant at a time."""

from __future__ import annotations

import struct

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import (
    ICMPv6EchoReply,
    ICMPv6EchoRequest,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
)
from scapy.layers.l2 import ARP, CookedLinux, CookedLinuxV2, Dot1AD, Dot1Q, Ether, Loopback
from scapy.packet import Packet

from egresswatch.decode import Fragment, LinkType, PacketFacts, decode
from tests.packets import MACS, facts, tcp


def test_ipv4_tcp_facts() -> None:
    f = facts(tcp("PA", sport=41000, dport=443, payload=b"hello", seq=77))
    assert f.src == bytes([10, 0, 0, 2]) and f.dst == bytes([203, 0, 113, 10])
    assert (f.proto, f.sport, f.dport, f.seq) == (6, 41000, 443, 77)
    assert f.tcp_flags == 0x18  # PSH|ACK
    assert f.ip_bytes == 20 + 20 + 5
    assert f.payload_len == 5
    assert f.data[f.payload_offset : f.payload_offset + 5] == b"hello"


def test_ethernet_padding_is_not_payload() -> None:
    frame = bytes(tcp("A"))  # 54 bytes: the NIC pads it to the 60-byte minimum
    padded = frame + b"\x00" * 6
    f = decode(padded)
    assert isinstance(f, PacketFacts)
    assert (f.ip_bytes, f.payload_len) == (40, 0)


@pytest.mark.parametrize(
    "tags",
    [
        pytest.param(lambda ip: Ether(**MACS) / Dot1Q(vlan=10) / ip, id="802.1Q"),
        pytest.param(lambda ip: Ether(**MACS) / Dot1AD(vlan=20) / Dot1Q(vlan=10) / ip, id="QinQ"),
    ],
)
def test_vlan_tags(tags) -> None:  # type: ignore[no-untyped-def]
    pkt = tags(IP(src="10.0.0.2", dst="203.0.113.10") / UDP(sport=5000, dport=53) / (b"x" * 10))
    f = decode(bytes(pkt))
    assert isinstance(f, PacketFacts)
    assert (f.sport, f.dport, f.ip_bytes, f.payload_len) == (5000, 53, 38, 10)


IP4_UDP = IP(src="10.0.0.2", dst="198.51.100.7") / UDP(sport=1234, dport=53) / b"abcd"


@pytest.mark.parametrize(
    ("linktype", "frame"),
    [
        pytest.param(LinkType.LINUX_SLL, bytes(CookedLinux(proto=0x0800) / IP4_UDP), id="SLL"),
        pytest.param(LinkType.LINUX_SLL2, bytes(CookedLinuxV2(proto=0x0800) / IP4_UDP), id="SLL2"),
        pytest.param(LinkType.RAW, bytes(IP4_UDP), id="raw"),
        pytest.param(LinkType.IPV4, bytes(IP4_UDP), id="ipv4"),
        pytest.param(LinkType.NULL, struct.pack("<I", 2) + bytes(IP4_UDP), id="null-little-endian"),
        pytest.param(LinkType.NULL, struct.pack(">I", 2) + bytes(IP4_UDP), id="null-big-endian"),
        pytest.param(
            LinkType.LOOP,
            bytes(Loopback(type=2) / IP4_UDP)[:0] + struct.pack(">I", 2) + bytes(IP4_UDP),
            id="loop",
        ),
    ],
)
def test_link_types(linktype: int, frame: bytes) -> None:
    f = decode(frame, linktype)
    assert isinstance(f, PacketFacts), f
    assert (f.dst, f.sport, f.dport, f.payload_len) == (bytes([198, 51, 100, 7]), 1234, 53, 4)


def test_bsd_loopback_ipv6() -> None:
    pkt = IPv6(src="::1", dst="::1") / TCP(sport=5555, dport=80, flags="S")
    for family in (24, 28, 30):  # NetBSD/OpenBSD, FreeBSD, macOS
        f = decode(struct.pack("<I", family) + bytes(pkt), LinkType.NULL)
        assert isinstance(f, PacketFacts) and f.dport == 80


def test_ipv4_options_are_skipped() -> None:
    pkt = (
        Ether(**MACS)
        / IP(src="10.0.0.2", dst="203.0.113.1", options=b"\x01" * 8)
        / UDP(sport=9, dport=10)
        / b"zz"
    )
    f = facts(pkt)
    assert (f.sport, f.dport, f.ip_bytes, f.payload_len) == (9, 10, 28 + 8 + 2, 2)


def test_ipv6_extension_headers() -> None:
    pkt = (
        Ether(**MACS)
        / IPv6(src="2001:db8::1", dst="2001:db8::2")
        / IPv6ExtHdrHopByHop()
        / IPv6ExtHdrDestOpt()
        / IPv6ExtHdrRouting()
        / TCP(sport=1111, dport=443, flags="S")
    )
    f = facts(pkt)
    assert (f.proto, f.sport, f.dport) == (6, 1111, 443)
    assert f.ip_bytes == len(bytes(pkt)) - 14


@pytest.mark.parametrize(
    ("request_pkt", "reply_pkt"),
    [
        pytest.param(
            IP(src="10.0.0.2", dst="192.0.2.1") / ICMP(type=8),
            IP(src="192.0.2.1", dst="10.0.0.2") / ICMP(type=0),
            id="icmp",
        ),
        pytest.param(
            IPv6(src="fd00::2", dst="2001:db8::1") / ICMPv6EchoRequest(),
            IPv6(src="2001:db8::1", dst="fd00::2") / ICMPv6EchoReply(),
            id="icmp6",
        ),
    ],
)
def test_icmp_echo_request_and_reply_share_a_key(request_pkt: Packet, reply_pkt: Packet) -> None:
    req, rep = facts(Ether(**MACS) / request_pkt), facts(Ether(**MACS) / reply_pkt)
    assert (req.src, req.sport, req.dst, req.dport) == (rep.dst, rep.dport, rep.src, rep.sport)


def test_icmp_one_way_messages_use_the_code() -> None:
    f = facts(Ether(**MACS) / IP(src="10.0.0.1", dst="10.0.0.2") / ICMP(type=3, code=1))
    assert (f.sport, f.dport) == (3, 1)


def test_snaplen_cut_frame_still_counts_the_ip_length() -> None:
    full = bytes(tcp("PA", payload=b"x" * 1000))
    f = decode(full[:96], LinkType.ETHERNET, len(full))
    assert isinstance(f, PacketFacts)
    assert (f.ip_bytes, f.payload_len) == (1040, 1000)


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b"\x00" * 10, "truncated_ethernet"),
        (bytes(Ether(**MACS) / ARP()), "not_ip"),
        (bytes(Ether(**MACS, type=0x0800)) + b"\x45\x00", "truncated_ip"),
        (bytes(Ether(**MACS) / IP(version=5) / UDP()), "bad_ip_version"),
        (bytes(Ether(**MACS) / IP(ihl=4) / UDP()), "bad_ip_header_length"),
        (bytes(Ether(**MACS) / IP(len=400) / UDP()), "truncated_ip"),  # the wire frame is shorter
        (bytes(Ether(**MACS) / IP() / TCP(dataofs=3)), "bad_tcp_header_length"),
        (bytes(Ether(**MACS) / IP(proto=6) / (b"\x00" * 8)), "truncated_tcp"),
        (bytes(Ether(**MACS) / IP(proto=17) / (b"\x00" * 4)), "truncated_udp"),
        (bytes(Ether(**MACS) / IPv6())[:40], "truncated_ipv6"),
        (
            bytes(Ether(**MACS) / Dot1Q() / Dot1Q() / Dot1Q() / Dot1Q() / Dot1Q() / IP()),
            "too_many_vlan_tags",
        ),
    ],
)
def test_malformed_packets_are_reasons_not_errors(frame: bytes, reason: str) -> None:
    assert decode(frame) == reason


def test_unknown_link_type() -> None:
    assert decode(b"\x00" * 64, 147) == "unsupported_linktype"


def test_ipv4_fragments_are_handed_to_reassembly() -> None:
    pkt = (
        IP(src="10.0.0.2", dst="203.0.113.10", id=99, flags="MF", frag=0)
        / UDP(sport=1, dport=53)
        / (b"a" * 100)
    )
    f = decode(bytes(Ether(**MACS) / pkt))
    assert isinstance(f, Fragment)
    assert (f.ident, f.offset, f.more, f.header_len) == (99, 0, True, 20)
