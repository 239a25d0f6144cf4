"""Evidence: the first packets of each recent flow, bounded, written as a pcap tshark and
scapy read back."""

from __future__ import annotations

import io

from scapy.packet import Packet
from scapy.utils import rdpcap

from egresswatch.capture.frames import FrameBatch
from egresswatch.decode import LinkType
from egresswatch.decode.batch import decode_batch
from egresswatch.flows.evidence import Evidence
from egresswatch.flows.grouping import group_batch
from egresswatch.flows.key import flow_id
from tests.packets import facts, handshake_and_close, udp


def batch_of(packets: list[Packet], start: float = 100.0) -> FrameBatch:
    frames = [(start + i * 0.01, bytes(p), len(p)) for i, p in enumerate(packets)]
    return FrameBatch.from_frames(frames, LinkType.ETHERNET)


def test_the_first_packets_of_a_flow_come_back_as_a_pcap() -> None:
    packets = handshake_and_close()
    evidence = Evidence(packets=4, snaplen=64)
    batch = batch_of(packets)
    decoded = decode_batch(batch)
    evidence.add(batch, decoded, group_batch(decoded))
    pcap = evidence.pcap(flow_id(facts(packets[0])))
    assert pcap is not None
    read = rdpcap(io.BytesIO(pcap))
    assert len(read) == 4
    assert [bytes(p)[:64] for p in read] == [bytes(p)[:64] for p in packets[:4]]
    assert abs(float(read[1].time) - 100.01) < 1e-6
    assert evidence.pcap(flow_id(facts(udp()))) is None


def test_only_the_most_recent_flows_are_kept() -> None:
    evidence = Evidence(flows=2)
    for port in (1000, 1001, 1002):
        batch = batch_of([udp(sport=port)])
        decoded = decode_batch(batch)
        evidence.add(batch, decoded, group_batch(decoded))
    assert evidence.pcap(flow_id(facts(udp(sport=1000)))) is None
    assert evidence.pcap(flow_id(facts(udp(sport=1002)))) is not None
