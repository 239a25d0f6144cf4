"""``egresswatch serve``: the REST API for dashboards (reads the database; needs no capture
privileges)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from egresswatch.config import Settings


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser("serve", parents=[common], help="serve the REST API (/api/v1)")
    parser.add_argument(
        "--listen", metavar="HOST:PORT", help="default: [api] listen, 127.0.0.1:8787"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, load: Callable[[], Settings]) -> int:
    from egresswatch.api.server import serve, with_listen  # noqa: PLC0415 - imported when needed

    serve(with_listen(load(), args.listen))
    return 0
