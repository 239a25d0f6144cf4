"""``egresswatch alerts``: what broke the policy, newest first."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from egresswatch.cli.listing import add_listing_options, show, window, with_database
from egresswatch.cli.render import alert_json, alert_table

if TYPE_CHECKING:
    from egresswatch.config import Settings


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser("alerts", parents=[common], help="list alerts, newest first")
    parser.add_argument("--since", help="raised or repeated since: RFC 3339 time or a duration")
    parser.add_argument("--until", help=argparse.SUPPRESS)
    parser.add_argument("--open", action="store_true", help="only alerts not acknowledged")
    parser.add_argument(
        "--ack", action="append", metavar="UID", help="acknowledge this alert (repeatable)"
    )
    parser.add_argument(
        "--evidence", metavar="UID", help="write this alert's packets (a pcap) to --output"
    )
    parser.add_argument("--output", "-o", type=Path, metavar="FILE", help="with --evidence")
    add_listing_options(parser, "alert")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, load: Callable[[], Settings]) -> int:
    from egresswatch.store import AlertFilter  # noqa: PLC0415 - imported when needed

    if args.ack:
        return _acknowledge(args, load)
    if args.evidence:
        return _evidence(args, load)
    since, _ = window(args)
    flt = AlertFilter(since=since, unacknowledged=args.open, limit=args.limit)
    return show(args, load, lambda db: db.alerts(flt), alert_json, alert_table)


def _acknowledge(args: argparse.Namespace, load: Callable[[], Settings]) -> int:
    from egresswatch.errors import ConfigError  # noqa: PLC0415 - imported when needed

    done = with_database(load, lambda db: db.acknowledge(args.ack))
    unknown = sorted(set(args.ack) - set(done))
    if unknown:
        raise ConfigError(f"no such alert: {', '.join(unknown)}")
    print(f"acknowledged {len(done)} alert(s)")
    return 0


def _evidence(args: argparse.Namespace, load: Callable[[], Settings]) -> int:
    from egresswatch.errors import ConfigError  # noqa: PLC0415 - imported when needed

    if args.output is None:
        raise ConfigError("--evidence needs --output FILE (a pcap, for Wireshark)")
    pcap = with_database(load, lambda db: db.alert_evidence(args.evidence))
    if pcap is None:
        raise ConfigError(f"no packets kept for alert {args.evidence}")
    args.output.write_bytes(pcap)
    print(f"wrote {len(pcap):,} bytes to {args.output}")
    return 0
