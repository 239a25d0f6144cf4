"""``egresswatch alerts``: what broke the policy, newest first."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from egresswatch.cli.listing import add_listing_options, show, window
from egresswatch.cli.render import alert_json, alert_table

if TYPE_CHECKING:
    from egresswatch.config import Settings


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser("alerts", parents=[common], help="list alerts, newest first")
    parser.add_argument("--since", help="raised or repeated since: RFC 3339 time or a duration")
    parser.add_argument("--until", help=argparse.SUPPRESS)
    add_listing_options(parser, "alert")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, load: Callable[[], Settings]) -> int:
    from egresswatch.store import AlertFilter  # noqa: PLC0415 - imported when needed

    since, _ = window(args)
    flt = AlertFilter(since=since, limit=args.limit)
    return show(args, load, lambda db: db.alerts(flt), alert_json, alert_table)
