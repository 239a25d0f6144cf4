"""decode -> flows -> store, for any source of frames (a capture file now, interfaces later)."""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable, Iterable

from egresswatch.capture.frames import FrameBatch, Int64Array
from egresswatch.config import Settings
from egresswatch.decode import FragmentReassembler, PacketFacts, decode
from egresswatch.decode.batch import decode_batch
from egresswatch.decode.packet import UDP
from egresswatch.decode.tunnels import teredo_inner
from egresswatch.flows.localnet import LocalNetworks
from egresswatch.flows.record import FlowRecord
from egresswatch.flows.table import FlowTable

log = logging.getLogger(__name__)

SWEEP_INTERVAL = 1.0
"""Seconds of packet time between looks for ended flows (so finished flows leave within ~1 s)."""

FlowSink = Callable[[list[FlowRecord]], None]


class Pipeline:
    """Turns frames into flow records and hands them to ``sink`` in batches."""

    def __init__(self, settings: Settings, sink: FlowSink) -> None:
        local = LocalNetworks([*settings.local_networks, *settings.extra_local_networks])
        self.table = FlowTable(settings.flows, local)
        self.fragments = FragmentReassembler()
        self.skipped: Counter[str] = Counter()
        """Packets not accounted to any flow, by reason (malformed, truncated, not IP, ...)."""
        self.packets = 0
        self.flows_written = 0
        self._sink = sink
        self._batch_size = settings.store.batch_size
        self._pending: list[FlowRecord] = []
        self._next_sweep = -math.inf

    def feed(
        self,
        batches: Iterable[FrameBatch],
        interface_name: Callable[[int], str],
        progress: Callable[[int], None] | None = None,
    ) -> None:
        """Account every frame of every batch. Nothing here may raise on bad input."""
        names: dict[int, str] = {}
        for batch in batches:
            if not len(batch):
                continue
            first_ts = float(batch.ts[0])
            if first_ts >= self._next_sweep:
                self._sweep(first_ts)
            name = names.get(batch.iface)
            if name is None:
                name = names[batch.iface] = interface_name(batch.iface)
            decoded = decode_batch(batch)
            self.table.add_batch(decoded, self._decode_slow(batch, decoded.slow), name)
            self.packets += len(batch)
            if progress is not None:
                progress(self.packets)

    def _decode_slow(
        self, batch: FrameBatch, rows: Int64Array
    ) -> list[tuple[int, float, PacketFacts]]:
        """The per-packet decoder, for the frames the bulk decoder left (and IP reassembly)."""
        out: list[tuple[int, float, PacketFacts]] = []
        buf, linktype = batch.buf, batch.linktype
        starts, caplens = batch.start[rows].tolist(), batch.caplen[rows].tolist()
        wirelens, times = batch.wirelen[rows].tolist(), batch.ts[rows].tolist()
        for row, start, caplen, wirelen, ts in zip(
            rows.tolist(), starts, caplens, wirelens, times, strict=True
        ):
            facts = decode(buf[start : start + caplen], linktype, wirelen)
            if not isinstance(facts, PacketFacts):
                if isinstance(facts, str):
                    self.skipped[facts] += 1
                    continue
                whole = self.fragments.add(facts, ts)
                if not isinstance(whole, PacketFacts):
                    if whole is not None:
                        self.skipped[whole] += 1
                    continue
                facts = whole
            out.append((row, ts, facts))
            if facts.proto == UDP:
                inner = teredo_inner(facts)
                if inner is not None:
                    out.append((row, ts, inner))
        return out

    def finish(self) -> None:
        """End every flow still open and write everything out (end of replay, shutdown)."""
        self._emit(self.table.flush())
        self._write()

    def _sweep(self, now: float) -> None:
        self._next_sweep = now + SWEEP_INTERVAL
        self.fragments.expire(now)
        self._emit(self.table.sweep(now))

    def _emit(self, records: list[FlowRecord]) -> None:
        self._pending.extend(records)
        if len(self._pending) >= self._batch_size:
            self._write()

    def _write(self) -> None:
        if self._pending:
            batch, self._pending = self._pending, []
            self._sink(batch)
            self.flows_written += len(batch)

    @property
    def counters(self) -> Counter[str]:
        """Everything countable about the run: packets, skips by reason, flow table events."""
        total: Counter[str] = Counter(packets=self.packets, flows_written=self.flows_written)
        total.update(self.table.counters)
        total.update({f"skipped_{k}": v for k, v in self.skipped.items()})
        total.update({f"skipped_{k}": v for k, v in self.fragments.dropped.items()})
        return total
