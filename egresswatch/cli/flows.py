"""``egresswatch flows``: the flow history, as a table or JSON Lines."""

from __future__ import annotations

import argparse
import ipaddress
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from egresswatch.cli.listing import add_listing_options, check, show, window
from egresswatch.cli.render import flow_json, flow_table
from egresswatch.flows.record import Direction

if TYPE_CHECKING:
    from egresswatch.config import Settings
    from egresswatch.store import FlowFilter


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser("flows", parents=[common], help="list flows, newest first")
    add_listing_options(parser, "flow")
    parser.add_argument("--since", help="active since: RFC 3339 time or a duration (2h, 7d)")
    parser.add_argument("--until", help="started before: RFC 3339 time or a duration")
    parser.add_argument("--direction", choices=[str(d) for d in Direction])
    parser.add_argument("--dst", help="responder address or CIDR")
    parser.add_argument("--protocol", help="tcp, udp, icmp, icmp6 or an IP protocol number")
    parser.add_argument("--port", type=int, help="responder (service) port")
    parser.add_argument("--container", metavar="NAME|ID", help="flows of this container")
    parser.add_argument("--process", help="flows opened by this process name (python3, wget)")
    parser.add_argument("--server-name", help="server name or glob (*.example.com)")
    parser.add_argument("--country", help="ISO country code of the remote end (CN, US)")
    parser.add_argument("--asn", type=int, help="autonomous system number of the remote end")
    parser.add_argument("--min-bytes-out", type=int, metavar="N", help="sent at least N bytes")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, load: Callable[[], Settings]) -> int:
    flt = _filter(args)
    return show(args, load, lambda db: db.flows(flt), flow_json, flow_table)


def _filter(args: argparse.Namespace) -> FlowFilter:
    from egresswatch.store import FlowFilter  # noqa: PLC0415 - imported when needed

    since, until = window(args)
    check(lambda dst: ipaddress.ip_network(dst, strict=False), args.dst)
    return FlowFilter(
        since=since,
        until=until,
        direction=args.direction,
        dst=args.dst,
        protocol=args.protocol,
        port=args.port,
        container=args.container,
        process=args.process,
        server_name=args.server_name,
        country=args.country,
        asn=args.asn,
        min_bytes_out=args.min_bytes_out,
        limit=args.limit,
    )
