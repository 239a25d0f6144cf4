"""``egresswatch run``: the daemon. Captures live until SIGTERM (see egresswatch/daemon.py)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from egresswatch.cli.geoip import add_geoip_option, geoip_paths

if TYPE_CHECKING:
    from egresswatch.config import Settings


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser(
        "run",
        parents=[common],
        help="capture live on Docker bridges and uplinks into the database (the daemon)",
    )
    parser.add_argument(
        "--interface",
        "-i",
        action="append",
        metavar="NAME",
        help="capture on this interface (repeatable); naming any turns discovery off",
    )
    parser.add_argument(
        "--engine",
        choices=("ring", "tshark"),
        help="how to capture (default: the config's capture.engine, else ring): tshark captures "
        "only flow boundaries and naming packets through dumpcap, without byte counts",
    )
    parser.add_argument(
        "--listen",
        metavar="HOST:PORT",
        help="serve the REST API too, from this process (the quick start's way; a service "
        "would run `egresswatch serve` on its own, without capture privileges)",
    )
    add_geoip_option(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, load: Callable[[], Settings]) -> int:
    from egresswatch.config import load_settings  # noqa: PLC0415 - imported when needed
    from egresswatch.daemon import Daemon  # noqa: PLC0415 - imported when needed

    settings = _with_engine(load(), args.engine)
    api = None
    if args.listen:
        from egresswatch.api.server import serve_in_thread, with_listen  # noqa: PLC0415

        served = with_listen(settings, args.listen)
        api = lambda: serve_in_thread(served)  # noqa: E731 - started once the database is ready

    def reload() -> Settings:
        fresh = _with_engine(load_settings(args.config), args.engine)
        return fresh.model_copy(update={"db": settings.db})  # the database never changes live

    daemon = Daemon(
        settings,
        reload=reload,
        interfaces=args.interface,
        geo_paths=geoip_paths(args, settings),
        api=api,
    )
    return daemon.run()


def _with_engine(settings: Settings, engine: str | None) -> Settings:
    """``--engine`` over the config's ``capture.engine``."""
    if engine is None:
        return settings
    capture = settings.capture.model_copy(update={"engine": engine})
    return settings.model_copy(update={"capture": capture})
