"""NAT twins without conntrack: a container's flow on its bridge and its MASQUERADE'd sighting on
the uplink become one record (the bridge's), matched by destination, ports and time. The
conntrack path runs against the real kernel in tests/docker/test_nat.py."""

from __future__ import annotations

import dataclasses

from egresswatch.flows.nat import NatTwins
from egresswatch.flows.record import Direction, FlowRecord

CONTAINER, HOST, SERVER = "172.17.0.2", "198.51.100.129", "203.0.113.80"


def record(
    interface: str, src: str, *, sport: int = 40000, first_seen: float = 100.0, closed: bool = True
) -> FlowRecord:
    return FlowRecord(
        uid=f"C{interface}{src}{sport}{first_seen}",
        first_seen=first_seen,
        last_seen=first_seen + 1,
        interface=interface,
        direction=Direction.EGRESS,
        ip_proto=6,
        protocol="tcp",
        src_ip=src,
        src_port=sport,
        dst_ip=SERVER,
        dst_port=80,
        packets_out=5,
        bytes_out=500,
        packets_in=4,
        bytes_in=4000,
        state="SF",
        history="ShADadFf",
        closed=closed,
    )


def twins() -> NatTwins:
    t = NatTwins(None)
    t.bridges = frozenset({"docker0"})
    return t


def test_the_uplink_sighting_of_a_container_flow_is_dropped() -> None:
    t = twins()
    bridge, uplink = record("docker0", CONTAINER), record("eth0", HOST, first_seen=100.001)
    assert t.settle([uplink, bridge], 101.0) == [bridge]
    assert t.counters["flows_nat_twins_dropped"] == 1


def test_an_uplink_record_waits_for_its_twin_from_the_bridge() -> None:
    """The bridge's ring block may be handed over after the uplink's: the uplink record is held
    back until its twin shows up (or ``hold`` passes)."""
    t = twins()
    bridge, uplink = record("docker0", CONTAINER), record("eth0", HOST, first_seen=100.001)
    assert t.settle([uplink], 101.0) == []
    assert t.settle([bridge], 102.0) == [bridge]
    assert t.settle([], 110.0) == []


def test_the_hosts_own_flows_are_kept_after_the_hold() -> None:
    t = twins()
    own = record("eth0", HOST, sport=50000)
    assert t.settle([own], 101.0) == []
    assert t.settle([], 102.0) == []
    assert t.settle([], 103.0) == [own]
    assert t.counters["flows_nat_twins_dropped"] == 0


def test_same_ports_at_another_time_is_not_a_twin() -> None:
    t = twins()
    bridge, later = record("docker0", CONTAINER), record("eth0", HOST, first_seen=110.0)
    assert t.settle([bridge, later], 111.0) == [bridge]
    assert t.settle([], 113.0) == [later]


def test_every_record_of_a_dropped_flow_is_dropped() -> None:
    """A long flow: interim records, then the final one long after the bridge's sighting is
    forgotten; the uplink's are all dropped, the bridge's all kept."""
    t = twins()
    bridge = record("docker0", CONTAINER, closed=False)
    uplink = record("eth0", HOST, first_seen=100.001, closed=False)
    assert t.settle([bridge, uplink], 160.0) == [bridge]
    final_bridge = dataclasses.replace(bridge, last_seen=900.0, closed=True)
    final_uplink = dataclasses.replace(uplink, last_seen=900.0, closed=True)
    assert t.settle([final_uplink, final_bridge], 901.0) == [final_bridge]


def test_shutdown_releases_what_is_held() -> None:
    t = twins()
    own = record("eth0", HOST, sport=50000)
    assert t.settle([own], 101.0) == []
    assert t.settle([], 101.5, final=True) == [own]


def test_without_a_captured_bridge_records_pass_at_once() -> None:
    t = NatTwins(None)
    uplink = record("eth0", HOST)
    assert t.settle([uplink], 101.0) == [uplink]


def test_icmp_is_never_taken_for_a_twin() -> None:
    """Neighbour and router solicitations look alike on every interface (same multicast
    destination, same type): only TCP and UDP are matched."""
    t = twins()
    bridge = dataclasses.replace(record("docker0", CONTAINER), ip_proto=58, protocol="icmp6")
    uplink = dataclasses.replace(record("eth0", HOST, first_seen=100.001), ip_proto=58,
                                 protocol="icmp6")  # fmt: skip
    assert t.settle([bridge, uplink], 101.0) == [bridge, uplink]
