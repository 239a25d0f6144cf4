"""Batched writes: flow records upserted by uid, DNS answers inserted once each."""

from __future__ import annotations

import dataclasses
import json
import operator
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, insert, select, update

from egresswatch.flows.record import FlowRecord
from egresswatch.names.passive_dns import DnsAnswer
from egresswatch.policy.alert import Alert, Routes
from egresswatch.store.models import (
    AlertRow,
    Base,
    DestinationRow,
    DnsAddressRow,
    DnsRow,
    FlowRow,
    OutboxRow,
)
from egresswatch.store.queries import address_key
from egresswatch.store.rollups import roll_up

# Columns an interim update may change; first_seen and the 5-tuple never change for a uid.
_UPDATED = (
    "last_seen",
    "packets_out",
    "bytes_out",
    "packets_in",
    "bytes_in",
    "state",
    "history",
    "closed",
    # Names and places are worked out once, but a name may arrive after an interim update.
    "server_name",
    "name_source",
    "dns_name",
    "ja4",
    "alpn",
    "country",
    "city",
    "asn",
    "as_org",
)


_FIELDS = tuple(field.name for field in dataclasses.fields(FlowRecord))
FLOW_COLUMNS = (*_FIELDS, "dst_addr")
"""The flows-table columns a record fills: its own fields, then the derived address key."""
_values_of = operator.attrgetter(*_FIELDS)
_HISTORY = _FIELDS.index("history")


def flow_values(rec: FlowRecord) -> tuple[Any, ...]:
    """The flows-table row for a record, in FLOW_COLUMNS order."""
    values = list(_values_of(rec))
    values[_HISTORY] = rec.history[:64]  # the column's width; a longer history is cut
    return (*values, address_key(rec.dst_ip))


_SQLITE_UPSERT = (
    f"INSERT INTO flows ({', '.join(FLOW_COLUMNS)}) VALUES ({', '.join('?' * len(FLOW_COLUMNS))}) "
    f"ON CONFLICT(uid) DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in _UPDATED)}"
)


def upsert_flows(conn: Connection, records: Sequence[FlowRecord]) -> None:
    """Insert new uids and update known ones, in one executemany; the hourly totals too."""
    latest = list({rec.uid: rec for rec in records}.values())  # last write wins
    roll_up(conn, latest)  # first: it reads what the flows' rows held before
    rows = [flow_values(rec) for rec in latest]
    dialect = conn.dialect.name
    if dialect == "sqlite":
        # The DB-API directly: SQLAlchemy's per-row processing would cost more than the insert.
        conn.exec_driver_sql(_SQLITE_UPSERT, rows)
        return
    named = [dict(zip(FLOW_COLUMNS, row, strict=True)) for row in rows]
    if dialect == "postgresql":
        from sqlalchemy.dialects import postgresql  # noqa: PLC0415 - only for PostgreSQL URLs

        pins = postgresql.insert(FlowRow)
        stmt = pins.on_conflict_do_update(
            index_elements=["uid"], set_={c: pins.excluded[c] for c in _UPDATED}
        )
        conn.execute(stmt, named)
    else:
        _upsert_portable(conn, named)


