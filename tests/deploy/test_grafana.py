"""The Grafana dashboard asks only for metrics /metrics exposes and API paths the app serves
(so a renamed metric or route cannot silently empty a panel)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from egresswatch.api.app import create_app
from egresswatch.api.health import metrics
from egresswatch.config import Settings
from egresswatch.status import DaemonFacts, describe
from egresswatch.store import Database

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "egresswatch.json"


def exposed_metric_names() -> set[str]:
    status = describe(
        DaemonFacts(started=0.0, last_packet={"eth0": 1.0}), running=True,
        capture_stats={"eth0": (10, 1)}, queue_drops={"eth0": 2}, packets=10, flow_records=3,
        flows_open=1, store_failing=False, store_dropped={"flows": 1},
        counters={"skipped_truncated": 1},
    )  # fmt: skip
    text = metrics([{"host": "box", "updated": 0.0, "status": status}], 1.0,
                   [("high", False, 2)], (1, 0.0))  # fmt: skip
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line[:1] != "#"}


def test_every_panel_queries_what_egresswatch_exposes() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exposed = exposed_metric_names()
    paths = create_app(Settings(), Database("sqlite://")).openapi()["paths"]
    asked_metrics, asked_paths = set(), set()
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            if "expr" in target:
                asked_metrics |= set(re.findall(r"egresswatch_\w+", target["expr"]))
                continue
            url = urlsplit(target["url"])
            asked_paths.add(url.path)
            known = {
                p["name"] for p in paths.get(url.path, {}).get("get", {}).get("parameters", [])
            }
            assert set(parse_qs(url.query)) <= known, (url, known)
    assert asked_metrics and asked_metrics <= exposed, asked_metrics - exposed
    assert asked_paths and asked_paths <= set(paths), asked_paths - set(paths)
