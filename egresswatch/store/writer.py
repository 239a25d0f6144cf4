"""Batched upserts of flow records: one statement per batch, keyed by uid."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Insert, insert, update
from sqlalchemy.dialects import postgresql, sqlite

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


def upsert_flows(conn: Connection, records: Sequence[FlowRecord]) -> None:
    """Insert new uids and update known ones, in one executemany."""
    rows = list({rec.uid: flow_values(rec) for rec in records}.values())  # last write wins
    dialect = conn.dialect.name
    stmt: Insert
    if dialect == "sqlite":
        ins = sqlite.insert(FlowRow)
        stmt = ins.on_conflict_do_update(
            index_elements=["uid"], set_={c: ins.excluded[c] for c in _UPDATED}
        )
    elif dialect == "postgresql":
        pins = postgresql.insert(FlowRow)
        stmt = pins.on_conflict_do_update(
            index_elements=["uid"], set_={c: pins.excluded[c] for c in _UPDATED}
        )
    else:
        _upsert_portable(conn, rows)
        return
    conn.execute(stmt, rows)


def _upsert_portable(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Any other database: update by uid, insert what was not there."""
    for row in rows:
        updated = conn.execute(
            update(FlowRow).where(FlowRow.uid == row["uid"]).values({c: row[c] for c in _UPDATED})
        )
        if updated.rowcount == 0:
            conn.execute(insert(FlowRow).values(row))
