"""The passive-DNS history on a real SQLite file and a real PostgreSQL server."""

from __future__ import annotations

from typing import Any

from egresswatch.names.passive_dns import DnsAnswer
from egresswatch.store.database import Database
from egresswatch.store.queries import DnsFilter

T0 = 1_732_350_000.0


def answer(uid: str, query: str, *values: str, at: float = T0, rcode: str = "NOERROR") -> DnsAnswer:
    addresses = tuple((v, 300) for v in values if v[0].isdigit() or ":" in v)
    return DnsAnswer(
        uid, at, "10.0.0.5", "10.0.0.1", query, "A", rcode, values, 300 if values else None,
        addresses,
    )  # fmt: skip


def queries(db: Database, **flt: Any) -> list[str]:
    flt.setdefault("limit", 0)
    return [row["query"] for row in db.dns(DnsFilter(**flt))]


def test_an_answer_round_trips_with_its_chain(db: Database) -> None:
    chain = answer("D1", "telemetry.vendor.cn", "edge.vendor-cdn.cn", "175.16.199.20")
    db.write_dns([chain])
    (row,) = db.dns(DnsFilter())
    assert row == {
        "time": T0, "client": "10.0.0.5", "resolver": "10.0.0.1",
        "query": "telemetry.vendor.cn", "qtype": "A", "rcode": "NOERROR",
        "answers": ["edge.vendor-cdn.cn", "175.16.199.20"], "ttl": 300,
    }  # fmt: skip


def test_the_same_answer_twice_is_stored_once(db: Database) -> None:
    first = answer("D1", "a.example", "192.0.2.1")
    db.write_dns([first, first])
    db.write_dns([first])  # a replay of the same capture
    assert queries(db) == ["a.example"]


def test_name_globs_and_exact_names(db: Database) -> None:
    db.write_dns([
        answer("D1", "api.vendor.cn", "192.0.2.1", at=T0),
        answer("D2", "cdn.vendor.cn", "192.0.2.2", at=T0 + 1),
        answer("D3", "vendor.cn.example", "192.0.2.3", at=T0 + 2),
        answer("D4", "a_b.example", "192.0.2.4", at=T0 + 3),
        answer("D5", "axb.example", "192.0.2.5", at=T0 + 4),
    ])  # fmt: skip
    assert queries(db, name="*.vendor.cn") == ["cdn.vendor.cn", "api.vendor.cn"]
    assert queries(db, name="API.Vendor.CN.") == ["api.vendor.cn"]
    assert queries(db, name="a?b.example") == ["axb.example", "a_b.example"]
    assert queries(db, name="a_b.example") == ["a_b.example"]  # "_" is not a wildcard


def test_who_resolved_an_address(db: Database) -> None:
    db.write_dns([
        answer("D1", "one.example", "198.51.100.7", at=T0),
        answer("D2", "two.example", "cname.example", "198.51.100.7", at=T0 + 1),
        answer("D3", "three.example", "198.51.100.8", at=T0 + 2),
        answer("D4", "six.example", "2001:db8::7", at=T0 + 3),
        answer("D5", "gone.example", at=T0 + 4, rcode="NXDOMAIN"),
    ])  # fmt: skip
    assert queries(db, ip="198.51.100.7") == ["two.example", "one.example"]
    assert queries(db, ip="2001:0db8:0::7") == ["six.example"]  # any spelling of the address
    assert queries(db, ip="198.51.100.9") == []


def test_newest_first_time_window_and_limit(db: Database) -> None:
    db.write_dns([answer(f"D{i}", f"n{i}.example", "192.0.2.1", at=T0 + i) for i in range(10)])
    assert queries(db, limit=3) == ["n9.example", "n8.example", "n7.example"]
    assert queries(db, since=T0 + 7) == ["n9.example", "n8.example", "n7.example"]
    assert queries(db, until=T0 + 1) == ["n1.example", "n0.example"]
    assert len(queries(db)) == 10
