"""Replay a capture through the real CLI into a real SQLite file and read the flows back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from egresswatch.cli.main import main
from egresswatch.store import Database, DnsFilter, FlowFilter


def replay_flows(pcap: Path, tmp_path: Path) -> list[dict[str, Any]]:
    return replay(pcap, tmp_path)[0]


def replay(pcap: Path, tmp_path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The flows and the DNS answers a replay of ``pcap`` stored."""
    url = f"sqlite:///{tmp_path / 'flows.db'}"
    assert main(["replay", str(pcap), "--db", url, "--quiet"]) == 0
    database = Database(url)
    try:
        return list(database.flows(FlowFilter(limit=0))), list(database.dns(DnsFilter(limit=0)))
    finally:
        database.close()


def peer_cases(peers: Path, log: str) -> list[dict[str, Any]]:
    index = json.loads((peers / "index.json").read_text())
    return [case for case in index["cases"] if log in case["expected_logs"]]


def zeek_log(path: Path) -> list[dict[str, str]]:
    """Rows of a Zeek TSV log, or of a btest-diff-cut baseline (header line without #fields)."""
    fields: list[str] | None = None
    rows = []
    for line in path.read_text().splitlines():
        if line.startswith("#fields"):
            fields = line.split("\t")[1:]
        elif line.startswith("#") or not line:
            continue
        elif fields is None:
            fields = line.split("\t")
        else:
            rows.append(dict(zip(fields, line.split("\t"), strict=True)))
    return rows
