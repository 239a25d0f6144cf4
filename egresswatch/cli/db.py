"""``egresswatch db upgrade|revision``: schema migrations."""

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
