"""Batched upserts of flow records: one statement per batch, keyed by uid."""

from __future__ import annotations

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


def flow_values(rec: FlowRecord) -> dict[str, Any]:
    """The flows-table row for a record (keys in _COLUMNS order)."""
    return {
        "uid": rec.uid,
        "first_seen": rec.first_seen,
        "last_seen": rec.last_seen,
        "interface": rec.interface,
        "direction": str(rec.direction),
        "ip_proto": rec.ip_proto,
        "protocol": rec.protocol,
        "src_ip": rec.src_ip,
        "src_port": rec.src_port,
        "dst_ip": rec.dst_ip,
        "dst_port": rec.dst_port,
        "dst_addr": address_key(rec.dst_ip),
        "packets_out": rec.packets_out,
        "bytes_out": rec.bytes_out,
        "packets_in": rec.packets_in,
        "bytes_in": rec.bytes_in,
        "state": rec.state,
        "history": rec.history[:64],
        "closed": rec.closed,
    }


_COLUMNS = (
    "uid",
    "first_seen",
    "last_seen",
    "interface",
    "direction",
    "ip_proto",
    "protocol",
    "src_ip",
    "src_port",
    "dst_ip",
    "dst_port",
    "dst_addr",
    "packets_out",
    "bytes_out",
    "packets_in",
    "bytes_in",
    "state",
    "history",
    "closed",
)
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
        conn.exec_driver_sql(_SQLITE_UPSERT, [tuple(row.values()) for row in rows])
    elif dialect == "postgresql":
        from sqlalchemy.dialects import postgresql  # noqa: PLC0415 - only for PostgreSQL URLs

        pins = postgresql.insert(FlowRow)
        stmt = pins.on_conflict_do_update(
            index_elements=["uid"], set_={c: pins.excluded[c] for c in _UPDATED}
        )
        conn.execute(stmt, rows)
    else:
        _upsert_portable(conn, rows)


def _upsert_portable(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Any other database: update by uid, insert what was not there."""
    for row in rows:
        updated = conn.execute(
            update(FlowRow).where(FlowRow.uid == row["uid"]).values({c: row[c] for c in _UPDATED})
        )
        if updated.rowcount == 0:
            conn.execute(insert(FlowRow).values(row))
