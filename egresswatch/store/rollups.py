"""Hourly totals of flows (``flow_hours``): the top destinations, countries, networks,
containers and processes over a day or a month without reading millions of flows.

The flow writer adds each batch before it stores it: a new flow counts once, with its bytes;
an interim update of a long flow adds only its increase, in the hour it was reported. The key
columns hold "" (and asn 0) for "unknown", because NULLs never collide in a unique index.
Every write to an hour's totals is counted in ``flow_hour_changes``, which is what lets the API
keep the sums of closed hours in memory (``hour_cache``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from sqlalchemy import Connection, Select, func, insert, literal, select, update

from egresswatch.flows.record import FlowRecord
from egresswatch.store.hour_cache import HOUR, HourCache, Hours, split
from egresswatch.store.models import FlowHourChangeRow, FlowHourRow, FlowRow

GroupBy = Literal["server_name", "country", "asn", "container", "process"]
GROUPS: tuple[GroupBy, ...] = get_args(GroupBy)
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
    mark_changed(conn, {row[0] for row in rows})
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


_SQLITE_MARK = (
    "INSERT INTO flow_hour_changes (hour, changes) VALUES (?, 1) "
    "ON CONFLICT(hour) DO UPDATE SET changes = changes + 1"
)


def mark_changed(conn: Connection, hours: Iterable[float]) -> None:
    """Count a change to these hours' totals: answers cached over them are stale."""
    hours = sorted(set(hours))
    if not hours:
        return
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql(_SQLITE_MARK, [(h,) for h in hours])
        return
    table = FlowHourChangeRow.__table__
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql  # noqa: PLC0415 - only for PostgreSQL URLs

        pins = postgresql.insert(FlowHourChangeRow)
        conn.execute(
            pins.on_conflict_do_update(
                index_elements=["hour"], set_={"changes": table.c.changes + 1}
            ),
            [{"hour": h, "changes": 1} for h in hours],
        )
        return
    for h in hours:
        changed = conn.execute(
            update(FlowHourChangeRow).where(table.c.hour == h)
            .values(changes=table.c.changes + 1)
        )  # fmt: skip
        if changed.rowcount == 0:
            conn.execute(insert(FlowHourChangeRow).values(hour=h, changes=1))


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
_BYTES_OUT, _FIRST, _LAST, _AS_ORG = 2, 5, 6, 7
"""Positions in a group's totals: flows, packets and bytes out, packets and bytes in, first
and last seen, as_org."""

_Groups = dict[tuple[Any, ...], list[Any]]


def select_totals(
    conn: Connection, flt: TotalsFilter, now: float, cache: HourCache
) -> Iterator[dict[str, Any]]:
    """Each group's totals, most bytes out first."""
    closed, opened = split(flt.since, flt.until, now)
    key = ("totals", flt.group_by, flt.direction, flt.container)
    sums: _Groups = (
        cache.summed(conn, key, closed, lambda h: _group_sums(conn, flt, h), _add_groups)
        if not closed.empty
        else {}
    )
    fresh = _group_sums(conn, flt, opened) if not opened.empty else {}
    merged = _add_groups(sums, fresh)
    names = _GROUPS[flt.group_by]
    for group in _ranked(merged)[: flt.limit or None]:
        total = merged[group]
        out: dict[str, Any] = {n: v or None for n, v in zip(names, group, strict=True)}
        if flt.group_by == "asn":
            out["as_org"] = total[_AS_ORG] or None
        out.update(zip(SUMS, total[:_FIRST], strict=True))
        out["first_seen"], out["last_seen"] = total[_FIRST], total[_LAST]
        yield out


def _group_sums(conn: Connection, flt: TotalsFilter, hours: Hours) -> _Groups:
    t = FlowHourRow.__table__.c
    group = [t[c] for c in _GROUPS[flt.group_by]]
    query: Select[Any] = select(
        *group,
        *[func.sum(t[c]) for c in SUMS],
        func.min(t.first_seen),
        func.max(t.last_seen),
        func.max(t.as_org) if flt.group_by == "asn" else literal(""),
    )
    query = _within(query, hours).group_by(*group)
    if flt.direction:
        query = query.where(t.direction == flt.direction)
    if flt.container is not None:
        query = query.where(t.container == flt.container)
    width = len(group)
    return {
        tuple(row[:width]): [*(int(v) for v in row[width : width + 5]), *row[width + 5 :]]
        for row in conn.execute(query)
    }


