"""``egresswatch db upgrade|revision|prune``: schema migrations and retention."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from egresswatch.config import Settings


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser("db", help="database schema: upgrade, revision")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    up = actions.add_parser("upgrade", parents=[common], help="apply pending migrations")
    up.set_defaults(run=upgrade)
    rev = actions.add_parser("revision", parents=[common], help="show the schema revision")
    rev.set_defaults(run=revision)
    prune = actions.add_parser(
        "prune", parents=[common], help="delete what the retention periods ([store]) no longer keep"
    )
    prune.set_defaults(run=prune_now)


def upgrade(args: argparse.Namespace, load: Callable[[], Settings]) -> int:
    from egresswatch.store import Database  # noqa: PLC0415 - imported when needed

    database = Database(load().db)
    try:
        print(f"database at revision {database.upgrade()} (head)")
    finally:
        database.close()
    return 0


def revision(args: argparse.Namespace, load: Callable[[], Settings]) -> int:
    from egresswatch.store import Database  # noqa: PLC0415 - imported when needed

    database = Database(load().db)
    try:
        print(database.revision() or "empty (run: egresswatch db upgrade)")
    finally:
        database.close()
    return 0


def prune_now(args: argparse.Namespace, load: Callable[[], Settings]) -> int:
    import time  # noqa: PLC0415 - imported when needed

    from egresswatch.cli.listing import with_database  # noqa: PLC0415

    store = load().store
    pruned = with_database(
        load, lambda db: db.prune(time.time(), store.keep_flows_days, store.keep_totals_days)
    )
    print(f"deleted {pruned.flows} flows, {pruned.dns} DNS answers, {pruned.deliveries} delivered "
          f"posts; folded {pruned.hours_folded} hourly totals into days; deleted "
          f"{pruned.days} totals past keep_totals_days")  # fmt: skip
    return 0
