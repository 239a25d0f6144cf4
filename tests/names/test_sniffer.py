"""The sniffer on crafted packets: which flow gets which name, and that buffering stays bounded."""

from __future__ import annotations

from scapy.layers.tls.extensions import ServerName, TLS_Ext_ServerName
from scapy.layers.tls.handshake import TLSClientHello
from scapy.layers.tls.record import TLS
from scapy.packet import Packet

from egresswatch.capture.frames import FrameBatch
from egresswatch.decode.linktypes import LinkType
from egresswatch.flows.record import ClientNames
from egresswatch.names.sniffer import NameSniffer
from egresswatch.pipeline import Decoder
from tests.packets import tcp

PADDED = [TLS_Ext_ServerName(servernames=[ServerName(servername=b"x" * 200)])] * 8


def hello(name: str, padding: bool = False) -> bytes:
    ext = [TLS_Ext_ServerName(servernames=[ServerName(servername=name.encode())])]
    return bytes(TLS(msg=[TLSClientHello(ciphers=[0x1301], ext=ext + (PADDED if padding else []))]))


def sniff(packets: list[Packet], decoder: Decoder | None = None) -> tuple[Decoder, list[str]]:
    """Run packets through a Decoder (the real batch path); the names it reports, in order."""
    decoder = decoder or Decoder()
    frames = [(1_700_000_000 + i * 0.001, bytes(p), len(p)) for i, p in enumerate(packets)]
    batch = FrameBatch.from_frames(frames, LinkType.ETHERNET)
    names: list[ClientNames] = []
    for item in decoder.prepare([batch], lambda _: "eth0"):
        names += [said for _, said in item.sniffed.names]
    return decoder, [n.server_name or "" for n in names]


def segments(data: bytes, size: int, *, sport: int = 40000, seq: int = 101) -> list[Packet]:
    return [
        tcp("PA", sport=sport, seq=seq + at, payload=data[at : at + size])
        for at in range(0, len(data), size)
    ]


def test_a_hello_over_several_segments_with_a_retransmission_is_read_once() -> None:
    data = hello("split.example", padding=True)
    parts = segments(data, 300)
    assert len(parts) > 3
    packets = [tcp("S", seq=100), *parts[:2], parts[1], *parts[2:]]  # parts[1] sent twice
    _, names = sniff(packets)
    assert names == ["split.example"]


def test_a_missing_segment_leaves_the_flow_unnamed_and_counted() -> None:
    parts = segments(hello("gap.example", padding=True), 300)
    decoder, names = sniff([tcp("S", seq=100), parts[0], *parts[2:]])
    assert names == []
    assert decoder.counters["unnamed_tls_gap"] == 1


def test_a_new_connection_on_the_same_ports_is_named_afresh() -> None:
    first = [tcp("S", seq=100), *segments(hello("one.example"), 1500)]
    again = [tcp("S", seq=100), *segments(hello("two.example"), 1500)]
    _, names = sniff(first + again)
    assert names == ["one.example", "two.example"]


def test_only_the_client_side_names_a_flow() -> None:
    server = tcp("PA", src="203.0.113.10", dst="10.0.0.2", sport=443, dport=40000, seq=900,
                 payload=hello("server.example"))  # fmt: skip
    _, names = sniff([tcp("S", seq=100), *segments(hello("client.example"), 1500), server])
    assert names == ["client.example"]


def test_garbage_that_looks_like_tls_is_counted_not_raised() -> None:
    decoder, names = sniff(
        [tcp("PA", seq=101, payload=b"\x16\x03\x01\x00\x05\x02\x00\x00\x01\x00")]
    )
    assert names == []
    assert decoder.counters["unnamed_tls_not_client_hello"] == 1


def test_unfinished_hellos_are_bounded() -> None:
    start = hello("never.example", padding=True)[:300]  # a hello that never completes
    decoder = Decoder()
    decoder.names = NameSniffer(max_unsettled=10)
    packets = [tcp("PA", sport=20000 + i, seq=101, payload=start) for i in range(50)]
    sniff(packets, decoder)
    assert decoder.counters["unnamed_names_too_many_unsettled"] == 40
    assert decoder.names.unsettled == 10
