"""capture -> decode -> flows -> enrich -> store, in two halves that may run in two processes.

``Decoder`` turns frame batches into decoded, flow-grouped batches and reads names out of the
payloads (pure CPU, no database); ``Pipeline`` accounts them in the flow table, enriches the
records and writes them. ``DecodeWorker`` runs a
Decoder in a second process: the halves cost about the same, so a replay uses both cores of a
small box, and the worker starts before the database layers are even imported.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import multiprocessing
import queue
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from egresswatch.capture.frames import FrameBatch, Int64Array
from egresswatch.decode import FragmentReassembler, PacketFacts, decode
from egresswatch.decode.batch import DecodedBatch, decode_batch
from egresswatch.decode.packet import UDP
from egresswatch.decode.tunnels import teredo_inner
from egresswatch.enrich import Enricher
from egresswatch.errors import CaptureError, EgressWatchError
from egresswatch.flows.evidence import Evidence
from egresswatch.flows.grouping import Grouping, group_batch
from egresswatch.flows.key import canonical
from egresswatch.flows.localnet import LocalNetworks
from egresswatch.flows.nat import NatTwins
from egresswatch.flows.record import FlowRecord
from egresswatch.flows.table import FlowTable, OnStart
from egresswatch.names.passive_dns import DnsAnswer, PassiveDns
from egresswatch.names.sniffer import NOTHING, NameSniffer, Sniffed

if TYPE_CHECKING:
    from egresswatch.attribution.containers import ContainerMap
    from egresswatch.attribution.processes import ProcessMap
    from egresswatch.config import Settings
    from egresswatch.geo.resolver import GeoResolver
    from egresswatch.policy.alert import Alert, Destinations, Routes
    from egresswatch.policy.judge import PolicyJudge


class Sink(Protocol):
    """Where records go: the database, or a test's list."""

    def write_flows(self, records: Sequence[FlowRecord]) -> None: ...

    def write_dns(self, answers: Sequence[DnsAnswer]) -> None: ...

    def write_alerts(
        self,
        alerts: Sequence[Alert],
        window: float,
        webhooks: Routes | None = None,
        *,
        destinations: Destinations = (),
    ) -> None: ...


_QUEUE_DEPTH = 24  # decoded batches in flight (~2 MB each): the worker runs ahead at start


class Prepared(NamedTuple):
    """A batch decoded and grouped by flow, ready for the flow table."""

    decoded: DecodedBatch
    grouping: Grouping
    extra: list[tuple[int, float, PacketFacts]]
    """What the per-packet decoder made of the frames the bulk decoder left: (row, time, facts)."""
    sniffed: Sniffed
    """Names the clients said and DNS answers, read from the payloads."""
    interface: str
    packets: int
    position: int
    """How far the source has read (bytes), for progress display."""


