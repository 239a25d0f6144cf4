"""The flow table: initiator, Zeek states and history, timeouts, interim updates, bounds."""

from __future__ import annotations

from scapy.packet import Packet

from egresswatch.capture.frames import FrameBatch
from egresswatch.config import FlowSettings
from egresswatch.decode import LinkType
from egresswatch.decode.batch import decode_batch
from egresswatch.flows.key import flow_id, flow_uid
from egresswatch.flows.localnet import LocalNetworks
from egresswatch.flows.record import ClientNames, Direction, Enrichment, FlowRecord
from egresswatch.flows.table import FlowTable
from tests.packets import CLIENT, SERVER, facts, handshake_and_close, icmp_echo, tcp, udp

LOCAL = LocalNetworks(["10.0.0.0/8", "fd00::/8"])


def run(
    packets: list[tuple[float, Packet]],
    settings: FlowSettings | None = None,
    end: float | None = None,
) -> tuple[FlowTable, list[FlowRecord]]:
    """Feed (time, packet) pairs, sweeping as the pipeline does, then sweep at ``end``."""
    table = FlowTable(settings or FlowSettings(), LOCAL)
    out: list[FlowRecord] = []
    for ts, pkt in packets:
        out += table.sweep(ts)
        table.add(facts(pkt), ts, "eth0")
    if end is not None:
        out += table.sweep(end)
    return table, out


def spaced(
    packets: list[Packet], start: float = 100.0, step: float = 0.01
) -> list[tuple[float, Packet]]:
    return [(start + i * step, p) for i, p in enumerate(packets)]


def test_complete_connection() -> None:
    table, out = run(spaced(handshake_and_close()), end=200.0)
    assert len(out) == 1 and len(table) == 0
    r = out[0]
    assert (r.src_ip, r.src_port, r.dst_ip, r.dst_port, r.protocol) == (
        CLIENT,
        40000,
        SERVER,
        443,
        "tcp",
    )
    assert (r.state, r.history, r.closed) == ("SF", "ShADdFf", True)
    assert (r.packets_out, r.packets_in) == (6, 3)
    assert r.bytes_out == 6 * 40 + 18 and r.bytes_in == 3 * 40 + 19
    assert r.direction == Direction.EGRESS
    assert r.first_seen == 100.0 and abs(r.duration - 0.08) < 1e-9


def test_closed_flow_leaves_after_the_grace_period_only() -> None:
    table, out = run(spaced(handshake_and_close()), end=100.08 + 4.0)
    assert out == [] and len(table) == 1
    assert [r.state for r in table.sweep(100.08 + 5.0)] == ["SF"]


def test_unanswered_syn_is_s0_and_late_retransmission_is_a_new_attempt() -> None:
    syn = tcp("S", seq=1)
    table, out = run([(0.0, syn), (1.0, syn), (3.0, syn), (7.0, syn)])
    out += table.flush()
    assert [(r.state, r.history, r.packets_out) for r in out] == [("S0", "S", 3), ("S0", "S", 1)]


def test_rejected_connection() -> None:
    _, out = run(
        spaced([tcp("S"), tcp("RA", src=SERVER, dst=CLIENT, sport=443, dport=40000)]), end=200.0
    )
    assert [(r.state, r.history) for r in out] == [("REJ", "Sr")]


def test_flow_seen_mid_stream_is_turned_towards_the_server() -> None:
    reply = tcp("PA", src=SERVER, dst=CLIENT, sport=443, dport=40000, payload=b"data")
    _, out = run(spaced([reply, tcp("A")]), end=1000.0)
    r = out[0]
    assert (r.src_ip, r.dst_port, r.packets_out, r.packets_in) == (CLIENT, 443, 1, 1)
    assert r.history.startswith("^") and r.state == "OTH"


def test_syn_on_a_closed_five_tuple_opens_a_new_flow() -> None:
    packets = handshake_and_close() + handshake_and_close()
    table, out = run(spaced(packets, step=0.1))
    out += table.flush()
    assert [r.state for r in out] == ["SF", "SF"]
    assert out[0].uid != out[1].uid
    assert table.counters["flows_created"] == 2


def test_udp_exchange_and_unanswered_datagram() -> None:
    answered = [udp(), udp(src=SERVER, dst=CLIENT, sport=53, dport=40000)]
    _, out = run(spaced([*answered, udp(sport=40001)]), end=1000.0)
    states = {r.src_port: (r.state, r.history) for r in out}
    assert states == {40000: ("SF", "Dd"), 40001: ("S0", "D")}


def test_icmp_echo_is_one_flow() -> None:
    _, out = run(spaced([icmp_echo(), icmp_echo(reply=True, src=SERVER, dst=CLIENT)]), end=1000.0)
    assert [(r.protocol, r.src_port, r.dst_port, r.packets_out, r.packets_in) for r in out] == [
        ("icmp", 8, 0, 1, 1)
    ]


def test_idle_flow_ends_and_a_later_packet_starts_a_new_one() -> None:
    settings = FlowSettings(udp_idle_timeout=30.0)
    table, out = run([(0.0, udp(dport=123)), (10.0, udp(dport=123))], settings, end=39.0)
    assert out == []
    out = table.sweep(40.0)
    assert [(r.packets_out, r.closed) for r in out] == [(2, True)]
    table.add(facts(udp(dport=123)), 50.0, "eth0")
    assert len(table) == 1


