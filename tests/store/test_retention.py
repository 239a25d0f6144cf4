"""Retention on SQLite and PostgreSQL: old flows, DNS answers and delivered posts go, in
batches; hourly totals older than the flows become daily ones that add up to the same; totals
past their own period go too. `egresswatch db prune` does it by hand."""

from __future__ import annotations

import time

import pytest

from egresswatch.names.passive_dns import DnsAnswer
from egresswatch.store import retention
from egresswatch.store.database import Database
from egresswatch.store.queries import DnsFilter, FlowFilter
from egresswatch.store.rollups import HOUR, TotalsFilter
from tests.store.test_flows_store import T0, flow
from tests.store.test_rollups import GROUPS, totals

DAY = 86400.0
NOW = T0 + 100 * DAY


def answer(uid: str, at: float) -> DnsAnswer:
    return DnsAnswer(uid=uid, time=at, client="10.0.0.2", resolver="10.0.0.1",
                     query="models.example", qtype="A", rcode="NOERROR",
                     answers=["203.0.113.7"], ttl=60, resolved=(("203.0.113.7", 60),))  # fmt: skip


def test_old_flows_go_and_their_totals_become_daily_ones(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retention, "BATCH", 7)  # many small batches
    records = []
    for day in (5, 50, 95):  # 95, 50 and 5 days old
        for h in range(0, 24, 3):
            at = NOW - day * DAY + h * HOUR
            records.append(flow(f"C{day}-{h}", first_seen=at, last_seen=at + 10,
                                server_name=f"n{h % 2}.example", bytes_out=100 + h))  # fmt: skip
    db.write_flows(records)
    db.write_dns([answer("Dold", NOW - 40 * DAY), answer("Dnew", NOW - DAY)])
    before = {g: totals(db, g) for g in GROUPS}

    pruned = db.prune(NOW, keep_flows_days=30, keep_totals_days=90)
    left = sorted(f["uid"] for f in db.flows(FlowFilter(limit=0)))
    assert left == sorted(r.uid for r in records if r.uid.startswith("C5-"))
    assert (pruned.flows, pruned.dns) == (16, 1)
    assert [a["query"] for a in db.dns(DnsFilter(limit=0))] == ["models.example"]
    # The 50-day-old hours became one row per day and key; nothing 95 days old is left.
    with db.engine.connect() as conn:
        hours = [h for (h,) in conn.exec_driver_sql("SELECT DISTINCT hour FROM flow_hours")]
    old = sorted(h for h in hours if h < NOW - 30 * DAY)
    days = {r.last_seen // DAY * DAY for r in records if r.uid.startswith("C50-")}
    assert old == sorted(days)
    after = {g: totals(db, g) for g in GROUPS}
    # What is left adds up to what the 5- and 50-day-old flows had, per group.
    for group in ("server_name", "container"):
        kept = {k: (v[0], v[1]) for k, v in after[group].items()}
        expected: dict[object, tuple[int, int]] = {}
        for r in records:
            if r.uid.startswith("C95-"):
                continue
            key = (r.server_name, None) if group == "server_name" else r.container_name
            n, b = expected.get(key, (0, 0))
            expected[key] = (n + 1, b + r.bytes_out)
        assert kept == expected, group
    assert before["server_name"] != after["server_name"]  # the 95-day-old totals are gone
    # A second pass finds nothing left to do.
    again = db.prune(NOW, keep_flows_days=30, keep_totals_days=90)
    assert (again.flows, again.dns, again.hours_folded, again.days) == (0, 0, 0, 0)


def test_zero_days_keeps_everything(db: Database) -> None:
    db.write_flows([flow("Cancient", first_seen=1000.0, last_seen=1010.0)])
    pruned = db.prune(NOW, keep_flows_days=0, keep_totals_days=0)
    assert (pruned.flows, pruned.days) == (0, 0)
    assert len(list(db.totals(TotalsFilter(limit=0)))) == 1


def test_db_prune_applies_the_configured_periods(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from egresswatch.cli.main import main

    db = Database(sqlite_url)
    db.upgrade()
    now = time.time()
    db.write_flows([flow("Cold"), flow("Cnow", first_seen=now, last_seen=now)])  # T0: long ago
    db.close()
    assert main(["db", "prune", "--db", sqlite_url]) == 0  # the default: 30 days
    assert "deleted 1 flows" in capsys.readouterr().out
