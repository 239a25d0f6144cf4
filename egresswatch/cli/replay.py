"""``egresswatch replay FILE``: a capture file through the pipeline into the database."""

from __future__ import annotations

import argparse
import logging
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from egresswatch.capture.pcapfile import PcapFile
from egresswatch.cli.geoip import add_geoip_option, geoip_paths
from egresswatch.cli.progress import ProgressBar
from egresswatch.pipeline import Decoder, DecodeWorker, Pipeline, Prepared

if TYPE_CHECKING:
    from egresswatch.config import Settings

_log = logging.getLogger(__name__)
_PROGRESS_MIN_BYTES = 8 << 20
_SWEEP_INTERVAL = 10.0  # seconds of capture time: a replay has no one waiting for each flow


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser(
        "replay", parents=[common], help="read a pcap/pcapng file (also .gz) into the database"
    )
    parser.add_argument("file", type=Path, help="capture file")
    parser.add_argument(
        "--interface",
        metavar="NAME",
        help="interface name recorded on the flows (default: the file's own, else its file name)",
    )
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar or summary")
    parser.add_argument(
        "--flows-only",
        action="store_true",
        help="account flows only: no names from payloads, no DNS history, no GeoIP (faster)",
    )
    add_geoip_option(parser)
    parser.add_argument(
        "--workers",
        type=int,
        choices=(1, 2),
        default=2 if (os.cpu_count() or 1) > 1 else 1,
        help="2: decode in a second process while this one keeps the flows (default on 2+ CPUs)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, load: Callable[[], Settings]) -> int:
    started = time.monotonic()
    capture = PcapFile(args.file)

    def interface_name(index: int) -> str:
        if args.interface:
            return str(args.interface)
        known = capture.interfaces[index].name if index < len(capture.interfaces) else ""
        return known or args.file.name

    # Decoding starts first (in a second process when there are two CPUs), so that it overlaps
    # loading the settings, importing the database layers and opening the database.
    decoder = Decoder(names=not args.flows_only)
    prepared: Iterable[Prepared] = decoder.prepare(
        capture.batches(), interface_name, lambda: capture.position
    )
    if args.workers > 1:
        prepared = DecodeWorker(decoder, iter(prepared))
    settings = load()
    from egresswatch.geo.resolver import GeoResolver  # noqa: PLC0415 - see above
    from egresswatch.store import Database  # noqa: PLC0415 - see above

    paths = [] if args.flows_only else geoip_paths(args, settings)
    geo = GeoResolver(paths, reload_interval=settings.geoip.reload_interval)
    if paths:
        _log.info("%s", geo.describe())
    database = Database(settings.db)
    try:
        database.upgrade()
        pipeline = Pipeline(settings, database, decoder, geo=geo, sweep_interval=_SWEEP_INTERVAL)
        bar = None
        if not args.quiet and ProgressBar.wanted() and capture.size >= _PROGRESS_MIN_BYTES:
            bar = ProgressBar(capture.size)
        try:
            pipeline.feed(prepared, bar.update if bar else None)
        finally:
            if bar:
                bar.close()
            pipeline.finish()  # also on Ctrl-C or a damaged file: what was read is kept
        elapsed = time.monotonic() - started
    finally:
        database.close()
        have_geo = bool(geo.databases)
        geo.close()
    if not args.quiet:
        print(summary(pipeline, elapsed))
        if not have_geo and not args.flows_only:
            print(
                "geo: no GeoIP database found; country/city/ASN stay empty "
                "(see `egresswatch geoip status`)"
            )
    return 0


def summary(pipeline: Pipeline, elapsed: float) -> str:
    counters = pipeline.counters
    rate = pipeline.packets / elapsed if elapsed > 0 else 0.0
    lines = [
        f"{pipeline.packets:,} packets in {elapsed:.2f} s ({rate:,.0f} packets/s), "
        f"{pipeline.flows_written:,} flows written",
    ]
    skipped = sorted(
        (k.removeprefix("skipped_"), v)
        for k, v in counters.items()
        if k.startswith("skipped_") and v
    )
    if skipped:
        total = sum(v for _, v in skipped)
        detail = ", ".join(f"{reason} {count:,}" for reason, count in skipped)
        lines.append(f"skipped {total:,} packets: {detail}")
    named = sorted(
        (k.removeprefix("flows_named_"), v) for k, v in counters.items()
        if k.startswith("flows_named_")
    )  # fmt: skip
    if named or counters["dns_answers_written"]:
        detail = ", ".join(f"{source} {count:,}" for source, count in named) or "none"
        lines.append(
            f"names: {sum(v for _, v in named):,} flows named ({detail}), "
            f"{counters['dns_answers_written']:,} DNS answers stored"
        )
    unreadable = sorted(
        (k.removeprefix("unnamed_"), v) for k, v in counters.items() if k.startswith("unnamed_")
    )
    if unreadable:
        detail = ", ".join(f"{reason} {count:,}" for reason, count in unreadable)
        lines.append(f"payloads that did not parse (flows left unnamed): {detail}")
    if counters["flows_evicted"]:
        lines.append(
            f"flow table full: {counters['flows_evicted']:,} flows written out early "
            "(raise flows.max_flows)"
        )
    return "\n".join(lines)