class Decoder:
    """The decoding half: frame batches in, Prepared batches out. Holds IP reassembly state."""

    def __init__(self, *, names: bool = True, evidence: Evidence | None = None) -> None:
        self.fragments = FragmentReassembler()
        self.names = NameSniffer()
        self._sniff = names
        self.evidence = evidence
        """Live: the first packets of recent flows, for the pcap an alert carries."""
        """False: no names read from payloads (the benchmark's baseline)."""
        self.skipped: Counter[str] = Counter()
        """Packets not accounted to any flow, by reason (malformed, truncated, not IP, ...)."""

    def prepare(
        self,
        batches: Iterable[FrameBatch],
        interface_name: Callable[[int], str],
        position: Callable[[], int] = lambda: 0,
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
            self.fragments.expire(float(batch.ts[0]))
            grouping = group_batch(decoded)
            if self.evidence is not None:
                self.evidence.add(batch, decoded, grouping)
            sniffed = self.names.sniff(batch, decoded, grouping, extra) if self._sniff else NOTHING
            yield Prepared(decoded, grouping, extra, sniffed, name, len(batch), position())

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

    @property
    def counters(self) -> Counter[str]:
        total: Counter[str] = Counter({f"skipped_{k}": v for k, v in self.skipped.items()})
        total.update({f"skipped_{k}": v for k, v in self.fragments.dropped.items()})
        total.update({f"unnamed_{k}": v for k, v in self.names.errors.items()})
        return total


class DecodeWorker:
    """Runs ``decoder.prepare(...)`` in a forked process from the moment it is created.

    Iterating it yields the Prepared batches; the decoder's counters come back at the end. The
    frame buffers stay in the worker: the flow table needs the columns only.
    """

    def __init__(self, decoder: Decoder, prepared: Iterator[Prepared]) -> None:
        self._decoder = decoder
        ctx = multiprocessing.get_context("fork")  # the worker inherits the open source
        self._channel: Any = ctx.Queue(maxsize=_QUEUE_DEPTH)
        self._process = ctx.Process(target=self._work, args=(prepared,), daemon=True)
        self._process.start()

    def __iter__(self) -> Iterator[Prepared]:
        try:
            while True:
                try:
                    kind, payload = self._channel.get(timeout=1.0)
                except queue.Empty:
                    if not self._process.is_alive():
                        raise CaptureError("the decoding process died") from None
                    continue
                if kind == "batch":
                    yield payload
                elif kind == "done":
                    skipped, dropped, name_errors = payload
                    self._decoder.skipped.update(skipped)
                    self._decoder.fragments.dropped.update(dropped)
                    self._decoder.names.errors.update(name_errors)
                    return
                else:
                    raise CaptureError(payload)
        finally:
            self._process.join(timeout=5)
            if self._process.is_alive():
                self._process.terminate()

    def _work(self, prepared: Iterator[Prepared]) -> None:
        channel = self._channel
        try:
            for item in prepared:
                # Half the columns would be half the cost of crossing: send what accounting
                # reads (all of them after a hash collision, which is accounted row by row).
                decoded = (
                    item.decoded.for_accounting()
                    if item.grouping is not None
                    else dataclasses.replace(item.decoded, buf=b"")
                )
                channel.put(("batch", item._replace(decoded=decoded)))
            decoder = self._decoder
            channel.put(
                ("done", (decoder.skipped, decoder.fragments.dropped, decoder.names.errors))
            )
        except EgressWatchError as exc:
            channel.put(("error", str(exc)))
        except KeyboardInterrupt:
            pass
        finally:
            channel.close()
            channel.join_thread()


class Pipeline:
    """The accounting half: Prepared batches in, enriched flow records and DNS answers to ``sink``
    in batches."""

    def __init__(
        self,
        settings: Settings,
        sink: Sink,
        decoder: Decoder,
        *,
        geo: GeoResolver | None = None,
        sweep_interval: float = 1.0,
        live: bool = False,
        twins: NatTwins | None = None,
        containers: ContainerMap | None = None,
        processes: ProcessMap | None = None,
        on_flow_start: OnStart | None = None,
        judge: PolicyJudge | None = None,
    ) -> None:
        local = LocalNetworks([*settings.local_networks, *settings.extra_local_networks])
        passive_dns = PassiveDns(size=settings.names.dns_cache_size, grace=settings.names.dns_grace)
        self.enricher = Enricher(passive_dns, geo, containers, processes)
        self.table = FlowTable(
            settings.flows,
            local,
            enrich=self.enricher.enrichment,
            report_closing=live,
            on_start=on_flow_start,
        )
        self.named: Counter[str] = Counter()
        """Ended flows by name_source (none: no name)."""
        self.decoder = decoder
        self.packets = 0
        self.flows_written = 0
        self._sink = sink
        self._batch_size = settings.store.batch_size
        self._sweep_interval = sweep_interval
        """Seconds of packet time between looks for ended flows (live: 1 s, so finished flows
        reach the database promptly; replay: longer, nobody is waiting)."""
        self.judge = judge
        """Live, with a policy: flows judged as they are written; alerts to the sink."""
        self.twins = twins
        """Live, with bridges captured: drops the uplink sightings of NAT'd container flows."""
        self._pending: list[FlowRecord] = []
        self._answers: list[DnsAnswer] = []
        self._other_alerts: list[Alert] = []
        """Alerts raised by something else than a flow record (DNS answers, image changes)."""
        self.answers_written = 0
        self.alerts_raised = 0
        self._next_sweep = -math.inf

    def feed(
        self, prepared: Iterable[Prepared], progress: Callable[[int, int], None] | None = None
    ) -> None:
        """Account every batch; ``progress(packets, position)`` after each."""
        for item in prepared:
            self.add(item)
            if progress is not None:
                progress(self.packets, item.position)

    def add(self, item: Prepared) -> None:
        """Account one batch (sweeping for ended flows first, every ``sweep_interval`` of packet
        time)."""
        if len(item.decoded):
            first_ts = float(item.decoded.ts[0])
            if first_ts >= self._next_sweep:
                self._next_sweep = first_ts + self._sweep_interval
                self._emit(self.table.sweep(first_ts), first_ts)
        names, answers = item.sniffed
        for fid, said in names:  # before the packets: they may end the flow they name
            self.table.name(fid, said)
        self.table.add_grouped(item.decoded, item.grouping, item.extra, item.interface)
        if answers:
            self.enricher.learn(answers)
            self._answers.extend(answers)
            if self.judge is not None:
                self._other_alerts.extend(self.judge.judge_dns(answers))
        self.packets += item.packets

    def tick(self, now: float) -> None:
        """Live: time passes without packets too. Sweep at ``now`` and write out everything
        pending, so ended flows and DNS answers reach the database within a tick."""
        containers = self.enricher.containers
        if self.judge is not None and containers is not None:
            for container, before, at in containers.take_image_changes():
                self._other_alerts.extend(self.judge.image_changed(container, before, at))
        self._next_sweep = now + self._sweep_interval
        self._pending.extend(self.table.sweep(now))
        self._write(now)

    def finish(self) -> None:
        """End every flow still open and write everything out (end of replay, shutdown)."""
        self._pending.extend(self.table.flush())
        self._write(math.inf)

    @property
    def counters(self) -> Counter[str]:
        """Everything countable about the run: packets, skips by reason, flow table events."""
        total: Counter[str] = Counter(
            packets=self.packets,
            flows_written=self.flows_written,
            dns_answers_written=self.answers_written,
            alerts_raised=self.alerts_raised,
        )
        total.update(self.table.counters)
        total.update(self.enricher.counters)
        if self.twins is not None:
            total.update(self.twins.counters)
        total.update({f"flows_named_{k}": v for k, v in self.named.items() if k != "none"})
        total.update(self.decoder.counters)
        return total

    def _with_evidence(self, alert: Alert) -> Alert:
        evidence = self.decoder.evidence
        if evidence is None or alert.flow is None:
            return alert
        f = alert.flow
        src, dst = ipaddress.ip_address(f.src_ip).packed, ipaddress.ip_address(f.dst_ip).packed
        fid = canonical(src, f.src_port, dst, f.dst_port, f.ip_proto)
        return dataclasses.replace(alert, evidence=evidence.pcap(fid))

    def _emit(self, records: list[FlowRecord], now: float) -> None:
        self._pending.extend(records)
        if len(self._pending) + len(self._answers) >= self._batch_size:
            self._write(now)

    def _write(self, now: float) -> None:
        """Write out what is pending; ``now`` (packet or wall time; inf: the end) lets held-back
        NAT twins go."""
        # Answers first: a flow named after DNS never points at an answer not yet stored.
        if self._answers:
            answers, self._answers = self._answers, []
            self._sink.write_dns(answers)
            self.answers_written += len(answers)
        batch, self._pending = self._pending, []
        if self.twins is not None:
            batch = self.twins.settle(batch, now, final=now == math.inf)
        if self.judge is not None:
            alerts = self.judge.judge(batch)
            alerts += self._other_alerts
            self._other_alerts = []
            discovered = self.judge.take_discovered()
            if alerts or discovered:  # together: a first-seen alert is stored with its pair
                alerts = [self._with_evidence(a) for a in alerts]
                self._sink.write_alerts(
                    alerts, self.judge.policy.suppression_window, destinations=discovered
                )
                self.alerts_raised += len(alerts)
        if batch:
            self.named.update(r.name_source or "none" for r in batch if r.closed)
            self._sink.write_flows(batch)
            self.flows_written += len(batch)
