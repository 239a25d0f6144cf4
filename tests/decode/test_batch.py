"""The vectorised decoder must agree with the per-packet decoder on every row it takes."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrHopByHop
from scapy.layers.l2 import ARP, CookedLinux, CookedLinuxV2, Dot1Q, Ether

from egresswatch.capture.frames import FrameBatch
from egresswatch.decode import LinkType, PacketFacts, decode
from egresswatch.decode.batch import address_bytes, decode_batch
from tests.packets import MACS, handshake_and_close, icmp_echo, tcp, udp

ETHERNET_CORPUS = [
    bytes(p)
    for p in [
        *handshake_and_close(),
        udp(),
        icmp_echo(),
        tcp("S", src="2001:db8::1", dst="2001:db8::2"),
        udp(src="2001:db8::1", dst="2001:db8::53"),
        Ether(**MACS) / Dot1Q(vlan=5) / IP(src="10.0.0.1", dst="192.0.2.1") / UDP() / (b"v" * 30),
        Ether(**MACS) / IPv6(dst="2001:db8::9") / IPv6ExtHdrHopByHop() / UDP(),  # ext header: slow
        Ether(**MACS) / IP(dst="192.0.2.9", flags="MF") / UDP() / (b"f" * 64),  # fragment: slow
        Ether(**MACS) / ARP(),  # not IP: slow, then skipped
        Ether(**MACS) / IP(dst="192.0.2.7") / ICMP(type=3, code=3),
    ]
]


def check_agreement(frames: list[bytes], linktype: int, wire: list[int] | None = None) -> int:
    """Decode both ways; returns how many rows the bulk path took."""
    wire = wire or [len(f) for f in frames]
    batch = FrameBatch.from_frames(
        [(float(i), f, w) for i, (f, w) in enumerate(zip(frames, wire, strict=True))], linktype
    )
    d = decode_batch(batch)
    assert sorted([*d.row.tolist(), *d.slow.tolist()]) == list(range(len(frames)))
    for i, row in enumerate(d.row.tolist()):
        expected = decode(frames[row], linktype, wire[row])
        assert isinstance(expected, PacketFacts), (row, expected)
        start = int(batch.start[row])
        got = (
            address_bytes(d.src[i].tolist(), bool(d.v6[i])),
            address_bytes(d.dst[i].tolist(), bool(d.v6[i])),
            int(d.proto[i]),
            int(d.sport[i]),
            int(d.dport[i]),
            int(d.flags[i]),
            int(d.ip_bytes[i]),
            int(d.payload_len[i]),
            int(d.payload_offset[i]) - start,
            int(d.seq[i]),
        )
        assert got == (*expected[:8], expected.payload_offset, expected.seq)
        assert d.ts[i] == float(row)
    return len(d)


def test_corpus_splits_between_bulk_and_slow_paths() -> None:
    bulk = check_agreement(ETHERNET_CORPUS, LinkType.ETHERNET)
    assert bulk == len(ETHERNET_CORPUS) - 3  # extension header, fragment, ARP


def test_other_link_types() -> None:
    ip = IP(src="10.0.0.1", dst="198.51.100.1") / UDP(sport=1, dport=2) / b"abc"
    assert check_agreement([bytes(CookedLinux(proto=0x800) / ip)], LinkType.LINUX_SLL) == 1
    assert check_agreement([bytes(CookedLinuxV2(proto=0x800) / ip)], LinkType.LINUX_SLL2) == 1
    assert check_agreement([bytes(ip)], LinkType.RAW) == 1
    assert check_agreement([struct.pack("<I", 2) + bytes(ip)], LinkType.NULL) == 0  # per packet


def test_snaplen_cut_frames() -> None:
    frames = [bytes(tcp("PA", payload=b"x" * 1400))]
    assert check_agreement([frames[0][:96]], LinkType.ETHERNET, [len(frames[0])]) == 1


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(ETHERNET_CORPUS), st.data()), min_size=1, max_size=12))
def test_mutated_frames_agree(items: list[tuple[bytes, st.DataObject]]) -> None:
    frames, wire = [], []
    for frame, data in items:
        cut = data.draw(st.integers(0, len(frame)))
        mutated = bytearray(frame[:cut])
        for _ in range(data.draw(st.integers(0, 3))):
            if mutated:
                mutated[data.draw(st.integers(0, len(mutated) - 1))] = data.draw(
                    st.integers(0, 255)
                )
        frames.append(bytes(mutated))
        wire.append(len(frame))
    check_agreement(frames, LinkType.ETHERNET, wire)
