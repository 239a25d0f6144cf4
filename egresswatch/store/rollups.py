"""Hourly totals of flows (``flow_hours``): the top destinations, countries, networks,
containers and processes over a day or a month without reading millions of flows.

The flow writer adds each batch before it stores it: a new flow counts once, with its bytes;
an interim update of a long flow adds only its increase, in the hour it was reported. The key
columns hold "" (and asn 0) for "unknown", because NULLs never collide in a unique index.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Connection, Select, func, insert, select, update

from egresswatch.flows.record import FlowRecord
from egresswatch.store.models import FlowHourRow, FlowRow

HOUR = 3600.0
GroupBy = Literal["server_name", "country", "asn", "container", "process"]
KEY = ("hour", "direction", "server_name", "dst_ip", "country", "asn", "container", "process")
SUMS = ("flows", "packets_out", "bytes_out", "packets_in", "bytes_in")
_COLUMNS = (*KEY, "as_org", *SUMS, "first_seen", "last_seen")
_CHUNK = 500  # uids per IN (...): well under every database's bound on parameters

_Key = tuple[float, str, str, str, str, int, str, str]


def roll_up(conn: Connection, records: Sequence[FlowRecord]) -> None:
    """Add ``records`` (one per uid) to the hourly totals: call before storing them."""
    stored = _stored_counts(conn, [r.uid for r in records])
    totals: dict[_Key, list[Any]] = {}
    for r in records:
        before = stored.get(r.uid)
        now = (r.packets_out, r.bytes_out, r.packets_in, r.bytes_in)
        added: tuple[int, ...]
        if before is None:
            added = (1, *now)
        else:
            added = (0, *(n - b for n, b in zip(now, before, strict=True)))
            if not any(added):
                continue
        total = totals.get(key := _key(r))
        if total is None:
            totals[key] = [r.as_org or "", *added, r.first_seen, r.last_seen]
            continue
        for i, value in enumerate(added, start=1):
            total[i] += value
        total[6] = min(total[6], r.first_seen)
        total[7] = max(total[7], r.last_seen)
    if totals:
        add_totals(conn, [(*key, *total) for key, total in totals.items()])


def _key(r: FlowRecord) -> _Key:
    return (
        math.floor(r.last_seen / HOUR) * HOUR,
        str(r.direction),
        r.server_name or "",
        "" if r.server_name else r.dst_ip,
        r.country or "",
        r.asn or 0,
        r.container_name or r.container_id or "",
        r.process or "",
    )


def _stored_counts(conn: Connection, uids: list[str]) -> dict[str, tuple[int, int, int, int]]:
    counts = {}
    columns = (FlowRow.uid, FlowRow.packets_out, FlowRow.bytes_out, FlowRow.packets_in,
               FlowRow.bytes_in)  # fmt: skip
    for start in range(0, len(uids), _CHUNK):
        chunk = uids[start : start + _CHUNK]
        for uid, *values in conn.execute(select(*columns).where(FlowRow.uid.in_(chunk))):
            counts[uid] = (values[0], values[1], values[2], values[3])
    return counts


_SQLITE_ADD = (
    f"INSERT INTO flow_hours ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))}) "
    f"ON CONFLICT({', '.join(KEY)}) DO UPDATE SET as_org = excluded.as_org, "
    + ", ".join(f"{c} = {c} + excluded.{c}" for c in SUMS)
    + ", first_seen = MIN(first_seen, excluded.first_seen)"
    ", last_seen = MAX(last_seen, excluded.last_seen)"
)


def add_totals(conn: Connection, rows: list[tuple[Any, ...]]) -> None:
    """Add rows (key columns, as_org, sums, first and last seen) to the totals of their key."""
    dialect = conn.dialect.name
    if dialect == "sqlite":
        conn.exec_driver_sql(_SQLITE_ADD, rows)
        return
    named = [dict(zip(_COLUMNS, row, strict=True)) for row in rows]
    table = FlowHourRow.__table__
    if dialect == "postgresql":
        from sqlalchemy.dialects import postgresql  # noqa: PLC0415 - only for PostgreSQL URLs

        pins = postgresql.insert(FlowHourRow)
        changes: dict[str, Any] = {c: table.c[c] + pins.excluded[c] for c in SUMS}
        changes["as_org"] = pins.excluded.as_org
        changes["first_seen"] = func.least(table.c.first_seen, pins.excluded.first_seen)
        changes["last_seen"] = func.greatest(table.c.last_seen, pins.excluded.last_seen)
        conn.execute(pins.on_conflict_do_update(index_elements=list(KEY), set_=changes), named)
        return
    for row in named:  # any other database: update the hour's row, or insert it
        where = [table.c[c] == row[c] for c in KEY]
        current = conn.execute(select(table.c.first_seen, table.c.last_seen).where(*where)).first()
        if current is None:
            conn.execute(insert(FlowHourRow).values(row))
            continue
        values: dict[str, Any] = {c: table.c[c] + row[c] for c in SUMS}
        values["first_seen"] = min(current.first_seen, row["first_seen"])
        values["last_seen"] = max(current.last_seen, row["last_seen"])
        conn.execute(update(FlowHourRow).where(*where).values(values))


@dataclass(frozen=True, slots=True, kw_only=True)
class TotalsFilter:
    """Which hours to add up, and how to group them."""

    group_by: GroupBy = "server_name"
    since: float | None = None
    """From the hour holding this time (totals are hourly), epoch seconds."""
    until: float | None = None
    direction: str | None = None
    container: str | None = None
    """Only this container's flows (its name; "" for the host's own)."""
    limit: int = 50


_GROUPS: dict[str, tuple[str, ...]] = {
    "server_name": ("server_name", "dst_ip"),
    "country": ("country",),
    "asn": ("asn",),
    "container": ("container",),
    "process": ("process",),
}


def select_totals(conn: Connection, flt: TotalsFilter) -> Iterator[dict[str, Any]]:
    """Each group's totals, most bytes out first."""
    t = FlowHourRow.__table__.c
    group = [t[c] for c in _GROUPS[flt.group_by]]
    extra = [func.max(t.as_org).label("as_org")] if flt.group_by == "asn" else []
    bytes_out = func.sum(t.bytes_out)
    query: Select[Any] = select(
        *group,
        *extra,
        func.sum(t.flows).label("flows"),
        func.sum(t.packets_out).label("packets_out"),
        bytes_out.label("bytes_out"),
        func.sum(t.packets_in).label("packets_in"),
        func.sum(t.bytes_in).label("bytes_in"),
        func.min(t.first_seen).label("first_seen"),
        func.max(t.last_seen).label("last_seen"),
    )
    query = _within(query, flt.since, flt.until).group_by(*group)
    if flt.direction:
        query = query.where(t.direction == flt.direction)
    if flt.container is not None:
        query = query.where(t.container == flt.container)
    query = query.order_by(bytes_out.desc(), *group)
    if flt.limit:
        query = query.limit(flt.limit)
    for row in conn.execute(query):
        out = dict(row._mapping)
        for name in (*_GROUPS[flt.group_by], *(["as_org"] if extra else [])):
            out[name] = out[name] or None  # "" and 0 were "unknown"
        for name in SUMS:
            out[name] = int(out[name])
        yield out


