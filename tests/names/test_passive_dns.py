"""Passive DNS memory and the naming of flows from it (pure: answers and records in)."""

from __future__ import annotations

from egresswatch.enrich import Enricher
from egresswatch.flows.record import Direction
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


def test_a_flow_gets_the_name_its_client_looked_up_for_the_responder() -> None:
    memory = PassiveDns()
    memory.add(answer("models.example", "198.51.100.9", at=100.0))
    enricher = Enricher(memory)
    egress = Direction.EGRESS
    assert enricher.enrichment(egress, CLIENT, "198.51.100.9", 101.0).dns_name == "models.example"
    assert enricher.enrichment(egress, OTHER, "198.51.100.9", 101.0).dns_name is None
    assert enricher.enrichment(egress, CLIENT, "198.51.100.10", 101.0).dns_name is None
