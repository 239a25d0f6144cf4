"""``/readyz`` and ``/metrics`` from the status the capture daemon publishes (``status.py``)
and from the database's own counts (alerts, the outbox)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

STALE_AFTER = 20.0
"""Seconds without a status update after which a daemon is taken for dead (it publishes
every 5 s)."""


def readiness(statuses: list[dict[str, Any]], now: float) -> tuple[bool, list[dict[str, Any]]]:
    """Whether every host's capture is running, and what each host reports: its interfaces,
    attribution, GeoIP, Docker and database, with the problems found."""
    hosts = []
    for row in statuses:
        s, problems, warnings = row["status"], [], []
        age = now - row["updated"]
        if not s.get("running"):
            problems.append("the capture daemon has stopped")
        elif age > STALE_AFTER:
            problems.append(f"no status for {age:.0f} s: the capture daemon is not running")
        if not s.get("interfaces"):
            problems.append("no interface is captured")
        if s.get("store", {}).get("failing"):
            problems.append("the database refuses writes")
        for name, i in s.get("interfaces", {}).items():
            if i.get("kernel_drops") or i.get("queue_drops"):
                warnings.append(f"{name}: packets dropped")
        if s.get("attribution") != "ebpf":
            warnings.append(f"process attribution: {s.get('attribution')} (not the eBPF probe)")
        if not s.get("geoip", {}).get("databases"):
            warnings.append("no GeoIP database: no countries")
        if s.get("docker", {}).get("reachable") is False:
            warnings.append("the Docker API does not answer: containers not attributed")
        hosts.append({"host": row["host"], "ready": not problems, "updated": row["updated"],
                      "problems": problems, "warnings": warnings, **s})  # fmt: skip
    return bool(hosts) and all(h["ready"] for h in hosts), hosts


def metrics(
    statuses: list[dict[str, Any]],
    now: float,
    alerts: Iterable[tuple[str, bool, int]],
    outbox: tuple[int, float | None],
) -> str:
    """Prometheus text exposition (format 0.0.4). ``alerts``: (severity, acknowledged, count)."""
    out = _Exposition()
    for row in statuses:
        s, host = row["status"], {"host": row["host"]}
        fresh = s.get("running") and now - row["updated"] <= STALE_AFTER
        out.add(
            "egresswatch_up", "gauge", "1 while the capture daemon runs", host, int(bool(fresh))
        )
        out.add("egresswatch_status_age_seconds", "gauge", "Seconds since the daemon's last status",
                host, round(now - row["updated"], 3))  # fmt: skip
        for name, i in s.get("interfaces", {}).items():
            where = {**host, "interface": name}
            out.add("egresswatch_packets_total", "counter", "Packets the kernel captured", where,
                    i["packets"])  # fmt: skip
            out.add("egresswatch_kernel_drops_total", "counter",
                    "Packets the kernel dropped before egresswatch read them", where,
                    i["kernel_drops"])  # fmt: skip
            out.add("egresswatch_queue_drops_total", "counter",
                    "Packets dropped because the decoder was behind", where,
                    i["queue_drops"])  # fmt: skip
            if i.get("last_packet") is not None:
                out.add("egresswatch_last_packet_timestamp_seconds", "gauge",
                        "When the last packet was decoded", where, i["last_packet"])  # fmt: skip
        out.add("egresswatch_packets_decoded_total", "counter", "Packets decoded", host,
                s.get("packets", 0))  # fmt: skip
        out.add("egresswatch_flow_records_total", "counter", "Flow records written", host,
                s.get("flow_records", 0))  # fmt: skip
        out.add("egresswatch_flows_open", "gauge", "Flows in the flow table", host,
                s.get("flows_open", 0))  # fmt: skip
        for kind, n in s.get("store", {}).get("dropped", {}).items():
            out.add("egresswatch_store_dropped_total", "counter",
                    "Records dropped because the database was behind",
                    {**host, "kind": kind}, n)  # fmt: skip
        for name, n in sorted(s.get("counters", {}).items()):
            out.add("egresswatch_pipeline_events_total", "counter",
                    "Pipeline counters (packets skipped by reason, flows attributed, ...)",
                    {**host, "event": name}, n)  # fmt: skip
    for severity, acknowledged, n in alerts:
        out.add("egresswatch_alerts", "gauge", "Alerts stored",
                {"severity": severity, "acknowledged": str(acknowledged).lower()}, n)  # fmt: skip
    pending, oldest = outbox
    out.add("egresswatch_outbox_pending", "gauge", "Webhook deliveries waiting", {}, pending)
    out.add("egresswatch_outbox_oldest_age_seconds", "gauge",
            "Age of the oldest delivery waiting (0: none)", {},
            round(now - oldest, 3) if oldest is not None else 0)  # fmt: skip
    return out.text()


class _Exposition:
    """Samples grouped by metric, each metric's HELP and TYPE once, as the format requires."""

    def __init__(self) -> None:
        self._metrics: dict[str, tuple[str, str, list[str]]] = {}

    def add(
        self, name: str, kind: str, help_text: str, labels: dict[str, str], value: float
    ) -> None:
        label_text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
        sample = f"{name}{{{label_text}}} {value}" if labels else f"{name} {value}"
        self._metrics.setdefault(name, (kind, help_text, []))[2].append(sample)

    def text(self) -> str:
        lines = []
        for name, (kind, help_text, samples) in self._metrics.items():
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", *samples]
        return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
