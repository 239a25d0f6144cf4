"""Hourly totals (flow_hours) against the flows they sum, on SQLite and PostgreSQL: interim
updates add only their increase, every grouping adds up to the flows' own totals, and the
migration that introduced them rolls up the flows stored before it."""

from __future__ import annotations

import dataclasses
import math
import random
import time
from collections import defaultdict
from typing import Any

from alembic import command
from sqlalchemy import event, insert

from egresswatch.flows.record import Direction
from egresswatch.store import migrate
from egresswatch.store.database import Database
from egresswatch.store.models import FlowRow
from egresswatch.store.queries import FlowFilter
from egresswatch.store.rollups import HOUR, TotalsFilter
from egresswatch.store.writer import FLOW_COLUMNS, flow_values
from tests.store.test_flows_store import T0, flow

GROUPS = ("server_name", "country", "asn", "container", "process")


def varied_flows(n: int, seed: int = 7) -> list[Any]:
    """``n`` flows over two days, to a few names, places, containers and processes."""
    rng = random.Random(seed)
    records = []
    for i in range(n):
        start = T0 + rng.uniform(0, 2 * 86400)
        named = rng.random() < 0.7
        records.append(flow(
            f"C{i:06d}", first_seen=start, last_seen=start + rng.uniform(0, 30),
            direction=rng.choice([Direction.EGRESS, Direction.EGRESS, Direction.INTERNAL]),
            dst_ip=f"203.0.113.{rng.randrange(1, 20)}",
            server_name=rng.choice(["api.example.com", "weights.example", "x.vendor.cn"])
            if named else None,
            country=rng.choice(["SE", "CN", None]), asn=rng.choice([29518, 209, None]),
            as_org="Bredband2 AB", container_name=rng.choice(["ollama", "dify-api", None]),
            process=rng.choice(["ollama", "python3", None]),
            packets_out=rng.randrange(1, 50), bytes_out=rng.randrange(40, 10**6),
            packets_in=rng.randrange(1, 50), bytes_in=rng.randrange(40, 10**6),
        ))  # fmt: skip
    return records


def expected_totals(db: Database, group_by: str, since: float | None = None) -> dict[Any, Any]:
    """What each group adds up to, from the flows themselves (the oracle)."""
    totals: dict[Any, list[Any]] = defaultdict(lambda: [0, 0, 0, float("inf"), 0.0])
    for f in db.flows(FlowFilter(limit=0)):
        if since is not None and f["last_seen"] < since:
            continue
        key = {
            "server_name": (f["server_name"], None if f["server_name"] else f["dst_ip"]),
            "country": f["country"],
            "asn": f["asn"],
            "container": f["container_name"],
            "process": f["process"],
        }[group_by]
        t = totals[key]
        t[0] += 1
        t[1] += f["bytes_out"]
        t[2] += f["bytes_in"]
        t[3] = min(t[3], f["first_seen"])
        t[4] = max(t[4], f["last_seen"])
    return {k: tuple(v) for k, v in totals.items()}


def totals(db: Database, group_by: str, since: float | None = None) -> dict[Any, Any]:
    flt = TotalsFilter(group_by=group_by, since=since, limit=0)  # type: ignore[arg-type]
    found = {}
    for row in db.totals(flt):
        key = (row["server_name"], row["dst_ip"]) if group_by == "server_name" else row[group_by]
        found[key] = (row["flows"], row["bytes_out"], row["bytes_in"], row["first_seen"],
                      row["last_seen"])  # fmt: skip
    return found


def test_every_grouping_adds_up_to_the_flows_totals(db: Database) -> None:
    records = varied_flows(600)
    for start in range(0, len(records), 100):
        db.write_flows(records[start : start + 100])
    for group_by in GROUPS:
        assert totals(db, group_by) == expected_totals(db, group_by), group_by
    # Ordered by bytes out, largest first; a limit keeps the top ones.
    top = list(db.totals(TotalsFilter(group_by="process", limit=2)))
    assert len(top) == 2 and top[0]["bytes_out"] >= top[1]["bytes_out"]


def test_interim_updates_add_their_increase_in_the_hour_they_were_reported(db: Database) -> None:
    long = dict(first_seen=T0, server_name="weights.example", container_name="ollama")
    db.write_flows([flow("CLong", **long, last_seen=T0 + 60, bytes_out=1000, bytes_in=10,
                         closed=False)])  # fmt: skip
    db.write_flows([flow("CLong", **long, last_seen=T0 + 60, bytes_out=1000, bytes_in=10,
                         closed=False)])  # the same report again: nothing added  # fmt: skip
    db.write_flows([flow("CLong", **long, last_seen=T0 + 2 * HOUR, bytes_out=5000, bytes_in=50)])
    [row] = db.totals(TotalsFilter(group_by="server_name", limit=0))
    assert (row["flows"], row["bytes_out"], row["bytes_in"]) == (1, 5000, 50)
    # From the later hour on, only the bytes reported then.
    [late] = db.totals(TotalsFilter(group_by="server_name", since=T0 + 2 * HOUR, limit=0))
    assert (late["flows"], late["bytes_out"]) == (0, 4000)


