"""The capture daemon's status as it publishes it (every few seconds, into the database), so
that ``/readyz`` and ``/metrics`` can be answered by ``egresswatch serve``, another process.

A plain JSON object; its keys are a contract between the two processes:

- ``running``: false once the daemon has stopped; ``started``: epoch seconds;
- ``interfaces``: name -> ``{"packets", "kernel_drops", "queue_drops", "last_packet"}``;
- ``packets``, ``flow_records``, ``flows_open``;
- ``attribution``: ``ebpf``, ``sock_diag`` or ``off``;
- ``docker``: ``{"socket", "reachable"}`` (reachable null: no socket);
- ``geoip``: ``{"databases": [names], "problems": [text]}``;
- ``store``: ``{"failing", "dropped": {kind: n}}``; ``counters``: the pipeline's counters.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from egresswatch import __version__


@dataclass(slots=True)
class DaemonFacts:
    """What the daemon knows besides the pipeline's counters."""

    started: float
    attribution: str = "off"
    docker_socket: str | None = None
    docker_reachable: bool | None = None
    geoip_databases: list[str] = field(default_factory=list)
    geoip_problems: list[str] = field(default_factory=list)
    last_packet: dict[str, float] = field(default_factory=dict)
    """Interface -> time of the last packet decoded from it."""


def host_name() -> str:
    """The name this host's status is published under."""
    return socket.gethostname()


def describe(
    facts: DaemonFacts,
    *,
    running: bool,
    capture_stats: Mapping[str, tuple[int, int]],
    queue_drops: Mapping[str, int],
    packets: int,
    flow_records: int,
    flows_open: int,
    store_failing: bool,
    store_dropped: Mapping[str, int],
    counters: Mapping[str, int],
) -> dict[str, Any]:
    """The status object (see the module's docstring)."""
    interfaces = {
        name: {
            "packets": seen,
            "kernel_drops": drops,
            "queue_drops": queue_drops.get(name, 0),
            "last_packet": facts.last_packet.get(name),
        }
        for name, (seen, drops) in sorted(capture_stats.items())
    }
    return {
        "version": __version__,
        "running": running,
        "started": facts.started,
        "interfaces": interfaces,
        "packets": packets,
        "flow_records": flow_records,
        "flows_open": flows_open,
        "attribution": facts.attribution,
        "docker": {"socket": facts.docker_socket, "reachable": facts.docker_reachable},
        "geoip": {"databases": facts.geoip_databases, "problems": facts.geoip_problems},
        "store": {"failing": store_failing, "dropped": dict(store_dropped)},
        "counters": dict(counters),
    }


_ATTRIBUTION = {"ebpf": "from eBPF", "sock_diag": "from sock_diag", "off": "off"}


def status_line(status: dict[str, Any]) -> str:
    """The status as the log's one line (every minute, and at exit)."""
    counters = status["counters"]
    attributed = counters.get("flows_attributed_to_a_process", 0)
    parts = [
        f"{status['packets']:,} packets",
        f"{status['flow_records']:,} flow records",
        f"{status['flows_open']:,} flows open",
        f"processes {_ATTRIBUTION[status['attribution']]}: {attributed:,} flows",
    ]
    interfaces = status["interfaces"]
    for name, i in interfaces.items():
        parts.append(f"{name}: kernel {i['packets']:,} packets, {i['kernel_drops']:,} dropped")
    queue_drops = sum(i["queue_drops"] for i in interfaces.values())
    if queue_drops:
        parts.append(f"queue full, dropped {queue_drops:,} packets")
    if status["store"]["dropped"]:
        parts.append(f"database behind, dropped {status['store']['dropped']}")
    if counters.get("flows_nat_twins_dropped"):
        parts.append(
            f"{counters['flows_nat_twins_dropped']:,} NAT'd flows written once "
            f"({counters.get('flows_nat_twins_from_conntrack', 0):,} known from conntrack)"
        )
    skipped = sum(v for k, v in counters.items() if k.startswith("skipped_"))
    if skipped:
        parts.append(f"{skipped:,} packets not decoded")
    return "; ".join(parts)
