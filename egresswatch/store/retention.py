"""Keeping the database bounded: old flows, DNS answers and delivered posts are deleted in small
batches (each its own short transaction, so the flow writer never waits long), and the hourly
totals older than the flows are folded into one row per day, kept much longer."""

from __future__ import annotations

import math
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Connection, Engine, delete, func, select

from egresswatch.store.models import (
    Base,
    DnsAddressRow,
    DnsRow,
    FlowHourChangeRow,
    FlowHourRow,
    FlowRow,
    OutboxRow,
)
from egresswatch.store.outbox import PARKED
from egresswatch.store.rollups import KEY, SUMS, add_totals, mark_changed

DAY = 86400.0
BATCH = 5000


@dataclass(slots=True)
class Pruned:
    """What one pass removed."""

    flows: int = 0
    dns: int = 0
    deliveries: int = 0
    hours_folded: int = 0
    days: int = 0


def prune(engine: Engine, now: float, keep_flows_days: float, keep_totals_days: float) -> Pruned:
    """Delete what is older than the retention periods (0: keep forever)."""
    done = Pruned()
    if keep_flows_days:
        cutoff = now - keep_flows_days * DAY
        done.flows = _in_batches(engine, FlowRow, FlowRow.last_seen < cutoff)
        old_dns = DnsRow.time < cutoff
        with engine.begin() as conn:  # the answers' addresses first, then the answers
            uids = select(DnsRow.uid).where(old_dns)
            conn.execute(delete(DnsAddressRow).where(DnsAddressRow.dns_uid.in_(uids)))
        done.dns = _in_batches(engine, DnsRow, old_dns)
        delivered = OutboxRow.delivered.is_not(None) & (OutboxRow.delivered < cutoff)
        parked = (OutboxRow.next_attempt == PARKED) & (OutboxRow.created < cutoff)
        done.deliveries = _in_batches(engine, OutboxRow, delivered | parked)
        with engine.begin() as conn:
            done.hours_folded = _fold_into_days(conn, math.floor(cutoff / DAY) * DAY)
    if keep_totals_days:
        oldest = now - keep_totals_days * DAY
        done.days = _in_batches(engine, FlowHourRow, FlowHourRow.hour < oldest)
        with engine.begin() as conn:  # answers cached over those hours see them go
            conn.execute(delete(FlowHourChangeRow).where(FlowHourChangeRow.hour < oldest))
    return done


def _in_batches(engine: Engine, model: type[Base], condition: ColumnElement[bool]) -> int:
    """DELETE ... WHERE condition, BATCH rows per transaction; returns how many."""
    table = model.__table__
    total = 0
    while True:
        with engine.begin() as conn:
            ids = select(table.c.id).where(condition).limit(BATCH).scalar_subquery()
            deleted = conn.execute(delete(model).where(table.c.id.in_(ids))).rowcount
        total += deleted
        if deleted < BATCH:
            return total


def _fold_into_days(conn: Connection, before: float) -> int:
    """Hourly rows before ``before`` (a day's start) become one row per day and key."""
    t = FlowHourRow.__table__.c
    day = (func.floor(t.hour / DAY) * DAY).label("day")
    hourly = t.hour < before, t.hour != func.floor(t.hour / DAY) * DAY
    keys = [t[c] for c in KEY if c != "hour"]
    rows = conn.execute(
        select(day, *keys, func.max(t.as_org), *[func.sum(t[c]) for c in SUMS],
               func.min(t.first_seen), func.max(t.last_seen))
        .where(*hourly).group_by(day, *keys)
    ).all()  # fmt: skip
    if not rows:
        return 0
    mark_changed(conn, (h for (h,) in conn.execute(select(t.hour).where(*hourly).distinct())))
    folded = conn.execute(delete(FlowHourRow).where(*hourly)).rowcount
    add_totals(conn, [(float(r[0]), *r[1:]) for r in rows])
    return folded