def container_egress(conn: Connection, since: float | None = None) -> dict[str, dict[str, Any]]:
    """Container name -> its egress: flows, bytes each way, distinct destinations, the
    countries reached and the last egress time ("" is the host's own)."""
    t = FlowHourRow.__table__.c
    query: Select[Any] = select(
        t.container,
        func.sum(t.flows),
        func.sum(t.bytes_out),
        func.sum(t.bytes_in),
        func.max(t.last_seen),
    ).where(t.direction == "egress")
    query = _within(query, since, None).group_by(t.container)
    found: dict[str, dict[str, Any]] = {}
    for name, flows, bytes_out, bytes_in, last in conn.execute(query):
        found[name] = {"flows": int(flows), "bytes_out": int(bytes_out),
                       "bytes_in": int(bytes_in), "last_seen": last,
                       "destinations": 0, "countries": []}  # fmt: skip
    places = _within(
        select(t.container, t.server_name, t.dst_ip, t.country).where(t.direction == "egress"),
        since,
        None,
    ).distinct()
    destinations: dict[str, set[tuple[str, str]]] = {}
    countries: dict[str, set[str]] = {}
    for name, server_name, dst_ip, country in conn.execute(places):
        destinations.setdefault(name, set()).add((server_name, dst_ip))
        if country:
            countries.setdefault(name, set()).add(country)
    for name, egress in found.items():
        egress["destinations"] = len(destinations.get(name, ()))
        egress["countries"] = sorted(countries.get(name, ()))
    return found


def _within(query: Select[Any], since: float | None, until: float | None) -> Select[Any]:
    t = FlowHourRow.__table__.c
    if since is not None:
        query = query.where(t.hour >= math.floor(since / HOUR) * HOUR)
    if until is not None:
        query = query.where(t.hour <= until)
    return query
