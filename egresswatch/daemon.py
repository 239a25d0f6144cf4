"""`egresswatch run`: live capture -> decode -> flows -> enrich -> store, until SIGTERM.

Three threads: capture (rings -> bounded queue), this one (decode, flow table, enrichment) and the
store writer (bounded queue -> database). Neither queue ever blocks the one before it; what a
full queue refuses is counted. Every second, ended flows and DNS answers are written out; every
``rediscover_interval``, the interfaces are looked for again.
"""

from __future__ import annotations

import logging
import queue
import signal
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from egresswatch.attribution.containers import ContainerMap
from egresswatch.attribution.docker import DockerInventory
from egresswatch.attribution.kernel import ConnectProbe, ProbeError
from egresswatch.attribution.processes import ProcessMap
from egresswatch.attribution.sockets import SocketOwners
from egresswatch.capture.conntrack import Conntrack
from egresswatch.capture.frames import FrameBatch
from egresswatch.capture.interfaces import InterfaceFinder
from egresswatch.capture.source import CaptureSource, capture_source
from egresswatch.config import Settings
from egresswatch.dockerapi import DockerApi
from egresswatch.errors import CaptureError, StoreError
from egresswatch.flows.evidence import Evidence
from egresswatch.flows.nat import NatTwins
from egresswatch.flows.table import OnStart
from egresswatch.geo.resolver import GeoResolver
from egresswatch.notify.courier import Courier, targets_from
from egresswatch.pipeline import Decoder, Pipeline
from egresswatch.policy.judge import PolicyJudge
from egresswatch.policy.watch import PolicyWatch
from egresswatch.sdnotify import ServiceNotifier
from egresswatch.status import DaemonFacts, describe, host_name, status_line
from egresswatch.store import Database
from egresswatch.store.background import BackgroundWriter

_log = logging.getLogger(__name__)
_TICK = 1.0  # seconds between writes of ended flows: "finished flows within 2 s"
_REPORT = 60.0  # seconds between log lines with the counters
_PUBLISH = 5.0  # seconds between status updates in the database (/readyz, /metrics)
_PRUNE = 3600.0  # seconds between retention passes (the first a minute after start)


