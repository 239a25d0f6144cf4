"""Writes to the database from a thread of its own, so capture never waits on it.

A slow or unreachable database fills a bounded queue; the writer keeps retrying the batch in hand
(oldest first, nothing reordered), and once the queue is full new batches are dropped and counted:
memory stays bounded however long the outage lasts. Alerts are the exception: they wait in a
queue of their own, unbounded (they are few), and are written before the flows.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, Literal, Protocol

from egresswatch.errors import StoreError, StoreRefusedError
from egresswatch.flows.record import FlowRecord
from egresswatch.names.passive_dns import DnsAnswer
from egresswatch.pipeline import Sink
from egresswatch.policy.alert import Alert, Destinations, Routes
from egresswatch.store.inventory import Sighting

_log = logging.getLogger(__name__)


class Store(Sink, Protocol):
    """The database, as the writer uses it."""

    def write_containers(self, sightings: Sequence[Sighting]) -> None: ...

    def write_status(self, host: str, updated: float, status: dict[str, Any]) -> None: ...

    def prune(self, now: float, keep_flows_days: float, keep_totals_days: float) -> Any: ...


_Item = tuple[Literal["flows"], Sequence[FlowRecord]] | tuple[Literal["dns"], Sequence[DnsAnswer]]
_WAKE: _Item = ("dns", ())  # an empty batch: wakes the writer for alerts waiting


class BackgroundWriter:
    """A Sink that hands batches to ``sink`` in a writer thread."""

    def __init__(
        self,
        sink: Store,
        *,
        max_batches: int = 1024,
        retry_after: float = 2.0,
        routes: Routes | None = None,
    ) -> None:
        self._sink = sink
        self._routes = routes
        """Which webhooks each new alert is queued for (in the alert's own transaction)."""
        self._queue: queue.Queue[_Item | None] = queue.Queue(maxsize=max_batches)
        self._urgent: queue.Queue[Callable[[], None]] = queue.Queue()
        """Alerts and first-seen destinations: never bounded, never dropped (they are few)."""
        self._status: tuple[str, float, dict[str, Any]] | None = None
        """The latest status not written yet: only the newest one matters."""
        self._status_lock = threading.Lock()
        self._retry_after = retry_after
        self.dropped: Counter[str] = Counter()
        """Records (flows, dns) dropped because the queue was full."""
        self.failing = False
        """True while the database refuses writes."""
        self._thread = threading.Thread(target=self._run, name="store", daemon=True)
        self._thread.start()

    def write_flows(self, records: Sequence[FlowRecord]) -> None:
        self._put(("flows", records), len(records))

    def write_dns(self, answers: Sequence[DnsAnswer]) -> None:
        self._put(("dns", answers), len(answers))

    def write_alerts(
        self,
        alerts: Sequence[Alert],
        window: float,
        webhooks: Routes | None = None,
        *,
        destinations: Destinations = (),
    ) -> None:
        """(``webhooks`` is ignored: this writer routes with the ``routes`` it was given.)"""
        self._urgently(
            lambda: self._sink.write_alerts(alerts, window, self._routes, destinations=destinations)
        )

    def write_containers(self, sightings: Sequence[Sighting]) -> None:
        self._urgently(lambda: self._sink.write_containers(sightings))

    def write_status(self, host: str, updated: float, status: dict[str, Any]) -> None:
        """Publish the daemon's status; one not written yet is replaced, never queued."""
        with self._status_lock:
            waiting, self._status = self._status is not None, (host, updated, status)
        if not waiting:
            self._urgently(self._write_status)

    def prune(self, now: float, keep_flows_days: float, keep_totals_days: float) -> None:
        """Apply the retention periods, in the writer's thread (between batches)."""

        def work() -> None:
            pruned = self._sink.prune(now, keep_flows_days, keep_totals_days)
            _log.info("retention: deleted %s", pruned)

        self._urgently(work)

    def _write_status(self) -> None:
        with self._status_lock:
            latest, self._status = self._status, None
        if latest is not None:
            try:
                self._sink.write_status(*latest)
            except StoreError:
                with self._status_lock:  # the next one (or this one again) goes later
                    self._status = self._status or latest
                raise

    def _urgently(self, write: Callable[[], None]) -> None:
        self._urgent.put(write)
        with contextlib.suppress(queue.Full):  # a full queue wakes the writer soon anyway
            self._queue.put_nowait(_WAKE)

    def _put(self, item: _Item, size: int) -> None:
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.dropped[item[0]] += size

    def close(self, timeout: float = 30.0) -> bool:
        """Write what is queued (giving up after ``timeout`` s); True if everything was written."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._queue.put(None, timeout=max(0.0, deadline - time.monotonic()))
                break
            except queue.Full:
                return False
        self._thread.join(max(0.0, deadline - time.monotonic()))
        return not self._thread.is_alive()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            while not self._urgent.empty():  # before the flows: the owner waits for alerts
                self._retrying(self._urgent.get_nowait())
            if item is None:
                return
            if item[1]:
                self._write(item)

    def _write(self, item: _Item) -> None:
        if item[0] == "flows":
            records: Sequence[FlowRecord] = item[1]
            self._retrying(lambda: self._sink.write_flows(records))
        else:
            answers: Sequence[DnsAnswer] = item[1]
            self._retrying(lambda: self._sink.write_dns(answers))

    def _retrying(self, write: Callable[[], None]) -> None:
        while True:
            try:
                write()
            except StoreRefusedError as exc:  # the same write would be refused forever
                _log.error("%s; dropped", exc)
                self.dropped["refused"] += 1
                return
            except StoreError as exc:
                if not self.failing:
                    _log.error("%s; retrying every %.0f s", exc, self._retry_after)
                self.failing = True
                time.sleep(self._retry_after)
                continue
            if self.failing:
                _log.info("database writes work again")
            self.failing = False
            return
