"""The outbox: alerts waiting to be posted, read and updated by the courier; and
acknowledging alerts."""

from __future__ import annotations

import json
import math
from typing import Any

from sqlalchemy import Connection, func, select, update

from egresswatch.store.models import AlertRow, OutboxRow


def due(conn: Connection, now: float, limit: int = 500) -> list[dict[str, Any]]:
    """Deliveries not yet made whose time has come, oldest first, each with its alert."""
    query = (
        select(OutboxRow.id, OutboxRow.webhook, OutboxRow.attempts, AlertRow.__table__)
        .join(AlertRow, AlertRow.uid == OutboxRow.alert_uid)
        .where(OutboxRow.delivered.is_(None), OutboxRow.next_attempt <= now)
        .order_by(OutboxRow.id)
        .limit(limit)
    )
    out = []
    for row in conn.execute(query):
        item = dict(row._mapping)
        outbox_id = row[0]
        item["flow"] = json.loads(item["flow"])
        item.pop("evidence", None)  # a pcap is no webhook's business
        item["outbox_id"] = outbox_id
        out.append(item)
    return out


def delivered(conn: Connection, ids: list[int], now: float) -> None:
    conn.execute(update(OutboxRow).where(OutboxRow.id.in_(ids)).values(delivered=now))


def retry(conn: Connection, ids: list[int], attempts: int, at: float, error: str) -> None:
    conn.execute(
        update(OutboxRow)
        .where(OutboxRow.id.in_(ids))
        .values(attempts=attempts, next_attempt=at, last_error=error[:255])
    )


PARKED = math.inf
"""``next_attempt`` of a delivery whose webhook was removed from the config: never due, unless
the webhook comes back (``rearm``)."""


def backlog(conn: Connection) -> tuple[int, float | None]:
    """Deliveries not made yet (parked ones aside), and when the oldest was queued."""
    query = select(func.count(), func.min(OutboxRow.created)).where(
        OutboxRow.delivered.is_(None), OutboxRow.next_attempt < PARKED
    )
    count, oldest = conn.execute(query).one()
    return int(count or 0), oldest


def rearm(conn: Connection, webhooks: list[int], now: float) -> int:
    """Deliveries parked for these webhooks (configured again) become due now; how many."""
    return conn.execute(
        update(OutboxRow)
        .where(OutboxRow.delivered.is_(None), OutboxRow.next_attempt == PARKED,
               OutboxRow.webhook.in_(webhooks))
        .values(next_attempt=now, attempts=0)
    ).rowcount  # fmt: skip


def acknowledge(conn: Connection, uids: list[str]) -> list[str]:
    found = [r[0] for r in conn.execute(select(AlertRow.uid).where(AlertRow.uid.in_(uids)))]
    conn.execute(update(AlertRow).where(AlertRow.uid.in_(found)).values(acknowledged=True))
    return found
