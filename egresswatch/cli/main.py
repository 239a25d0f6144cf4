"""``egresswatch``: the command line. Loads the settings once and hands them down."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from egresswatch import __version__
from egresswatch.cli import alerts, db, dns, doctor, flows, geoip, policy, replay, run, serve
from egresswatch.errors import EgressWatchError

if TYPE_CHECKING:
    from egresswatch.config import Settings

COMMANDS = (run, serve, replay, flows, dns, alerts, policy, db, geoip, doctor)


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        type=Path,
        metavar="PATH",
        help="config file (default: /etc/egresswatch/egresswatch.toml when it exists)",
    )
    common.add_argument(
        "--db",
        metavar="URL",
        help="SQLAlchemy database URL (default: the config's db, EGRESSWATCH_DB, or "
        "sqlite:////var/lib/egresswatch/egresswatch.db)",
    )
    parser = argparse.ArgumentParser(
        prog="egresswatch", description="Passive egress monitor for AI inference boxes."
    )
    parser.add_argument("--version", action="version", version=f"egresswatch {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. Commands load the settings when they need them (``load()``), so a replay
    can start decoding before pydantic and SQLAlchemy are even imported."""
    args = build_parser().parse_args(argv)
    loaded: list[Settings] = []

    def load() -> Settings:
        if not loaded:
            loaded.append(_settings(args))
            logging.basicConfig(
                level=loaded[0].log_level,
                format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            )
        return loaded[0]

    try:
        code: int = args.run(args, load)
        return code
    except EgressWatchError as exc:
        print(f"egresswatch: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `egresswatch flows | head`
        sys.stderr.close()
        return 0


def _settings(args: argparse.Namespace) -> Settings:
    from egresswatch.config import load_settings  # noqa: PLC0415 - see main()

    settings = load_settings(args.config)
    if args.db:
        settings = settings.model_copy(update={"db": args.db})
    return settings


if __name__ == "__main__":
    sys.exit(main())