class Daemon:
    """Runs the live pipeline. ``interfaces`` (from the command line) replaces discovery."""

    def __init__(
        self,
        settings: Settings,
        *,
        reload: Callable[[], Settings],
        interfaces: list[str] | None = None,
        geo_paths: Sequence[Path] = (),
        api: Callable[[], Callable[[], None]] | None = None,
    ) -> None:
        self._settings = settings
        self._api = api
        """Starts the REST API beside the capture; returns what stops it."""
        self._reload = reload
        self._cli_interfaces = interfaces
        self._geo_paths = list(geo_paths)
        self._stop = threading.Event()
        self._hup = threading.Event()
        self._policy = PolicyWatch(set())  # its GeoIP kinds are known once GeoIP is opened
        self._finder = InterfaceFinder(docker_socket=settings.capture.docker_socket)
        self._facts = DaemonFacts(started=time.time())
        self._inventory: DockerInventory | None = None
        self._systemd = ServiceNotifier()

    def wanted(self) -> dict[str, bool]:
        """Interface -> promiscuous, for the interfaces to capture on now."""
        c = self._settings.capture
        named = self._cli_interfaces or c.interfaces
        if named:
            return {name: False for name in named}
        found = self._finder.find()
        return {name: c.promiscuous_bridges and why == "bridge" for name, why in found.items()}

    def run(self) -> int:
        s = self._settings
        c = s.capture
        wanted = self.wanted()
        if not wanted:
            raise CaptureError(
                "no interface to capture on: no Docker bridge and no default route found "
                "(name one with --interface)"
            )
        capture = capture_source(c)
        capture.open(wanted)  # fails here, before anything else, without the capability
        try:
            database = Database(s.db)
        except BaseException:
            capture.close()
            raise
        try:
            self._run(capture, database)
        finally:
            capture.close()
            database.close()
        return 0

    def _run(self, capture: CaptureSource, database: Database) -> None:
        database.upgrade()
        closing: list[Callable[[], object]] = []  # what to close at the end, in reverse
        built: tuple[Pipeline, BackgroundWriter] | None = None
        try:
            if self._api is not None:
                closing.append(self._api())
            built = self._pipeline(database, closing)
            _log.info("capturing on %s; writing to %s", ", ".join(capture.interfaces), database)
            self._install_signals()
            self._systemd.ready(f"capturing on {', '.join(capture.interfaces)}")
            self._loop(capture, *built)
        finally:
            self._systemd.stopping()
            capture.close()
            try:
                if built is not None:
                    pipeline = built[0]
                    while not capture.frames.empty():  # what the rings handed over
                        self._add(capture.frames.get_nowait(), capture, pipeline)
                    pipeline.finish()
                    self._publish(pipeline, capture, built[1], running=False)
            finally:
                for close in reversed(closing):  # each one, whatever the others do
                    try:
                        close()
                    except Exception:
                        _log.exception("while stopping")
            if built is not None:
                stopped = self._describe(built[0], capture, built[1], running=False)
                _log.info("stopped: %s", status_line(stopped))

    def _pipeline(
        self, database: Database, closing: list[Callable[[], object]]
    ) -> tuple[Pipeline, BackgroundWriter]:
        """The live pipeline and everything it draws on (each added to ``closing``): the
        webhooks, the database writer, GeoIP, conntrack, Docker, the process probe, the policy."""
        s = self._settings
        courier = self._courier(database)
        if courier is not None:
            closing.append(courier.close)  # what is not delivered stays in the outbox
        writer = BackgroundWriter(database, routes=courier.routes if courier else None)
        closing.append(lambda: _closed(writer))
        geo = GeoResolver(self._geo_paths, reload_interval=s.geoip.reload_interval)
        closing.append(geo.close)
        self._facts.geoip_databases = [db.database_type for db in geo.databases]
        self._policy.geoip_kinds = {db.kind for db in geo.databases}
        self._facts.geoip_problems = geo.problems()
        conntrack = self._conntrack()
        if conntrack is not None:
            closing.append(conntrack.close)
        twins = None
        if s.capture.nat_twins != "off":
            twins = NatTwins(conntrack.lookup if conntrack is not None else None)
            how = "from conntrack" if conntrack else "by destination, ports and time"
            _log.info("NAT'd container flows are matched %s to their uplink sightings", how)
        containers, processes = ContainerMap(), ProcessMap()
        inventory = self._docker(containers, writer)
        if inventory is not None:
            closing.append(inventory.close)
        probe = self._probe(processes) if s.attribution.probe else None
        if probe is not None:
            closing.append(probe.close)
        fallback = None if probe is not None else self._socket_owners()
        if fallback is not None:
            closing.append(fallback.close)
        self._facts.attribution = "ebpf" if probe else "sock_diag" if fallback else "off"
        pipeline = Pipeline(
            s,
            writer,
            Decoder(evidence=Evidence()),
            geo=geo,
            live=True,
            twins=twins,
            containers=containers,
            processes=processes if probe is not None or fallback is not None else None,
            on_flow_start=None if fallback is None else self._looked_up(fallback, processes),
            judge=self._judge(containers, database),
        )
        return pipeline, writer

    def _loop(self, capture: CaptureSource, pipeline: Pipeline, writer: BackgroundWriter) -> None:
        c = self._settings.capture
        now = time.time()
        next_tick, next_look, next_report = now + _TICK, now + c.rediscover_interval, now + _REPORT
        next_publish, next_prune = now, now + 60.0
        while not self._stop.is_set():
            try:
                batch = capture.frames.get(timeout=0.2)
            except queue.Empty:
                pass
            else:
                self._add(batch, capture, pipeline)
            now = time.time()
            if now >= next_tick:
                next_tick = now + _TICK
                if pipeline.twins is not None:
                    pipeline.twins.bridges = self._finder.bridges_among(capture.interfaces)
                pipeline.tick(now)
                self._systemd.watchdog()  # every second: the loop is alive
            if self._hup.is_set():
                self._hup.clear()
                self._apply_reload()
                if pipeline.judge is not None:
                    self._reload_policy(pipeline.judge, "SIGHUP")
                next_look = now
            if now >= next_look:
                next_look = now + c.rediscover_interval
                capture.watch(self.wanted())
                path = self._settings.policy.path
                if pipeline.judge is not None and self._policy.changed(path):
                    self._reload_policy(pipeline.judge, f"{path} changed")
            if now >= next_prune:
                next_prune = now + _PRUNE
                st = self._settings.store
                writer.prune(now, st.keep_flows_days, st.keep_totals_days)
            if now >= next_publish:
                next_publish = now + _PUBLISH
                self._publish(pipeline, capture, writer, running=True)
            if now >= next_report:
                next_report = now + _REPORT
                if pipeline.enricher.containers is not None:
                    pipeline.enricher.containers.forget(now)
                if pipeline.enricher.processes is not None:
                    pipeline.enricher.processes.forget(now)
                _log.info(
                    "%s", status_line(self._describe(pipeline, capture, writer, running=True))
                )

    def _add(self, batch: FrameBatch, capture: CaptureSource, pipeline: Pipeline) -> None:
        if len(batch.ts):
            self._facts.last_packet[capture.interface_name(batch.iface)] = float(batch.ts[-1])
        for item in pipeline.decoder.prepare([batch], capture.interface_name):
            pipeline.add(item)

    def _publish(
        self, pipeline: Pipeline, capture: CaptureSource, writer: BackgroundWriter, *, running: bool
    ) -> None:
        """The status for /readyz and /metrics, into the database (by the writer's thread)."""
        status = self._describe(pipeline, capture, writer, running=running)
        writer.write_status(host_name(), time.time(), status)

    def _describe(
        self, pipeline: Pipeline, capture: CaptureSource, writer: BackgroundWriter, *, running: bool
    ) -> dict[str, Any]:
        if self._inventory is not None:
            self._facts.docker_reachable = self._inventory.reachable
        return describe(
            self._facts,
            running=running,
            capture_stats=capture.stats(),
            queue_drops=capture.dropped,
            packets=pipeline.packets,
            flow_records=pipeline.flows_written,
            flows_open=len(pipeline.table),
            store_failing=writer.failing,
            store_dropped=writer.dropped,
            counters=pipeline.counters,
        )

    def _docker(self, containers: ContainerMap, writer: BackgroundWriter) -> DockerInventory | None:
        """Docker's containers, kept current in ``containers`` and stored (None without Docker)."""
        socket_path = self._settings.capture.docker_socket
        self._facts.docker_socket = str(socket_path)
        if not socket_path.exists():
            _log.info("no Docker socket at %s: flows are not attributed to containers", socket_path)
            return None
        inventory = DockerInventory(DockerApi(socket_path), containers, writer.write_containers)
        self._inventory = inventory
        inventory.start()
        inventory.ready.wait(5.0)  # the running containers known before the first flow
        _log.info("containers from the Docker API at %s", socket_path)
        return inventory

    @staticmethod
    def _probe(processes: ProcessMap) -> ConnectProbe | None:
        """The kernel's connect-time reports, into ``processes`` (None if it cannot load)."""
        try:
            probe = ConnectProbe()
        except (ProbeError, OSError, AttributeError) as exc:  # (AttributeError: an old libbpf)
            _log.warning("eBPF probe not loaded: %s", exc)
            return None
        try:
            probe.start(processes.add)
        except ProbeError as exc:
            probe.close()
            _log.warning("eBPF probe not started: %s", exc)
            return None
        _log.info("processes from the kernel at connect time (eBPF)")
        return probe

    def _courier(self, database: Database) -> Courier | None:
        """Delivery of alerts to the configured webhooks (None: none configured)."""
        targets = targets_from(self._settings)
        if not targets:
            _log.info("no webhook configured: alerts are stored only (egresswatch alerts)")
            return None
        n = self._settings.notify
        courier = Courier(database, targets, max_backoff=n.max_backoff,
                          digest_after=n.digest_after)  # fmt: skip
        courier.start()
        try:
            waiting = database.outbox_backlog()[0]
        except StoreError:
            courier.close()
            raise
        _log.info("alerts to %d webhook(s); %d deliveries waiting from before", len(targets),
                  waiting)  # fmt: skip
        return courier

    def _judge(self, containers: ContainerMap, database: Database) -> PolicyJudge:
        """The policy (a broken file fails the start), with the destinations reached before."""
        policy = self._policy.load(self._settings.policy.path)
        known, since = database.known_destinations()

        def labels(container_id: str) -> dict[str, str]:
            container = containers.by_id(container_id)
            return container.labels if container else {}

        return PolicyJudge(policy, labels, known=known, learning_since=since)

    def _reload_policy(self, judge: PolicyJudge, why: str) -> None:
        """A new policy for the same judge: flows judged already are not judged again."""
        policy = self._policy.reload(self._settings.policy.path, why)
        if policy is not None:
            judge.policy = policy

    @staticmethod
    def _socket_owners() -> SocketOwners | None:
        try:
            owners = SocketOwners()
        except OSError as exc:
            _log.warning("flows are not attributed to processes at all: sock_diag: %s", exc)
            return None
        _log.warning(
            "processes from /proc and sock_diag as flows start, instead: short-lived processes "
            "and processes in containers with a network of their own are missed"
        )
        return owners

    @staticmethod
    def _looked_up(owners: SocketOwners, processes: ProcessMap) -> OnStart:
        def on_start(proto: int, src: str, sport: int, dst: str, dport: int, ts: float) -> None:
            report = owners.lookup(proto, src, sport, dst, dport, ts)
            if report is not None:
                processes.add(report)

        return on_start

    def _conntrack(self) -> Conntrack | None:
        """The kernel's conntrack table, when NAT twins are to be recognised from it."""
        if self._settings.capture.nat_twins != "auto":
            return None
        try:
            return Conntrack()
        except CaptureError as exc:
            _log.warning(
                "%s: NAT'd container flows are matched to their uplink sightings by "
                "destination, ports and time instead",
                exc,
            )
            return None

    def _apply_reload(self) -> None:
        try:
            settings = self._reload()
        except Exception as exc:
            _log.error("SIGHUP: config not reloaded: %s", exc)
            return
        self._settings = settings
        logging.getLogger().setLevel(settings.log_level)
        _log.info("SIGHUP: config reloaded (interfaces, log level; other changes need a restart)")

    def _install_signals(self) -> None:
        def stop(signum: int, _frame: FrameType | None) -> None:
            _log.info("%s: writing out every flow, then stopping", signal.Signals(signum).name)
            self._stop.set()

        def hup(_signum: int, _frame: FrameType | None) -> None:
            self._hup.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGHUP, hup)


def _closed(writer: BackgroundWriter) -> None:
    if not writer.close():
        _log.error("the database did not take everything before exit")
