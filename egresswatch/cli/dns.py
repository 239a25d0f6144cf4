"""``egresswatch dns``: the passive-DNS history (who resolved what, and when)."""

from __future__ import annotations

import argparse
import ipaddress
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from egresswatch.cli.listing import add_listing_options, check, show, window
from egresswatch.cli.render import dns_json, dns_table

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
    add_listing_options(parser, "answer")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, load: Callable[[], Settings]) -> int:
    flt = _filter(args)
    return show(args, load, lambda db: db.dns(flt), dns_json, dns_table)


def _filter(args: argparse.Namespace) -> DnsFilter:
    from egresswatch.store import DnsFilter  # noqa: PLC0415 - imported when needed

    since, until = window(args)
    check(ipaddress.ip_address, args.ip)
    return DnsFilter(name=args.name, ip=args.ip, since=since, until=until, limit=args.limit)
