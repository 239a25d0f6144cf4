"""Alerts on a real SQLite file and a real PostgreSQL server: repeats within the suppression
window are counted on one alert, not stored again."""

from __future__ import annotations

import dataclasses

from egresswatch.policy.alert import Alert
from egresswatch.store.database import Database
from egresswatch.store.queries import AlertFilter
from tests.policy.test_policy import flow

T0 = 1_732_350_000.0


def alert(at: float, uid: str, key: str = "offline: not allowed|ollama|x.example|443") -> Alert:
    f = dataclasses.replace(flow(), uid=f"C{uid}", first_seen=at)
    return Alert(uid=f"A{uid}", time=at, rule="offline: not allowed", severity="high",
                 summary="container ollama -> x.example", dedup_key=key, flow=f)  # fmt: skip


def test_repeats_inside_the_window_are_counted_then_a_new_alert_after_it(db: Database) -> None:
    db.write_alerts([alert(T0, "1"), alert(T0 + 60, "2")], window=3600)
    db.write_alerts([alert(T0 + 120, "3")], window=3600)
    [row] = db.alerts(AlertFilter())
    assert (row["uid"], row["count"], row["time"], row["last_time"]) == ("A1", 3, T0, T0 + 120)
    assert row["flow"]["uid"] == "C1" and row["flow"]["container_name"] == "ollama"
    db.write_alerts([alert(T0 + 120 + 3601, "4")], window=3600)
    db.write_alerts([alert(T0 + 130, "5", key="upload|ollama|x.example|443")], window=3600)
    rows = list(db.alerts(AlertFilter(limit=0)))
    assert [(r["uid"], r["count"]) for r in rows] == [("A4", 1), ("A5", 1), ("A1", 3)]
    assert [r["uid"] for r in db.alerts(AlertFilter(since=T0 + 125))] == ["A4", "A5"]


def test_destinations_reached_are_stored_once_with_their_first_sighting(db: Database) -> None:
    db.write_alerts(
        [], 3600, destinations=[("ollama", "a.example", T0), ("ollama", "b.example", T0 + 5)]
    )
    db.write_alerts(
        [], 3600, destinations=[("ollama", "a.example", T0 + 99), ("dify", "a.example", T0 + 7)]
    )
    known, oldest = db.known_destinations()
    assert known == {("ollama", "a.example"), ("ollama", "b.example"), ("dify", "a.example")}
    assert oldest == T0


def test_an_acknowledged_alert_never_hides_a_repeat(db: Database) -> None:
    db.write_alerts([alert(T0, "1")], window=3600)
    db.acknowledge(["A1"])
    db.write_alerts([alert(T0 + 60, "2")], window=3600)  # the same again, a minute later
    rows = list(db.alerts(AlertFilter(limit=0)))
    assert [(r["uid"], r["count"], r["acknowledged"]) for r in rows] == [
        ("A2", 1, False), ("A1", 1, True)
    ]  # fmt: skip


def test_an_alert_that_goes_on_is_raised_again_each_day(db: Database) -> None:
    every_half_hour = [alert(T0 + i * 1800, f"{i}") for i in range(60)]  # 30 hours
    db.write_alerts(every_half_hour, window=3600)
    rows = list(db.alerts(AlertFilter(limit=0)))
    assert [(r["uid"], r["count"]) for r in rows] == [("A48", 12), ("A0", 48)]
