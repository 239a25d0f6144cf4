"""Bulk accounting (FlowTable.add_batch) must give exactly the records of packet-by-packet `add`."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Dot1Q, Ether

from egresswatch.capture.frames import FrameBatch
from egresswatch.config import FlowSettings
from egresswatch.decode import LinkType, PacketFacts, decode
from egresswatch.decode.batch import decode_batch
from egresswatch.flows.grouping import group_batch
from egresswatch.flows.localnet import LocalNetworks
from egresswatch.flows.record import FlowRecord
from egresswatch.flows.table import FlowTable
from tests.packets import MACS

SETTINGS = FlowSettings(udp_idle_timeout=20.0, tcp_idle_timeout=40.0, close_grace=2.0)
LOCAL = LocalNetworks(["10.0.0.0/8"])
ENDS = {
    "tcp4": (("10.0.0.2", 40000), ("192.0.2.5", 443)),
    "tcp6": (("2001:db8::2", 40001), ("2001:db8::5", 80)),
    "udp": (("10.0.0.2", 40002), ("192.0.2.53", 53)),
    "vlan": (("10.0.0.3", 40003), ("198.51.100.1", 8443)),
    "icmp": (("10.0.0.2", 0), ("192.0.2.9", 0)),
}
FLAGS = ["A", "A", "PA", "PA", "S", "SA", "FA", "R", "RA"]


@st.composite
def frame(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(sorted(ENDS)))
    (a, ap), (b, bp) = ENDS[kind]
    if draw(st.booleans()):
        (a, ap), (b, bp) = (b, bp), (a, ap)
    payload = b"p" * draw(st.sampled_from([0, 0, 10, 1000]))
    ip = IPv6(src=a, dst=b) if ":" in a else IP(src=a, dst=b)
    if kind == "icmp":
        pkt = Ether(**MACS) / ip / ICMP(type=draw(st.sampled_from([8, 0, 3])))
    elif kind == "udp":
        pkt = Ether(**MACS) / ip / UDP(sport=ap, dport=bp) / payload
    else:
        seq = draw(st.integers(0, 3))
        flags = draw(st.sampled_from(FLAGS))
        pkt = Ether(**MACS) / ip / TCP(sport=ap, dport=bp, flags=flags, seq=seq) / payload
        if kind == "vlan":
            pkt = Ether(**MACS) / Dot1Q(vlan=7) / pkt.payload
    return bytes(pkt)


def per_packet(frames: list[tuple[float, bytes]]) -> list[FlowRecord]:
    table = FlowTable(SETTINGS, LOCAL)
    for ts, f in frames:
        facts = decode(f)
        assert isinstance(facts, PacketFacts)
        table.add(facts, ts, "eth0")
    return table.flush()


def in_batches(
    frames: list[tuple[float, bytes]], cuts: list[int], *, lean: bool = False
) -> list[FlowRecord]:
    """``lean``: as the accounting process gets batches from the decoding one, grouped there and
    stripped to the columns accounting reads."""
    table = FlowTable(SETTINGS, LOCAL)
    bounds = [0, *sorted({c % (len(frames) + 1) for c in cuts}), len(frames)]
    for lo, hi in itertools.pairwise(bounds):
        if lo == hi:
            continue
        batch = FrameBatch.from_frames(
            [(ts, f, len(f)) for ts, f in frames[lo:hi]], LinkType.ETHERNET
        )
        d = decode_batch(batch)
        extra = []
        for row in d.slow.tolist():
            facts = decode(frames[lo + row][1])
            assert isinstance(facts, PacketFacts)
            extra.append((row, frames[lo + row][0], facts))
        if lean:
            grouping = group_batch(d)
            table.add_grouped(d.for_accounting() if grouping else d, grouping, extra, "eth0")
        else:
            table.add_batch(d, extra, "eth0")
    return table.flush()


def summary(records: list[FlowRecord]) -> list[tuple[object, ...]]:
    return sorted(
        (
            r.uid,
            r.src_ip,
            r.src_port,
            r.dst_ip,
            r.dst_port,
            r.first_seen,
            r.last_seen,
            r.packets_out,
            r.bytes_out,
            r.packets_in,
            r.bytes_in,
            r.state,
            r.history,
        )
        for r in records
    )


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(frame(), st.sampled_from([0.001, 0.5, 3.0, 25.0, 45.0])), min_size=1, max_size=40
    ),
    st.lists(st.integers(0, 40), max_size=4),
)
def test_batches_account_exactly_like_single_packets(
    packets: list[tuple[bytes, float]], cuts: list[int]
) -> None:
    frames, now = [], 1000.0
    for f, gap in packets:
        now += gap
        frames.append((now, f))
    expected = summary(per_packet(frames))
    assert summary(in_batches(frames, cuts)) == expected
    assert summary(in_batches(frames, cuts, lean=True)) == expected


def test_bulk_path_is_taken() -> None:
    """A long established transfer is counted in bulk, and still exactly."""
    c, s = ("10.0.0.2", 40000), ("192.0.2.5", 443)
    hs = [
        (c, s, "S", b""),
        (s, c, "SA", b""),
        (c, s, "A", b""),
        (c, s, "PA", b"x"),
        (s, c, "PA", b"y"),
        (s, c, "A", b""),
    ]
    data = [(c, s, "PA", b"d" * 1000), (s, c, "A", b"")] * 500
    frames = [
        (
            1000.0 + i * 0.001,
            bytes(
                Ether(**MACS) / IP(src=a[0], dst=b[0]) / TCP(sport=a[1], dport=b[1], flags=fl) / p
            ),
        )
        for i, (a, b, fl, p) in enumerate(hs + data)
    ]
    assert summary(in_batches(frames, [6, 400])) == summary(per_packet(frames))
    assert summary(in_batches(frames, [6, 400], lean=True)) == summary(per_packet(frames))
