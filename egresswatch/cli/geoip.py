"""``egresswatch geoip status``: which GeoIP databases are found, which are used, and what is wrong.

Also the ``--geoip-dir`` option, for every command that places addresses.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from egresswatch.config import Settings
    from egresswatch.geo.databases import GeoDatabase
    from egresswatch.geo.resolver import GeoResolver


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser("geoip", help="GeoIP databases (country, city, ASN): status")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    status = actions.add_parser(
        "status", parents=[common], help="which GeoIP databases are found and used, and problems"
    )
    add_geoip_option(status)
    status.add_argument("--json", action="store_true", help="one JSON object")
    status.set_defaults(run=run_status)


def add_geoip_option(parser: argparse.ArgumentParser) -> None:
    """``--geoip-dir DIR`` (repeatable): search these instead of the config's ``geoip.paths``."""
    parser.add_argument(
        "--geoip-dir",
        dest="geoip_dirs",
        action="append",
        type=Path,
        metavar="DIR",
        help="look for GeoIP .mmdb databases in DIR (or that file) instead of the config's "
        "geoip.paths; repeat it to search several, in order",
    )


def geoip_paths(args: argparse.Namespace, settings: Settings) -> list[Path]:
    """The GeoIP search paths: ``--geoip-dir`` when given, else ``settings.geoip.paths``."""
    given: list[Path] | None = getattr(args, "geoip_dirs", None)
    return list(given) if given else list(settings.geoip.paths)


def run_status(args: argparse.Namespace, load: Callable[[], Settings]) -> int:
    # Informational: no database is a finding to report, not a failure (exit 0).
    from egresswatch.geo.resolver import GeoResolver  # noqa: PLC0415 - imported when needed

    settings = load()
    resolver = GeoResolver(
        geoip_paths(args, settings), reload_interval=settings.geoip.reload_interval
    )
    try:
        if args.json:
            sys.stdout.write(json.dumps(status_json(resolver), indent=2) + "\n")
        else:
            sys.stdout.write(status_text(resolver))
    finally:
        resolver.close()
    return 0


def status_json(resolver: GeoResolver) -> dict[str, Any]:
    """The status as one JSON-ready object."""
    in_use = resolver.databases
    return {
        "paths": [{"path": str(p), "is": _what(p)} for p in resolver.paths],
        "found": bool(in_use),
        "databases": [_database_json(db, db in in_use) for db in resolver.available],
        "problems": resolver.problems(),
        "summary": resolver.describe(),
    }


def status_text(resolver: GeoResolver) -> str:
    """The status for a terminal: paths, databases, problems, then the summary paragraph."""
    lines = ["Search paths, in order (the first with a database of a kind wins):"]
    width = max((len(str(p)) for p in resolver.paths), default=0)
    lines += [f"  {p!s:<{width}}  {_what(p)}" for p in resolver.paths]
    in_use = resolver.databases
    lines.append("Databases:")
    width = max((len(db.database_type) for db in resolver.available), default=0)
    for db in resolver.available:
        use = "in use" if db in in_use else "unused"
        built = f"{db.build_time:%Y-%m-%d}"
        lines.append(
            f"  {use:<6}  {db.kind:<7}  {db.database_type:<{width}}  built {built}  {db.path}"
        )
    if not in_use:
        lines.append("  no GeoIP database found")
    lines.append("Problems:")
    lines += [f"  {problem}" for problem in resolver.problems()] or ["  none"]
    lines.append("")
    lines += textwrap.wrap(resolver.describe(), width=100, break_on_hyphens=False)
    return "\n".join(lines) + "\n"


def _database_json(db: GeoDatabase, in_use: bool) -> dict[str, Any]:
    return {
        "path": str(db.path),
        "kind": db.kind,
        "database_type": db.database_type,
        "build_time": db.build_time.isoformat().replace("+00:00", "Z"),
        "ip_version": db.ip_version,
        "in_use": in_use,
    }


def _what(path: Path) -> str:
    try:
        if path.is_dir():
            return "directory"
        return "file" if path.exists() else "missing"
    except OSError as exc:
        return f"cannot look: {exc.strerror}"
