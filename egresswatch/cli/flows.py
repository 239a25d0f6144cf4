"""``egresswatch flows``: the flow history, as a table or JSON Lines."""

from __future__ import annotations

import argparse
import ipaddress
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from egresswatch.cli.render import flow_json, flow_table
from egresswatch.errors import ConfigError
from egresswatch.flows.record import Direction
from egresswatch.timestamps import parse_time

if TYPE_CHECKING:
    from egresswatch.config import Settings
    from egresswatch.store import FlowFilter


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser("flows", parents=[common], help="list flows, newest first")
    parser.add_argument("--json", action="store_true", help="JSON Lines, one flow per line")
    parser.add_argument("--limit", type=int, default=50, help="at most N flows; 0 = all (50)")
    parser.add_argument("--since", help="active since: RFC 3339 time or a duration (2h, 7d)")
    parser.add_argument("--until", help="started before: RFC 3339 time or a duration")
    parser.add_argument("--direction", choices=[str(d) for d in Direction])
    parser.add_argument("--dst", help="responder address or CIDR")
    parser.add_argument("--protocol", help="tcp, udp, icmp, icmp6 or an IP protocol number")
    parser.add_argument("--port", type=int, help="responder (service) port")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, load: Callable[[], Settings]) -> int:
    from egresswatch.store import Database  # noqa: PLC0415 - imported when needed

    flt = _filter(args)
    database = Database(load().db)
    try:
        rows = database.flows(flt)
        if args.json:
            for row in rows:
                sys.stdout.write(flow_json(row) + "\n")
        else:
            flow_table(rows, sys.stdout)
    finally:
        database.close()
    return 0


def _filter(args: argparse.Namespace) -> FlowFilter:
    from egresswatch.store import FlowFilter  # noqa: PLC0415 - imported when needed

    now = time.time()
    try:
        since = parse_time(args.since, now) if args.since else None
        until = parse_time(args.until, now) if args.until else None
        if args.dst:
            ipaddress.ip_network(args.dst, strict=False)
    except ValueError as exc:
        raise ConfigError(f"bad filter: {exc}") from exc
    if args.limit < 0:
        raise ConfigError("bad filter: --limit must be 0 (all) or more")
    return FlowFilter(
        since=since,
        until=until,
        direction=args.direction,
        dst=args.dst,
        protocol=args.protocol,
        port=args.port,
        limit=args.limit,
    )
