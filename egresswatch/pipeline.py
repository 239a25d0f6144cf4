"""decode -> flows -> store, for any source of frame batches (a capture file now, interfaces later).

With ``workers=2`` the reading and decoding run in a second process (it only needs the CPU), and
this process keeps the flow table and the database: the two halves cost about the same, so a
replay uses both cores of a small box.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import multiprocessing
import queue
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple

from egresswatch.capture.frames import FrameBatch, Int64Array
from egresswatch.config import Settings
from egresswatch.decode import FragmentReassembler, PacketFacts, decode
from egresswatch.decode.batch import DecodedBatch, decode_batch
from egresswatch.decode.packet import UDP
from egresswatch.decode.tunnels import teredo_inner
from egresswatch.errors import CaptureError, EgressWatchError
from egresswatch.flows.localnet import LocalNetworks
from egresswatch.flows.record import FlowRecord
from egresswatch.flows.table import FlowTable

log = logging.getLogger(__name__)

FlowSink = Callable[[list[FlowRecord]], None]
_QUEUE_DEPTH = 6  # decoded batches in flight between the processes (bounds memory)


class Prepared(NamedTuple):
    """A batch decoded, ready for the flow table (picklable once the frame buffer is dropped)."""

    decoded: DecodedBatch
    extra: list[tuple[int, float, PacketFacts]]
    interface: str
    packets: int
    position: int
    """How far the source has read (bytes), for progress display."""


class Pipeline:
    """Turns frames into flow records and hands them to ``sink`` in batches."""

    def __init__(self, settings: Settings, sink: FlowSink, *, sweep_interval: float = 1.0) -> None:
        local = LocalNetworks([*settings.local_networks, *settings.extra_local_networks])
        self.table = FlowTable(settings.flows, local)
        self.fragments = FragmentReassembler()
        self.skipped: Counter[str] = Counter()
        """Packets not accounted to any flow, by reason (malformed, truncated, not IP, ...)."""
        self.packets = 0
        self.flows_written = 0
        self._sink = sink
        self._batch_size = settings.store.batch_size
        self._sweep_interval = sweep_interval
        """Seconds of packet time between looks for ended flows (live: 1 s, so finished flows
        reach the database promptly; replay: longer, nobody is waiting)."""
        self._pending: list[FlowRecord] = []
        self._next_sweep = -math.inf

    def feed(
        self,
        batches: Iterable[FrameBatch],
        interface_name: Callable[[int], str],
        progress: Callable[[int, int], None] | None = None,
        position: Callable[[], int] = lambda: 0,
        *,
        workers: int = 1,
    ) -> None:
        """Account every frame of every batch. Nothing here raises on bad packets.

        ``progress(packets, position)`` is called after each batch; ``workers=2`` decodes in a
        second process.
        """
        prepared = self._prepare_all(batches, interface_name, position)
        if workers > 1:
            prepared = self._from_worker(prepared)
        for item in prepared:
            self._apply(item)
            if progress is not None:
                progress(self.packets, item.position)

    def finish(self) -> None:
        """End every flow still open and write everything out (end of replay, shutdown)."""
        self._emit(self.table.flush())
        self._write()

    @property
    def counters(self) -> Counter[str]:
        """Everything countable about the run: packets, skips by reason, flow table events."""
        total: Counter[str] = Counter(packets=self.packets, flows_written=self.flows_written)
        total.update(self.table.counters)
        total.update({f"skipped_{k}": v for k, v in self.skipped.items()})
        total.update({f"skipped_{k}": v for k, v in self.fragments.dropped.items()})
        return total

    # The decoding half: pure CPU, runs in the worker process when there is one.

    def _prepare_all(
        self,
        batches: Iterable[FrameBatch],
        interface_name: Callable[[int], str],
        position: Callable[[], int],
    ) -> Iterator[Prepared]:
        names: dict[int, str] = {}
        for batch in batches:
            if not len(batch):
                continue
            name = names.get(batch.iface)
            if name is None:
                name = names[batch.iface] = interface_name(batch.iface)
            decoded = decode_batch(batch)
            extra = self._decode_slow(batch, decoded.slow)
            yield Prepared(decoded, extra, name, len(batch), position())

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

    # The accounting half: flow table and database, always in this process.

    def _apply(self, item: Prepared) -> None:
        first_ts = float(item.decoded.ts[0]) if len(item.decoded) else math.nan
        if first_ts >= self._next_sweep:
            self._next_sweep = first_ts + self._sweep_interval
            self.fragments.expire(first_ts)
            self._emit(self.table.sweep(first_ts))
        self.table.add_batch(item.decoded, item.extra, item.interface)
        self.packets += item.packets

    def _emit(self, records: list[FlowRecord]) -> None:
        self._pending.extend(records)
        if len(self._pending) >= self._batch_size:
            self._write()

    def _write(self) -> None:
        if self._pending:
            batch, self._pending = self._pending, []
            self._sink(batch)
            self.flows_written += len(batch)

    # The worker process.

    def _from_worker(self, prepared: Iterator[Prepared]) -> Iterator[Prepared]:
        ctx = multiprocessing.get_context("fork")  # the worker inherits the open source
        channel: Any = ctx.Queue(maxsize=_QUEUE_DEPTH)
        worker = ctx.Process(target=self._work, args=(prepared, channel), daemon=True)
        worker.start()
        try:
            while True:
                try:
                    kind, payload = channel.get(timeout=1.0)
                except queue.Empty:
                    if not worker.is_alive():
                        raise CaptureError("the decoding process died") from None
                    continue
                if kind == "batch":
                    yield payload
                elif kind == "done":
                    skipped, dropped = payload
                    self.skipped.update(skipped)
                    self.fragments.dropped.update(dropped)
                    return
                else:
                    raise CaptureError(payload)
        finally:
            worker.join(timeout=5)
            if worker.is_alive():
                worker.terminate()

    def _work(self, prepared: Iterator[Prepared], channel: Any) -> None:
        try:
            for item in prepared:
                # The frame buffer stays behind: the flow table needs the columns only.
                decoded = dataclasses.replace(item.decoded, buf=b"")
                channel.put(("batch", item._replace(decoded=decoded)))
            channel.put(("done", (self.skipped, self.fragments.dropped)))
        except EgressWatchError as exc:
            channel.put(("error", str(exc)))
        except KeyboardInterrupt:
            pass
        finally:
            channel.close()
            channel.join_thread()
