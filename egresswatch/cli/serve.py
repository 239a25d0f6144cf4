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
    import uvicorn  # noqa: PLC0415 - imported when needed

    from egresswatch.api.app import create_app  # noqa: PLC0415
    from egresswatch.api.auth import listen_address  # noqa: PLC0415
    from egresswatch.store import Database  # noqa: PLC0415

    settings = load()
    if args.listen:
        settings = settings.model_copy(
            update={"api": settings.api.model_copy(update={"listen": args.listen})}
        )
    host, port = listen_address(settings.api)  # refuses a public address without tokens
    database = Database(settings.db)
    try:
        database.upgrade()
        app = create_app(settings, database)
        uvicorn.run(app, host=host, port=port, log_level=settings.log_level.lower(),
                    access_log=False)  # fmt: skip
    finally:
        database.close()
    return 0