def test_since_selects_whole_hours(db: Database) -> None:
    db.write_flows(varied_flows(300, seed=3))
    since = T0 + 86400 + 1800  # half past: the whole hour is counted
    hour = (since // HOUR) * HOUR
    assert totals(db, "country", since) == expected_totals(db, "country", hour)


def test_the_migration_rolls_up_the_flows_stored_before_it(db_url: str) -> None:
    db = Database(db_url)
    try:
        config = migrate.alembic_config()
        with db.engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "0006")
        records = varied_flows(200, seed=11)
        # Written as version 0006 would have: the flows table only (unchanged since).
        rows = [dict(zip(FLOW_COLUMNS, flow_values(r), strict=True)) for r in records]
        with db.engine.begin() as conn:
            conn.execute(insert(FlowRow.__table__), rows)
        db.upgrade()
        for group_by in GROUPS:
            assert totals(db, group_by) == expected_totals(db, group_by), group_by
    finally:
        db.close()


def test_answers_cached_over_closed_hours_follow_every_later_write(db: Database) -> None:
    """The API keeps the closed hours' totals in memory (a dashboard asks every few seconds):
    a replay into those hours, and flows in the open hours, must still show at once."""
    db.write_flows(varied_flows(300, seed=5))
    # All time, and from mid-morning on: hours, then whole days, then hours again.
    since = math.floor((T0 + 5 * HOUR) / HOUR) * HOUR
    for group_by in GROUPS:  # fills the cache
        assert totals(db, group_by) == expected_totals(db, group_by), group_by
        assert totals(db, group_by, since) == expected_totals(db, group_by, since), group_by
    replayed = [dataclasses.replace(r, uid=f"R{r.uid}") for r in varied_flows(50, seed=6)]
    db.write_flows(replayed)  # new flows in the same old hours: a replay
    for group_by in GROUPS:
        assert totals(db, group_by) == expected_totals(db, group_by), group_by
        assert totals(db, group_by, since) == expected_totals(db, group_by, since), group_by

    # A process with a few bytes in closed hours rises to the top in the open hour.
    now = time.time()
    db.write_flows([flow("COld", process="rare", bytes_out=1)])
    top = list(db.totals(TotalsFilter(group_by="process", limit=1)))
    assert top[0]["process"] != "rare"
    db.write_flows([flow("CNow", process="rare", first_seen=now - 5, last_seen=now,
                         bytes_out=10**12)])  # fmt: skip
    [top] = db.totals(TotalsFilter(group_by="process", limit=1))
    assert (top["process"], top["flows"], top["bytes_out"]) == ("rare", 2, 10**12 + 1)
    assert totals(db, "process") == expected_totals(db, "process")

    # The containers' egress: closed and open hours together.
    ollama = [f for f in db.flows(FlowFilter(limit=0, direction="egress"))
              if f["container_name"] == "ollama"]  # fmt: skip
    db.containers()
    db.write_flows([flow("COllama", container_name="ollama", first_seen=now - 5, last_seen=now,
                         server_name="new.example", country="CN")])  # fmt: skip
    [egress] = [c["egress"] for c in db.containers() if c["name"] == "ollama"]
    assert egress["flows"] == len(ollama) + 1
    assert egress["bytes_out"] == sum(f["bytes_out"] for f in ollama) + 258  # flow()'s bytes
    assert egress["last_seen"] == now
    known = {(f["server_name"] or "", "" if f["server_name"] else f["dst_ip"]) for f in ollama}
    assert egress["destinations"] == len(known | {("new.example", "")})


def test_warming_sums_the_closed_hours_a_dashboard_asks_for_first(db: Database) -> None:
    now = time.time()
    db.write_flows([flow(f"CW{i}", first_seen=now - i * 3 * HOUR, last_seen=now - i * 3 * HOUR + 5,
                         process=f"p{i % 3}") for i in range(200)])  # fmt: skip
    reads: list[str] = []

    def seen(_c: Any, _k: Any, statement: str, *_: Any) -> None:
        if "FROM flow_hours" in statement:
            reads.append(statement)

    event.listen(db.engine, "before_cursor_execute", seen)
    db.warm(time.time())
    assert reads  # it summed them
    reads.clear()
    for group_by in GROUPS:
        assert totals(db, group_by, now - 30 * 86400) == expected_totals(
            db, group_by, math.floor((now - 30 * 86400) / HOUR) * HOUR
        )
    # Each dashboard request read only its open hours from flow_hours: the rest was ready.
    assert len(reads) == len(GROUPS), reads
