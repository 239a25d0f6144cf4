"""Passive DNS memory and the naming of flows from it (pure: answers and records in)."""

from __future__ import annotations

import dataclasses

from egresswatch.enrich import Enricher
from egresswatch.flows.record import Direction, FlowRecord
from egresswatch.names.passive_dns import DnsAnswer, PassiveDns

CLIENT, OTHER, RESOLVER = "10.0.0.5", "10.0.0.6", "10.0.0.1"


def answer(query: str, address: str, at: float, ttl: int = 60, client: str = CLIENT) -> DnsAnswer:
    return DnsAnswer(
        uid=f"D{query}{at}",
        time=at,
        client=client,
        resolver=RESOLVER,
        query=query,
        qtype="A",
        rcode="NOERROR",
        answers=(address,),
        ttl=ttl,
        resolved=((address, ttl),),
    )


def record(dst: str, first_seen: float, **names: object) -> FlowRecord:
    rec = FlowRecord(
        uid="C1", first_seen=first_seen, last_seen=first_seen + 1, interface="eth0",
        direction=Direction.EGRESS, ip_proto=6, protocol="tcp", src_ip=CLIENT, src_port=40000,
        dst_ip=dst, dst_port=443, packets_out=3, bytes_out=180, packets_in=2, bytes_in=120,
        state="SF", history="ShADadFf", closed=True,
    )  # fmt: skip
    return dataclasses.replace(rec, **names)  # type: ignore[arg-type]


def test_a_flow_is_named_by_its_own_clients_earlier_answer() -> None:
    memory = PassiveDns(grace=0)
    memory.add(answer("api.vendor.cn", "175.16.199.20", at=100.0))
    assert memory.name(CLIENT, "175.16.199.20", at=101.0) == "api.vendor.cn"
    assert memory.name(OTHER, "175.16.199.20", at=101.0) is None  # another host's lookup
    assert memory.name(CLIENT, "175.16.199.20", at=99.0) is None  # flow before the answer
    assert memory.name(CLIENT, "175.16.199.20", at=161.0) is None  # TTL over


def test_grace_keeps_an_expired_answer_useful_for_a_while() -> None:
    memory = PassiveDns(grace=300)
    memory.add(answer("api.vendor.cn", "175.16.199.20", at=100.0, ttl=60))
    assert memory.name(CLIENT, "175.16.199.20", at=400.0) == "api.vendor.cn"
    assert memory.name(CLIENT, "175.16.199.20", at=461.0) is None


def test_the_name_valid_when_the_flow_started_wins_over_a_later_one() -> None:
    memory = PassiveDns(grace=0)
    memory.add(answer("first.example", "192.0.2.7", at=100.0, ttl=30))
    memory.add(answer("second.example", "192.0.2.7", at=200.0, ttl=30))
    assert memory.name(CLIENT, "192.0.2.7", at=110.0) == "first.example"
    assert memory.name(CLIENT, "192.0.2.7", at=210.0) == "second.example"


def test_memory_is_bounded_and_counts_what_it_forgets() -> None:
    memory = PassiveDns(size=100)
    for i in range(250):
        memory.add(answer(f"n{i}.example", f"192.0.2.{i}", at=float(i)))
    assert len(memory) == 100
    assert memory.forgotten == 150
    assert memory.name(CLIENT, "192.0.2.249", at=250.0) == "n249.example"
    assert memory.name(CLIENT, "192.0.2.0", at=1.0) is None


def test_what_the_client_said_wins_and_the_dns_name_stays_visible() -> None:
    memory = PassiveDns()
    memory.add(answer("models.example", "198.51.100.9", at=100.0))
    enricher = Enricher(memory)
    said = record("198.51.100.9", 101.0, server_name="cdn.other.example", name_source="sni")
    (named,) = enricher.enrich([said])
    assert (named.server_name, named.name_source) == ("cdn.other.example", "sni")
    assert named.dns_name == "models.example"
    (plain,) = enricher.enrich([record("198.51.100.9", 102.0)])
    assert (plain.server_name, plain.name_source, plain.dns_name) == (
        "models.example", "dns", "models.example",
    )  # fmt: skip
    (nothing,) = enricher.enrich([record("198.51.100.10", 102.0)])
    assert (nothing.server_name, nothing.name_source, nothing.dns_name) == (None, None, None)


def test_an_open_flow_keeps_its_name_in_later_updates() -> None:
    memory = PassiveDns(size=1, grace=0)
    memory.add(answer("models.example", "198.51.100.9", at=100.0, ttl=5))
    enricher = Enricher(memory)
    interim = dataclasses.replace(record("198.51.100.9", 101.0), closed=False)
    assert enricher.enrich([interim])[0].server_name == "models.example"
    memory.add(answer("evicts.example", "198.51.100.77", at=5000.0))  # the pair is forgotten
    final = dataclasses.replace(interim, last_seen=9000.0, closed=True)
    assert enricher.enrich([final])[0].server_name == "models.example"
    assert enricher.enrich([final])[0].server_name is None  # closed: the memo is gone
