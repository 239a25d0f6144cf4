"""Small factories for test packets, crafted with scapy (never used on the hot path)."""

from __future__ import annotations

from pathlib import Path

from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Packet
from scapy.utils import wrpcap

from egresswatch.decode import PacketFacts, decode

MACS = {"src": "02:00:00:00:00:01", "dst": "02:00:00:00:00:02"}
"""Explicit MACs: without them scapy ARPs on the real network to fill them in."""
CLIENT = "10.0.0.2"
SERVER = "203.0.113.10"


def tcp(
    flags: str,
    *,
    src: str = CLIENT,
    dst: str = SERVER,
    sport: int = 40000,
    dport: int = 443,
    payload: bytes = b"",
    seq: int = 1000,
) -> Packet:
    ip = IPv6(src=src, dst=dst) if ":" in src else IP(src=src, dst=dst)
    return Ether(**MACS) / ip / TCP(sport=sport, dport=dport, flags=flags, seq=seq) / payload


def udp(
    *,
    src: str = CLIENT,
    dst: str = SERVER,
    sport: int = 40000,
    dport: int = 53,
    payload: bytes = b"q" * 20,
) -> Packet:
    ip = IPv6(src=src, dst=dst) if ":" in src else IP(src=src, dst=dst)
    return Ether(**MACS) / ip / UDP(sport=sport, dport=dport) / payload


def icmp_echo(reply: bool = False, *, src: str = CLIENT, dst: str = SERVER) -> Packet:
    return Ether(**MACS) / IP(src=src, dst=dst) / ICMP(type=0 if reply else 8, id=7, seq=1)


def facts(pkt: Packet) -> PacketFacts:
    """Decode a crafted Ethernet packet; fails the test if it does not decode."""
    result = decode(bytes(pkt))
    assert isinstance(result, PacketFacts), result
    return result


def handshake_and_close(
    *, sport: int = 40000, data: bytes = b"GET / HTTP/1.1\r\n\r\n"
) -> list[Packet]:
    """A complete TCP connection: handshake, request, response, FIN both ways."""
    c2s = {"sport": sport, "dport": 443}
    s2c = {"src": SERVER, "dst": CLIENT, "sport": 443, "dport": sport}
    return [
        tcp("S", **c2s, seq=100),
        tcp("SA", **s2c, seq=500),
        tcp("A", **c2s, seq=101),
        tcp("PA", **c2s, seq=101, payload=data),
        tcp("PA", **s2c, seq=501, payload=b"HTTP/1.1 200 OK\r\n\r\n"),
        tcp("A", **c2s, seq=101 + len(data)),
        tcp("FA", **c2s, seq=101 + len(data)),
        tcp("FA", **s2c, seq=520),
        tcp("A", **c2s, seq=102 + len(data)),
    ]


def write_pcap(
    path: Path, packets: list[Packet], *, start: float = 1_700_000_000.0, step: float = 0.01
) -> Path:
    """Write packets with evenly spaced timestamps."""
    for i, pkt in enumerate(packets):
        pkt.time = start + i * step
    wrpcap(str(path), packets)
    return path
