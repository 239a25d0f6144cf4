"""Delivering alerts from the outbox to a local receiver that speaks Slack's contract (and to a
signed JSON webhook): outages delay, 429s are honoured, nothing is lost or sent twice, floods
become one digest."""

from __future__ import annotations

import dataclasses
import email.utils
import time
from pathlib import Path

from pydantic import SecretStr

from egresswatch.notify.courier import Courier, Target
from egresswatch.policy.alert import Alert
from egresswatch.store import AlertFilter, Database
from tests.notify.receiver import receiving
from tests.policy.test_policy import flow


def alert(n: int, rule: str = "offline: not allowed") -> Alert:
    f = dataclasses.replace(flow(), uid=f"C{n}", dst_port=1000 + n)
    return Alert(uid=f"A{n}", time=1_800_000_000.0 + n, rule=rule, severity="high",
                 summary=f"container ollama -> 203.0.113.80:{1000 + n}: {rule}",
                 dedup_key=f"{rule}|ollama|{n}", flow=f)  # fmt: skip


def database(tmp_path: Path) -> Database:
    db = Database(f"sqlite:///{tmp_path / 'ew.db'}")
    db.upgrade()
    return db


def until_delivered(courier: Courier, db: Database, limit: float = 15.0) -> None:
    deadline = time.monotonic() + limit
    while db.outbox_backlog()[0] and time.monotonic() < deadline:
        courier.deliver(time.time())
        time.sleep(0.05)


def test_an_outage_then_a_429_delay_an_alert_and_it_arrives_once(tmp_path: Path) -> None:
    db = database(tmp_path)
    with receiving() as (receiver, url):
        receiver.script = [(503, {}), (503, {}), (429, {"Retry-After": "1"})]
        courier = Courier(db, [Target(SecretStr(url))], max_backoff=0.2)
        db.write_alerts([alert(1)], 3600, courier.routes)
        started = time.monotonic()
        until_delivered(courier, db)
        assert time.monotonic() - started >= 1.0  # the 429's Retry-After was honoured
        assert receiver.attempts == 4 and receiver.refused_as_invalid == []
        [posted] = receiver.accepted
        assert "A1" in str(posted["blocks"]) and "ollama" in posted["text"]
        courier.deliver(time.time() + 3600)
        assert receiver.attempts == 4  # delivered once, never again


def test_a_retry_after_given_as_an_http_date_is_honoured(tmp_path: Path) -> None:
    db = database(tmp_path)
    with receiving() as (receiver, url):
        later = email.utils.formatdate(time.time() + 3, usegmt=True)  # whole seconds: 2-3 s
        receiver.script = [(429, {"Retry-After": later})]
        courier = Courier(db, [Target(SecretStr(url))], max_backoff=0.2)
        db.write_alerts([alert(1)], 3600, courier.routes)
        started = time.monotonic()
        until_delivered(courier, db)
        assert time.monotonic() - started >= 1.9 and len(receiver.accepted) == 1


def test_a_flood_becomes_one_digest(tmp_path: Path) -> None:
    db = database(tmp_path)
    with receiving() as (receiver, url):
        courier = Courier(db, [Target(SecretStr(url))], digest_after=10)
        db.write_alerts([alert(n) for n in range(40)], 3600, courier.routes)
        until_delivered(courier, db)
        [digest] = receiver.accepted
        assert "40 alerts at once" in digest["text"] and receiver.refused_as_invalid == []


def test_webhooks_are_routed_by_severity_and_json_ones_are_signed(tmp_path: Path) -> None:
    db = database(tmp_path)
    with receiving() as (slack, slack_url), receiving() as (hook, hook_url):
        hook.secret = b"s3cret"
        courier = Courier(db, [
            Target(SecretStr(slack_url), min_severity="critical"),
            Target(SecretStr(hook_url), kind="json", secret=SecretStr("s3cret")),
        ])  # fmt: skip
        db.write_alerts([alert(1)], 3600, courier.routes)
        until_delivered(courier, db)
        assert slack.accepted == []  # high < critical
        [body] = hook.accepted
        assert [a["uid"] for a in body["alerts"]] == ["A1"] and hook.refused_as_invalid == []
        assert body["alerts"][0]["flow"]["container_name"] == "ollama"


def test_an_alert_raised_by_dns_answers_is_posted_too(tmp_path: Path) -> None:
    db = database(tmp_path)
    tunnel = Alert(uid="Atunnel", time=1_800_000_000.0, rule="dns tunnel", severity="high",
                   summary="172.17.0.5 -> DNS under exfil.example: dns tunnel", flow=None,
                   dedup_key="dns tunnel|172.17.0.5|exfil.example", source="172.17.0.5",
                   destination="exfil.example")  # fmt: skip
    changed = Alert(uid="Aimage", time=1_800_000_001.0, rule="image changed", severity="medium",
                    summary="container ollama (ollama/ollama) now runs image sha256:9f..., not "
                    "sha256:1a...: image changed", flow=None, dedup_key="image changed|ollama|9f",
                    source="ollama", destination="ollama/ollama", container="ollama")  # fmt: skip
    with receiving() as (receiver, url):
        courier = Courier(db, [Target(SecretStr(url))])
        db.write_alerts([tunnel, changed], 3600, courier.routes)
        until_delivered(courier, db)
        dns, image = receiver.accepted
        assert "exfil.example" in dns["text"] and receiver.refused_as_invalid == []
        fields = [f["text"] for b in image["blocks"] for f in b.get("fields", [])]
        assert "*Container*\nollama" in fields, fields
    assert [a["uid"] for a in db.alerts(AlertFilter(container="ollama"))] == ["Aimage"]
    # Who and what, as fields (a SIEM reads them), not only in the summary.
    stored = {a["uid"]: (a["source"], a["destination"]) for a in db.alerts(AlertFilter())}
    assert stored == {"Atunnel": ("172.17.0.5", "exfil.example"),
                      "Aimage": ("ollama", "ollama/ollama")}  # fmt: skip


def test_a_removed_webhook_parks_its_posts_and_they_go_when_it_is_back(tmp_path: Path) -> None:
    """Posts for a webhook taken out of the config wait (not counted as a backlog that never
    drains) and are delivered when it is configured again; retention drops them after the
    flows' period if it never comes back."""
    db = database(tmp_path)
    with receiving() as (receiver, url):
        first = Courier(db, [Target(SecretStr(url))])
        db.write_alerts([alert(1)], 3600, first.routes)
        assert db.outbox_backlog()[0] == 1

        without = Courier(db, [])  # restarted with the webhook removed
        without.deliver(time.time())
        assert db.outbox_backlog()[0] == 0 and receiver.attempts == 0

        again = Courier(db, [Target(SecretStr(url))], interval=0.05)
        again.start()  # configured again
        try:
            deadline = time.monotonic() + 10
            while not receiver.accepted and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            again.close()
        [posted] = receiver.accepted
        assert "A1" in str(posted["blocks"])

        db.write_alerts([alert(2)], 3600, first.routes)
        without.deliver(time.time())  # parked again, and never configured again
        later = alert(2).time + 31 * 86400  # a month after it was queued
        assert db.prune(later, 30, 365).deliveries == 2  # the delivered post and the parked one
