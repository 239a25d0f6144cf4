"""The database handle: engine set-up (SQLite in WAL mode), migrations, writes and reads."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import (
    ArgumentError,
    DataError,
    IntegrityError,
    NoSuchModuleError,
    SQLAlchemyError,
)

from egresswatch.errors import StoreError, StoreRefusedError
from egresswatch.flows.record import FlowRecord
from egresswatch.names.passive_dns import DnsAnswer
from egresswatch.policy.alert import Alert, Destinations, Routes
from egresswatch.store import inventory, migrate, outbox
from egresswatch.store.hour_cache import HourCache
from egresswatch.store.inventory import Sighting
from egresswatch.store.queries import (
    AlertFilter,
    DnsFilter,
    FlowFilter,
    alert_counts,
    alert_evidence,
    known_destinations,
    select_alert,
    select_alerts,
    select_dns,
    select_flow,
    select_flows,
)
from egresswatch.store.retention import Pruned, prune
from egresswatch.store.rollups import GROUPS, TotalsFilter, container_egress, select_totals
from egresswatch.store.writer import (
    insert_dns,
    upsert_flows,
    write_alerts,
    write_destinations,
)

T = TypeVar("T")
F = TypeVar("F")


class Database:
    """One database, named by a SQLAlchemy URL (``sqlite:///path``, ``postgresql://...``)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = _engine(url)
        self._hours = HourCache()

    def upgrade(self) -> str:
        """Apply every pending Alembic migration; returns the revision now in force."""
        return migrate.upgrade(self.engine)

    def revision(self) -> str | None:
        """The migration revision the database is at (None for an empty database)."""
        return migrate.current(self.engine)

    def write_flows(self, records: Sequence[FlowRecord]) -> None:
        """Insert or update (by uid) a batch of flow records in one transaction."""
        if records:
            self._write(upsert_flows, records, "flows")

    def write_dns(self, answers: Sequence[DnsAnswer]) -> None:
        """Store a batch of DNS answers in one transaction (each uid once)."""
        if answers:
            self._write(insert_dns, answers, "DNS answers")

    def write_alerts(
        self,
        alerts: Sequence[Alert],
        window: float,
        webhooks: Routes | None = None,
        *,
        destinations: Destinations = (),
    ) -> None:
        """Store alerts (repeats within ``window`` seconds add to a count), queue each new one
        for ``webhooks(alert)``, and store the first-seen ``destinations``: one transaction."""
        routes = webhooks or (lambda _: [])

        def write(conn: Connection, items: Sequence[Alert]) -> None:
            if destinations:
                write_destinations(conn, destinations)
            write_alerts(conn, items, window, routes)

        if alerts or destinations:
            self._write(write, alerts, "alerts")

    def write_containers(self, sightings: Sequence[Sighting]) -> None:
        """Store the containers Docker described (each with when)."""
        if sightings:
            self._write(inventory.write_containers, sightings, "containers")

    def write_status(self, host: str, updated: float, status: dict[str, Any]) -> None:
        """Publish the capture daemon's status for ``host`` (replacing the last one)."""
        self._transaction(
            lambda conn: inventory.write_status(conn, host, updated, status), "the status"
        )

    def status(self) -> list[dict[str, Any]]:
        """Every host's last published status."""
        return self._transaction(inventory.select_status, "the status")

    def containers(self, since: float | None = None) -> list[dict[str, Any]]:
        """Every container seen (described by Docker, or named by flows), with its egress
        since ``since`` (``egress``: None when it sent nothing out)."""

        def read(conn: Connection) -> list[dict[str, Any]]:
            egress = container_egress(conn, time.time(), since, self._hours)
            found = inventory.select_containers(conn)
            names = {c["name"] for c in found}
            found += [_unknown(name) for name in sorted(egress) if name and name not in names]
            for c in found:
                c["egress"] = egress.get(c["name"])
            return found

        return self._transaction(read, "containers")

    def totals(self, flt: TotalsFilter) -> Iterator[dict[str, Any]]:
        """Hourly totals added up by ``flt.group_by``, most bytes out first."""
        now = time.time()
        return self._read(lambda conn, f: select_totals(conn, f, now, self._hours), flt, "totals")

    def warm(self, now: float) -> None:
        """Sum the closed hours a dashboard asks for first (top destinations over a day and a
        month, the containers), so its first request does not wait seconds for them."""
        for since in (now - 86400, now - 30 * 86400):
            for group_by in GROUPS:
                for _ in self.totals(TotalsFilter(group_by=group_by, since=since)):
                    pass
        self.containers()

    def prune(self, now: float, keep_flows_days: float, keep_totals_days: float) -> Pruned:
        """Delete what the retention periods no longer keep (0 days: forever)."""
        try:
            return prune(self.engine, now, keep_flows_days, keep_totals_days)
        except SQLAlchemyError as exc:
            raise StoreError(f"pruning {self._safe_url}: {exc}") from exc

    def alert_counts(self) -> list[tuple[str, bool, int]]:
        """(severity, acknowledged, number of alerts)."""
        return self._transaction(alert_counts, "alerts")

    def outbox_backlog(self) -> tuple[int, float | None]:
        """Deliveries waiting, and when the oldest was queued."""
        return self._transaction(outbox.backlog, "the outbox")

    def known_destinations(self) -> tuple[set[tuple[str, str]], float | None]:
        """Every (source, destination) stored, and the oldest first sighting."""
        return self._transaction(known_destinations, "destinations")

    def flow(self, uid: str) -> dict[str, Any] | None:
        return self._transaction(lambda conn: select_flow(conn, uid), "flows")

    def alert(self, uid: str) -> dict[str, Any] | None:
        return self._transaction(lambda conn: select_alert(conn, uid), "alerts")

    def alert_evidence(self, uid: str) -> bytes | None:
        """The pcap of the flow that raised alert ``uid`` (None: no such alert, or none kept)."""
        return self._transaction(lambda conn: alert_evidence(conn, uid), "alerts")

    def acknowledge(self, uids: list[str]) -> list[str]:
        """Mark these alerts acknowledged; returns the uids that exist."""
        return self._transaction(lambda conn: outbox.acknowledge(conn, uids), "alerts")

    def outbox_due(self, now: float) -> list[dict[str, Any]]:
        """Deliveries whose time has come, each with its alert's fields."""
        return self._transaction(lambda conn: outbox.due(conn, now), "the outbox")

    def outbox_rearm(self, webhooks: list[int], now: float) -> int:
        """Deliveries parked for these webhooks (removed, now configured again) are due now."""
        return self._transaction(lambda conn: outbox.rearm(conn, webhooks, now), "the outbox")

    def outbox_delivered(self, ids: list[int], now: float) -> None:
        self._transaction(lambda conn: outbox.delivered(conn, ids, now), "the outbox")

    def outbox_retry(self, ids: list[int], attempts: int, at: float, error: str) -> None:
        self._transaction(lambda conn: outbox.retry(conn, ids, attempts, at, error), "the outbox")

    def _transaction(self, work: Callable[[Connection], T], what: str) -> T:
        try:
            with self.engine.begin() as conn:
                return work(conn)
        except SQLAlchemyError as exc:
            raise StoreError(f"{what} at {self._safe_url}: {exc}") from exc

    def alerts(self, flt: AlertFilter) -> Iterator[dict[str, Any]]:
        """Alerts matching ``flt``, newest first."""
        return self._read(select_alerts, flt, "alerts")

    def flows(self, flt: FlowFilter) -> Iterator[dict[str, Any]]:
        """Flows matching ``flt``, newest activity first, as plain dicts of the record fields."""
        return self._read(select_flows, flt, "flows")

    def dns(self, flt: DnsFilter) -> Iterator[dict[str, Any]]:
        """DNS answers matching ``flt``, newest first."""
        return self._read(select_dns, flt, "DNS answers")

    def _write(
        self, write: Callable[[Connection, Sequence[T]], None], items: Sequence[T], what: str
    ) -> None:
        try:
            with self.engine.begin() as conn:
                write(conn, items)
        except (DataError, IntegrityError) as exc:
            raise StoreRefusedError(
                f"{self._safe_url} refused {len(items)} {what}: {exc.orig}"
            ) from exc
        except SQLAlchemyError as exc:
            raise StoreError(
                f"cannot write {len(items)} {what} to {self._safe_url}: {exc}"
            ) from exc

    def _read(
        self, select: Callable[[Connection, F], Iterator[dict[str, Any]]], flt: F, what: str
    ) -> Iterator[dict[str, Any]]:
        try:
            with self.engine.connect() as conn:
                yield from select(conn, flt)
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot read {what} from {self._safe_url}: {exc}") from exc

    def close(self) -> None:
        self.engine.dispose()

    def __str__(self) -> str:
        return self._safe_url  # never the password

    @property
    def _safe_url(self) -> str:
        return make_url(self.url).render_as_string(hide_password=True)


def _unknown(name: str) -> dict[str, Any]:
    """A container known only by the name on its flows (Docker never described it here)."""
    return {"container_id": None, "name": name, "image": None, "first_seen": None,
            "last_seen": None, "network_mode": None, "privileged": None, "host_pid": None,
            "docker_socket": None, "cap_add": None}  # fmt: skip


def _engine(url: str) -> Engine:
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StoreError(f"not a database URL: {url!r} (e.g. sqlite:///egresswatch.db)") from exc
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        path = Path(parsed.database)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the directory for {path}: {exc.strerror}") from exc
    try:
        engine = create_engine(parsed, pool_pre_ping=True)
    except (NoSuchModuleError, ImportError) as exc:
        raise StoreError(
            f"no driver for {parsed.drivername}: install it (PostgreSQL: pip install "
            f"'egresswatch[postgres]')"
        ) from exc
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets the API read while capture writes; NORMAL sync is safe in WAL and much faster.
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()
