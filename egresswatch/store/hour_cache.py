"""Answers over closed hours, kept in memory: a dashboard asks the same question every few
seconds (the top destinations over 30 days), and all but the last hours of its answer stay
the same until a late or replayed flow lands in them, which the writer counts in
``flow_hour_changes``. So each answer is a cached sum of the closed hours plus the open hours
read afresh."""

from __future__ import annotations

import functools
import itertools
import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Connection, func, select

from egresswatch.store.models import FlowHourChangeRow

T = TypeVar("T")
HOUR, DAY = 3600.0, 86400.0
OPEN_HOURS = 2
"""The current hour and the one before stay open: flows still land in them as they end."""


@dataclass(frozen=True, slots=True)
class Hours:
    """A range of ``flow_hours.hour`` values: from ``first`` (None: the oldest), up to but not
    including ``end`` (None: no end), and at most ``last`` (None: no bound)."""

    first: float | None
    end: float | None
    last: float | None = None

    def bounds(self, hour: ColumnElement[float]) -> list[ColumnElement[bool]]:
        """WHERE clauses keeping ``hour`` in this range."""
        clauses = []
        if self.first is not None:
            clauses.append(hour >= self.first)
        if self.end is not None:
            clauses.append(hour < self.end)
        if self.last is not None:
            clauses.append(hour <= self.last)
        return clauses

    @property
    def empty(self) -> bool:
        low = self.first if self.first is not None else -math.inf
        return (self.end is not None and self.end <= low) or (
            self.last is not None and self.last < low
        )


def split(since: float | None, until: float | None, now: float) -> tuple[Hours, Hours]:
    """The hours of [since, until] that are closed at ``now``, and those still open."""
    first = math.floor(since / HOUR) * HOUR if since is not None else None
    boundary = (math.floor(now / HOUR) - (OPEN_HOURS - 1)) * HOUR
    closed = Hours(first, boundary, until)
    opened = Hours(boundary if first is None else max(first, boundary), None, until)
    return closed, opened


def parts(hours: Hours) -> list[Hours]:
    """``hours`` cut at whole days: the whole days change only when a day turns (or a flow
    lands in one), while a moving window (since=30d) changes its first and last hours hourly."""
    if hours.end is None:
        return [hours]
    whole_from = math.ceil(hours.first / DAY) * DAY if hours.first is not None else None
    whole_to = math.floor(hours.end / DAY) * DAY
    if whole_from is not None and whole_to <= whole_from:
        return [hours]
    cuts = [hours.first, whole_from, whole_to, hours.end]
    if whole_from is None or whole_from == hours.first:
        cuts.pop(1)  # no hours before the first whole day
    return [Hours(a, b, hours.last) for a, b in itertools.pairwise(cuts)
            if a is None or b is None or a < b]  # fmt: skip


class HourCache:
    """The latest answers over closed hours, each valid while those hours' change counts hold."""

    def __init__(self, size: int = 256) -> None:
        self._size = size
        self._entries: OrderedDict[Hashable, tuple[tuple[int, int], Any]] = OrderedDict()
        self._lock = threading.Lock()  # the API answers from a pool of threads

    def get(self, conn: Connection, key: Hashable, hours: Hours, compute: Callable[[], T]) -> T:
        """The answer cached under ``key`` for ``hours``, computed anew when they changed."""
        # Read before computing: a write landing in between makes the next call recompute.
        mark = _changes(conn, hours)
        full_key = (key, hours)
        with self._lock:
            entry = self._entries.get(full_key)
            if entry is not None and entry[0] == mark:
                self._entries.move_to_end(full_key)
                return entry[1]  # type: ignore[no-any-return]
        value = compute()
        with self._lock:
            self._entries[full_key] = (mark, value)
            self._entries.move_to_end(full_key)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)
        return value

    def summed(
        self,
        conn: Connection,
        key: Hashable,
        hours: Hours,
        compute: Callable[[Hours], T],
        add: Callable[[T, T], T],
    ) -> T:
        """``compute`` over ``hours``, cached whole and in ``parts``: when the window moves on
        by an hour, only its first and last part are computed again."""

        def whole() -> T:
            found = [self.get(conn, key, part, functools.partial(compute, part))
                     for part in parts(hours)]  # fmt: skip
            return functools.reduce(add, found)

        return self.get(conn, ("whole", key), hours, whole)


def _changes(conn: Connection, hours: Hours) -> tuple[int, int]:
    t = FlowHourChangeRow.__table__.c
    query = select(func.count(), func.coalesce(func.sum(t.changes), 0))
    count, total = conn.execute(query.where(*hours.bounds(t.hour))).one()
    return int(count), int(total)