def _upsert_portable(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Any other database: update by uid, insert what was not there."""
    for row in rows:
        updated = conn.execute(
            update(FlowRow).where(FlowRow.uid == row["uid"]).values({c: row[c] for c in _UPDATED})
        )
        if updated.rowcount == 0:
            conn.execute(insert(FlowRow).values(row))


_DNS_COLUMNS = ("uid", "time", "client", "resolver", "query", "qtype", "rcode", "answers", "ttl")


def insert_dns(conn: Connection, answers: Sequence[DnsAnswer]) -> None:
    """Insert DNS answers and their addresses; answers already stored (same uid) are skipped."""
    rows = {
        a.uid: (a.uid, a.time, a.client, a.resolver, a.query[:255], a.qtype, a.rcode,
                json.dumps(a.answers), a.ttl)
        for a in answers
    }  # fmt: skip
    # The addresses the query resolved to, as the decoder printed them (the form --ip uses).
    addresses = {(a.uid, address) for a in answers for address, _ in a.resolved}
    _insert_new(conn, DnsRow, _DNS_COLUMNS, list(rows.values()), ("uid",))
    _insert_new(
        conn, DnsAddressRow, ("dns_uid", "address"), sorted(addresses),
        ("dns_uid", "address"),
    )  # fmt: skip


def _insert_new(
    conn: Connection,
    model: type[Base],
    columns: tuple[str, ...],
    rows: list[tuple[Any, ...]],
    unique: tuple[str, ...],
) -> None:
    """INSERT the rows whose ``unique`` columns are not in the table yet."""
    if not rows:
        return
    dialect = conn.dialect.name
    if dialect == "sqlite":
        conn.exec_driver_sql(
            f"INSERT INTO {model.__tablename__} ({', '.join(columns)}) "
            f"VALUES ({', '.join('?' * len(columns))}) ON CONFLICT DO NOTHING",
            rows,
        )
        return
    named = [dict(zip(columns, row, strict=True)) for row in rows]
    if dialect == "postgresql":
        from sqlalchemy.dialects import postgresql  # noqa: PLC0415 - only for PostgreSQL URLs

        conn.execute(postgresql.insert(model).on_conflict_do_nothing(index_elements=unique), named)
        return
    table = model.__table__
    for row in named:
        key = [table.c[c] == row[c] for c in unique]
        if conn.execute(select(table.c[unique[0]]).where(*key)).first() is None:
            conn.execute(insert(model).values(row))


REMIND_AFTER = 86400.0
"""An alert still repeating this long after it was raised is raised anew."""


def write_alerts(
    conn: Connection,
    alerts: Sequence[Alert],
    window: float,
    webhooks: Routes = lambda _: [],
) -> None:
    """Insert each alert, or add it to the count of the same alert (dedup key) seen within
    ``window`` seconds before it, unacknowledged and raised less than a day before. A new alert
    is queued in the outbox for each of ``webhooks(alert)`` in the same transaction: stored and
    queued, or neither."""
    for a in alerts:
        # An acknowledged alert never hides what comes after it, and one that goes on is raised
        # (and posted) again each day rather than growing its count out of sight.
        existing = conn.execute(
            select(AlertRow.id, AlertRow.last_time)
            .where(
                AlertRow.dedup_key == a.dedup_key,
                AlertRow.last_time >= a.time - window,
                AlertRow.time > a.time - REMIND_AFTER,
                AlertRow.acknowledged.is_(False),
            )
            .order_by(AlertRow.last_time.desc())
            .limit(1)
        ).first()
        if existing is not None:
            conn.execute(
                update(AlertRow)
                .where(AlertRow.id == existing.id)
                .values(count=AlertRow.count + 1, last_time=max(existing.last_time, a.time))
            )
            continue
        row = {
            "uid": a.uid,
            "time": a.time,
            "last_time": a.time,
            "rule": a.rule,
            "severity": a.severity,
            "summary": a.summary,
            "dedup_key": a.dedup_key,
            "count": 1,
            "flow_uid": a.flow.uid if a.flow else "",
            "flow": json.dumps(dataclasses.asdict(a.flow) if a.flow else {}),
            "acknowledged": False,
            "evidence": a.evidence,
            "container": a.container_name,
            "source": (a.source or None) if a.flow is None else None,
            "destination": (a.destination or None) if a.flow is None else None,
        }
        conn.execute(insert(AlertRow).values(**row))
        for webhook in webhooks(a):
            conn.execute(
                insert(OutboxRow).values(
                    alert_uid=a.uid, webhook=webhook, created=a.time, attempts=0, next_attempt=0.0
                )
            )


def write_destinations(conn: Connection, rows: Sequence[tuple[str, str, float]]) -> None:
    """(source, destination, first seen) pairs not stored yet (a pair already there is kept as
    it was: its first sighting)."""
    wanted = {(source, dest): at for source, dest, at in rows}
    sources = {source for source, _ in wanted}
    stored = conn.execute(
        select(DestinationRow.source, DestinationRow.destination).where(
            DestinationRow.source.in_(sources)
        )
    )
    for source, dest in stored:
        wanted.pop((source, dest), None)
    if wanted:
        conn.execute(
            insert(DestinationRow),
            [{"source": s, "destination": d, "first_seen": at} for (s, d), at in wanted.items()],
        )
