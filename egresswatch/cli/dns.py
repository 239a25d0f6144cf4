"""``egresswatch dns``: the passive-DNS history (who resolved what, and when)."""

from __future__ import annotations

import argparse
import ipaddress
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from egresswatch.cli.render import dns_json, dns_table
from egresswatch.errors import ConfigError
from egresswatch.timestamps import parse_time

if TYPE_CHECKING:
    from egresswatch.config import Settings
    from egresswatch.store import DnsFilter


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser(
        "dns", parents=[common], help="list DNS answers seen on the wire, newest first"
    )
    parser.add_argument("--name", help="query name or glob (*.example.com), case-insensitive")
    parser.add_argument("--ip", help="answers that contained this address")
    parser.add_argument("--since", help="at or after: RFC 3339 time or a duration (2h, 7d)")
    parser.add_argument("--until", help="at or before: RFC 3339 time or a duration")
    parser.add_argument("--json", action="store_true", help="JSON Lines, one answer per line")
    parser.add_argument("--limit", type=int, default=50, help="at most N answers; 0 = all (50)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, load: Callable[[], Settings]) -> int:
    from egresswatch.store import Database  # noqa: PLC0415 - imported when needed

    flt = _filter(args)
    database = Database(load().db)
    try:
        rows = database.dns(flt)
        if args.json:
            for row in rows:
                sys.stdout.write(dns_json(row) + "\n")
        else:
            dns_table(rows, sys.stdout)
    finally:
        database.close()
    return 0


def _filter(args: argparse.Namespace) -> DnsFilter:
    from egresswatch.store import DnsFilter  # noqa: PLC0415 - imported when needed

    now = time.time()
    try:
        since = parse_time(args.since, now) if args.since else None
        until = parse_time(args.until, now) if args.until else None
        if args.ip:
            ipaddress.ip_address(args.ip)
    except ValueError as exc:
        raise ConfigError(f"bad filter: {exc}") from exc
    if args.limit < 0:
        raise ConfigError("bad filter: --limit must be 0 (all) or more")
    return DnsFilter(name=args.name, ip=args.ip, since=since, until=until, limit=args.limit)