def _ranked(groups: _Groups) -> list[tuple[Any, ...]]:
    return sorted(groups, key=lambda g: (-groups[g][_BYTES_OUT], g))


def _add_groups(a: _Groups, b: _Groups) -> _Groups:
    """The totals of both (new lists: cached totals are never changed)."""
    added = dict(a)
    for group, y in b.items():
        x = a.get(group)
        added[group] = y if x is None else [
            *(p + q for p, q in zip(x[:_FIRST], y[:_FIRST], strict=True)),
            min(x[_FIRST], y[_FIRST]), max(x[_LAST], y[_LAST]), max(x[_AS_ORG], y[_AS_ORG]),
        ]  # fmt: skip
    return added


@dataclass(slots=True)
class _Egress:
    flows: int = 0
    bytes_out: int = 0
    bytes_in: int = 0
    last_seen: float = -math.inf
    destinations: set[tuple[str, str]] = field(default_factory=set)
    countries: set[str] = field(default_factory=set)


def container_egress(
    conn: Connection, now: float, since: float | None, cache: HourCache
) -> dict[str, dict[str, Any]]:
    """Container name -> its egress: flows, bytes each way, distinct destinations, the
    countries reached and the last egress time ("" is the host's own)."""
    closed, opened = split(since, None, now)
    old = (
        cache.summed(conn, ("egress",), closed, lambda h: _egress(conn, h), _add_egress)
        if not closed.empty
        else {}
    )
    new = _egress(conn, opened) if not opened.empty else {}
    found = {}
    for name in old.keys() | new.keys():
        a, b = old.get(name, _Egress()), new.get(name, _Egress())
        found[name] = {
            "flows": a.flows + b.flows,
            "bytes_out": a.bytes_out + b.bytes_out,
            "bytes_in": a.bytes_in + b.bytes_in,
            "last_seen": max(a.last_seen, b.last_seen),
            "destinations": len(a.destinations) + len(b.destinations - a.destinations),
            "countries": sorted(a.countries | b.countries),
        }
    return found


def _add_egress(a: dict[str, _Egress], b: dict[str, _Egress]) -> dict[str, _Egress]:
    """Both egresses added (new objects: cached ones are never changed)."""
    added = dict(a)
    for name, y in b.items():
        x = a.get(name)
        added[name] = y if x is None else _Egress(
            x.flows + y.flows, x.bytes_out + y.bytes_out, x.bytes_in + y.bytes_in,
            max(x.last_seen, y.last_seen), x.destinations | y.destinations,
            x.countries | y.countries,
        )  # fmt: skip
    return added


def _egress(conn: Connection, hours: Hours) -> dict[str, _Egress]:
    t = FlowHourRow.__table__.c
    query: Select[Any] = select(
        t.container, func.sum(t.flows), func.sum(t.bytes_out), func.sum(t.bytes_in),
        func.max(t.last_seen),
    ).where(t.direction == "egress")  # fmt: skip
    found: dict[str, _Egress] = {}
    for name, flows, bytes_out, bytes_in, last in conn.execute(
        _within(query, hours).group_by(t.container)
    ):
        found[name] = _Egress(int(flows), int(bytes_out), int(bytes_in), last)
    places = select(t.container, t.server_name, t.dst_ip, t.country).where(t.direction == "egress")
    for name, server_name, dst_ip, country in conn.execute(_within(places, hours).distinct()):
        egress = found[name]
        egress.destinations.add((server_name, dst_ip))
        if country:
            egress.countries.add(country)
    return found


def _within(query: Select[Any], hours: Hours) -> Select[Any]:
    return query.where(*hours.bounds(FlowHourRow.__table__.c.hour))
