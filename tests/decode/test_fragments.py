"""IP fragment reassembly: a fragmented datagram counts once, at its reassembled size."""

from __future__ import annotations

import random

from scapy.layers.inet import IP, UDP, fragment
from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment, fragment6
from scapy.layers.l2 import Ether

from egresswatch.decode import Fragment, FragmentReassembler, PacketFacts, decode
from tests.packets import MACS


def _fragments(frames: list[bytes]) -> list[Fragment]:
    out = [decode(f) for f in frames]
    assert all(isinstance(f, Fragment) for f in out)
    return out  # type: ignore[return-value]


def test_ipv4_datagram_reassembled_even_out_of_order() -> None:
    payload = bytes(range(256)) * 10
    datagram = IP(src="10.0.0.2", dst="203.0.113.10", id=4242) / UDP(sport=5000, dport=53) / payload
    frames = [bytes(Ether(**MACS) / f) for f in fragment(datagram, fragsize=800)]
    assert len(frames) == 4
    pieces = _fragments(frames)
    random.Random(1).shuffle(pieces)
    reassembler = FragmentReassembler()
    results = [reassembler.add(p, now=1.0) for p in pieces]
    assert results[:-1] == [None, None, None]
    done = results[-1]
    assert isinstance(done, PacketFacts)
    assert (done.sport, done.dport, done.payload_len) == (5000, 53, len(payload))
    assert done.ip_bytes == 20 + 8 + len(payload)
    assert done.data[done.payload_offset :] == payload


def test_ipv6_fragment_header() -> None:
    payload = b"z" * 3000
    pkt = (
        IPv6(src="2001:db8::1", dst="2001:db8::2")
        / IPv6ExtHdrFragment(id=7)
        / UDP(sport=53, dport=40000)
        / payload
    )
    frames = [bytes(Ether(**MACS) / f) for f in fragment6(pkt, 1280)]
    reassembler = FragmentReassembler()
    results = [reassembler.add(p, now=1.0) for p in _fragments(frames)]
    done = results[-1]
    assert isinstance(done, PacketFacts)
    assert (done.sport, done.dport, done.payload_len) == (53, 40000, len(payload))


def test_incomplete_datagrams_expire_and_are_counted() -> None:
    datagram = IP(src="10.0.0.2", dst="203.0.113.10", id=1) / UDP() / (b"x" * 3000)
    first = _fragments([bytes(Ether(**MACS) / fragment(datagram, fragsize=1000)[0])])[0]
    reassembler = FragmentReassembler(timeout=30.0)
    assert reassembler.add(first, now=0.0) is None
    assert reassembler.expire(now=10.0) == 0
    assert reassembler.expire(now=31.0) == 1
    assert reassembler.dropped["fragment_timeout"] == 1


def test_table_is_bounded() -> None:
    reassembler = FragmentReassembler(max_datagrams=2)
    for ident in range(5):
        datagram = IP(src="10.0.0.2", dst="203.0.113.10", id=ident) / UDP() / (b"x" * 3000)
        frag = _fragments([bytes(Ether(**MACS) / fragment(datagram, fragsize=1000)[0])])[0]
        reassembler.add(frag, now=0.0)
    assert reassembler.dropped["fragment_table_full"] == 3