def test_long_flow_gets_interim_updates_under_one_uid() -> None:
    settings = FlowSettings(active_timeout=60.0)
    packets = [(0.0, tcp("S")), (0.01, tcp("SA", src=SERVER, dst=CLIENT, sport=443, dport=40000))]
    packets += [(t, tcp("PA", payload=b"u" * 1000, seq=1 + int(t))) for t in range(1, 200)]
    table, out = run(packets, settings)
    out += table.flush()
    assert [r.closed for r in out] == [False, False, False, True]
    assert len({r.uid for r in out}) == 1
    sent = [r.bytes_out for r in out]
    assert sent == sorted(sent) and sent[-1] == 40 + 199 * 1040


def test_table_is_bounded_and_evictions_are_counted_not_lost() -> None:
    settings = FlowSettings(max_flows=3)
    table, out = run(spaced([udp(sport=p) for p in range(50000, 50005)]), settings)
    out += table.flush()
    assert table.counters["flows_evicted"] == 2
    assert sorted(r.src_port for r in out) == list(range(50000, 50005))


def test_directions() -> None:
    cases = [
        (CLIENT, SERVER, Direction.EGRESS),
        (SERVER, CLIENT, Direction.INGRESS),
        (CLIENT, "10.9.9.9", Direction.INTERNAL),
        ("192.0.2.1", SERVER, Direction.TRANSIT),
    ]
    for src, dst, expected in cases:
        _, out = run([(0.0, udp(src=src, dst=dst, sport=40000, dport=5000))], end=1000.0)
        assert out[0].direction == expected, (src, dst)


def test_uid_is_stable_for_the_same_flow() -> None:
    _, first = run(spaced(handshake_and_close()), end=200.0)
    _, again = run(spaced(handshake_and_close()), end=200.0)
    assert first[0].uid == again[0].uid
    assert first[0].uid.startswith("C") and len(first[0].uid) == 18
    assert flow_uid("eth1", 100.0, (b"\x01" * 4, 1, b"\x02" * 4, 2, 6)) != flow_uid(
        "eth0", 100.0, (b"\x01" * 4, 1, b"\x02" * 4, 2, 6)
    )


def _named_table(dns_name: str | None) -> FlowTable:
    def enrich(direction: Direction, src: str, dst: str, first_seen: float, *_: int) -> Enrichment:
        return Enrichment(dns_name, "CN", None, 4837, None)

    return FlowTable(FlowSettings(), LocalNetworks(["10.0.0.0/8"]), enrich=enrich)


def test_what_the_client_said_wins_over_dns_and_both_stay_visible() -> None:
    table = _named_table("models.example")
    table.add(facts(tcp("S")), 1.0)
    p = facts(tcp("S"))
    table.name(flow_id(p), ClientNames("weights.example", "sni", 1.5, "t13d", ("h2",)))
    table.add(facts(tcp("A", seq=1001)), 2.0)
    (rec,) = table.flush()
    assert (rec.server_name, rec.name_source, rec.dns_name) == (
        "weights.example", "sni", "models.example",
    )  # fmt: skip
    assert (rec.ja4, rec.alpn, rec.country, rec.asn) == ("t13d", "h2", "CN", 4837)


def test_without_a_client_name_the_dns_name_names_the_flow() -> None:
    table = _named_table("models.example")
    table.add(facts(tcp("S")), 1.0)
    (rec,) = table.flush()
    assert (rec.server_name, rec.name_source, rec.dns_name) == (
        "models.example", "dns", "models.example",
    )  # fmt: skip


def test_a_name_said_before_a_flow_started_belongs_to_the_earlier_flow() -> None:
    table = _named_table(None)
    p = facts(tcp("S"))
    table.name(flow_id(p), ClientNames("old.example", "sni", 0.5, None, ()))
    table.add(p, 1.0)  # this connection started after the hello was seen: not its name
    (rec,) = table.flush()
    assert (rec.server_name, rec.name_source) == (None, None)


def test_routed_traffic_seen_on_two_interfaces_is_one_flow() -> None:
    """A container's packets cross its bridge and the uplink with the same addresses when Docker
    does not NAT (IPv6, or masquerade off): one flow, on the interface that saw it first, with
    each packet counted once, packet by packet and in batches alike."""
    packets = spaced(handshake_and_close())
    alone = FlowTable(FlowSettings(), LOCAL)
    for ts, pkt in packets:
        alone.add(facts(pkt), ts, "docker0")
    [expected] = alone.flush()

    twice = FlowTable(FlowSettings(), LOCAL)
    for ts, pkt in packets:
        twice.add(facts(pkt), ts, "docker0")
        twice.add(facts(pkt), ts + 0.0001, "eth0")
    [one] = twice.flush()
    assert one == expected
    assert twice.counters["packets_seen_on_two_interfaces"] == len(packets)

    batched = FlowTable(FlowSettings(), LOCAL)
    frames = [(ts, bytes(pkt), len(pkt)) for ts, pkt in packets]
    for name, iface in (("docker0", 0), ("eth0", 1)):  # the uplink's ring block comes second
        batch = FrameBatch.from_frames(frames, LinkType.ETHERNET, iface)
        batched.add_batch(decode_batch(batch), [], name)
    [in_batches] = batched.flush()
    assert (in_batches.packets_out, in_batches.bytes_out, in_batches.state) == (
        expected.packets_out,
        expected.bytes_out,
        expected.state,
    )
    assert (in_batches.packets_in, in_batches.bytes_in, in_batches.interface) == (
        expected.packets_in,
        expected.bytes_in,
        "docker0",
    )
    assert batched.counters["packets_seen_on_two_interfaces"] == len(packets)
