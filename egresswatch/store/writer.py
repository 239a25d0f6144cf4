"""Batched upserts of flow records: one statement per batch, keyed by uid."""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, insert, update

from egresswatch.flows.record import FlowRecord
from egresswatch.store.models import FlowRow
from egresswatch.store.queries import address_key

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
)


_FIELDS = tuple(field.name for field in dataclasses.fields(FlowRecord))
_COLUMNS = (*_FIELDS, "dst_addr")
"""The flows-table columns a record fills: its own fields, then the derived address key."""
_values_of = operator.attrgetter(*_FIELDS)
_HISTORY = _FIELDS.index("history")


def flow_values(rec: FlowRecord) -> tuple[Any, ...]:
    """The flows-table row for a record, in _COLUMNS order."""
    values = list(_values_of(rec))
    values[_HISTORY] = rec.history[:64]  # the column's width; a longer history is cut
    return (*values, address_key(rec.dst_ip))


_SQLITE_UPSERT = (
    f"INSERT INTO flows ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))}) "
    f"ON CONFLICT(uid) DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in _UPDATED)}"
)


def upsert_flows(conn: Connection, records: Sequence[FlowRecord]) -> None:
    """Insert new uids and update known ones, in one executemany."""
    rows = list({rec.uid: flow_values(rec) for rec in records}.values())  # last write wins
    dialect = conn.dialect.name
    if dialect == "sqlite":
        # The DB-API directly: SQLAlchemy's per-row processing would cost more than the insert.
        conn.exec_driver_sql(_SQLITE_UPSERT, rows)
        return
    named = [dict(zip(_COLUMNS, row, strict=True)) for row in rows]
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
