"""What the listing commands (``flows``, ``dns``) share: time window and limit options, and
printing rows as a table or as JSON Lines."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

from egresswatch.errors import ConfigError
from egresswatch.timestamps import parse_time

if TYPE_CHECKING:
    from egresswatch.config import Settings
    from egresswatch.store import Database

Rows = Iterator[dict[str, Any]]


def add_listing_options(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--json", action="store_true", help=f"JSON Lines, one {what} per line")
    parser.add_argument("--limit", type=int, default=50, help=f"at most N {what}s; 0 = all (50)")


def window(args: argparse.Namespace) -> tuple[float | None, float | None]:
    """``--since`` and ``--until`` as epoch seconds (None when not given); checks ``--limit``."""
    now = time.time()
    try:
        since = parse_time(args.since, now) if args.since else None
        until = parse_time(args.until, now) if args.until else None
    except ValueError as exc:
        raise ConfigError(f"bad filter: {exc}") from exc
    if args.limit < 0:
        raise ConfigError("bad filter: --limit must be 0 (all) or more")
    return since, until


def check(parse: Callable[[str], object], value: str | None) -> None:
    """Refuse a filter value ``parse`` rejects (ipaddress.ip_address, ip_network, ...)."""
    if value is not None:
        try:
            parse(value)
        except ValueError as exc:
            raise ConfigError(f"bad filter: {exc}") from exc


T = TypeVar("T")


def with_database(load: Callable[[], Settings], work: Callable[[Database], T]) -> T:
    """``work`` on the configured database, brought to the newest schema, closed after."""
    from egresswatch.store import Database  # noqa: PLC0415 - imported when needed

    database = Database(load().db)
    try:
        database.upgrade()
        return work(database)
    finally:
        database.close()


def show(
    args: argparse.Namespace,
    load: Callable[[], Settings],
    rows: Callable[[Database], Rows],
    as_json: Callable[[dict[str, Any]], str],
    as_table: Callable[[Iterable[dict[str, Any]], TextIO], int],
) -> int:
    """Query the configured database and print the rows the way ``--json`` asks."""
    from egresswatch.store import Database  # noqa: PLC0415 - imported when needed

    database = Database(load().db)
    try:
        if args.json:
            for row in rows(database):
                sys.stdout.write(as_json(row) + "\n")
        else:
            as_table(rows(database), sys.stdout)
    finally:
        database.close()
    return 0
