"""``egresswatch policy check [FILE]``: is the policy valid (line-precise errors if not)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from egresswatch.config import Settings


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser("policy", help="check the policy file")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    check = actions.add_parser(
        "check", parents=[common], help="validate a policy file (default: the configured)"
    )
    check.add_argument("file", nargs="?", type=Path, help="policy file")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, load: Callable[[], Settings]) -> int:
    from egresswatch.policy.load import load_policy, policy_in_force  # noqa: PLC0415

    if args.file is not None:
        policy, path = load_policy(args.file), args.file
    else:
        policy, path = policy_in_force(load().policy.path)
    names = ", ".join(s.name for s in policy.scopes) or "none"
    print(f"{path}: valid; scopes in order: {names}")
    for gap in policy.geoip_gaps(_geoip_kinds(load)):
        print(f"warning: {gap} (docs/geoip.md)")
    return 0


def _geoip_kinds(load: Callable[[], Settings]) -> set[str]:
    """The kinds of GeoIP database the configured paths hold."""
    from egresswatch.geo.resolver import GeoResolver  # noqa: PLC0415

    settings = load()
    geo = GeoResolver(settings.geoip.paths, reload_interval=0)
    try:
        return {db.kind for db in geo.databases}
    finally:
        geo.close()
