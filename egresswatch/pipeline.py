"""decode -> flows -> store, for any source of frames (a capture file now, interfaces later)."""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable, Iterable

from egresswatch.capture.pcapfile import Frame
from egresswatch.config import Settings
from egresswatch.decode import FragmentReassembler, PacketFacts, decode
from egresswatch.decode.packet import UDP
from egresswatch.decode.tunnels import teredo_inner
from egresswatch.flows.localnet import LocalNetworks
from egresswatch.flows.record import FlowRecord
from egresswatch.flows.table import FlowTable

log = logging.getLogger(__name__)

SWEEP_INTERVAL = 1.0
"""Seconds of packet time between looks for ended flows (so finished flows leave within ~1 s)."""
PROGRESS_EVERY = 1 << 16
"""Packets between progress callbacks."""

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
        frames: Iterable[Frame],
        interface_name: Callable[[int], str],
        progress: Callable[[int], None] | None = None,
    ) -> None:
        """Account every frame. The per-packet loop: nothing here may raise on bad input."""
        add = self.table.add
        skipped = self.skipped
        reassemble = self.fragments.add
        names: dict[int, str] = {}
        packets = self.packets
        try:
            for ts, linktype, frame, wire_len, iface in frames:
                packets += 1
                if progress is not None and packets % PROGRESS_EVERY == 0:
                    progress(packets)
                facts = decode(frame, linktype, wire_len)
                if not isinstance(facts, PacketFacts):
                    if isinstance(facts, str):
                        skipped[facts] += 1
                        continue
                    whole = reassemble(facts, ts)
                    if not isinstance(whole, PacketFacts):
                        if whole is not None:
                            skipped[whole] += 1
                        continue
                    facts = whole
                if ts >= self._next_sweep:
                    self._sweep(ts)
                name = names.get(iface)
                if name is None:
                    name = names[iface] = interface_name(iface)
                add(facts, ts, name)
                if facts.proto == UDP:
                    inner = teredo_inner(facts)
                    if inner is not None:
                        add(inner, ts, name)
        finally:
            self.packets = packets

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
