"""How a window of hours is cut for the API's cache: closed and open hours, whole days and the
hours around them, with nothing counted twice or left out."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from egresswatch.store.hour_cache import DAY, HOUR, OPEN_HOURS, Hours, parts, split

T0 = 1_795_392_000.0  # a midnight (UTC)
hours = st.integers(min_value=0, max_value=24 * 70).map(lambda n: T0 + n * HOUR)


def covered(h: Hours, lo: float, hi: float) -> set[float]:
    """The hour starts in [lo, hi) that ``h`` keeps."""
    return {x for x in (lo + i * HOUR for i in range(int((hi - lo) / HOUR)))
            if (h.first is None or x >= h.first) and (h.end is None or x < h.end)
            and (h.last is None or x <= h.last)}  # fmt: skip


@given(since=st.none() | hours, until=st.none() | hours, now=hours)
def test_closed_and_open_hours_split_the_window_and_only_recent_hours_are_open(
    since: float | None, until: float | None, now: float
) -> None:
    closed, opened = split(since, until, now)
    lo, hi = T0 - 3 * DAY, T0 + 80 * DAY
    window = covered(Hours(since, None, until), lo, hi)
    assert covered(closed, lo, hi) | covered(opened, lo, hi) == window
    assert not covered(closed, lo, hi) & covered(opened, lo, hi)
    current = math.floor(now / HOUR) * HOUR
    assert all(x <= current - (OPEN_HOURS - 1) * HOUR - HOUR for x in covered(closed, lo, hi))


@given(first=st.none() | hours, end=hours, last=st.none() | hours)
def test_parts_cover_the_hours_once_with_whole_days_in_the_middle(
    first: float | None, end: float, last: float | None
) -> None:
    whole = Hours(first, end, last)
    cut = parts(whole)
    lo, hi = T0 - 3 * DAY, T0 + 80 * DAY
    pieces = [covered(p, lo, hi) for p in cut]
    assert set().union(*pieces) == covered(whole, lo, hi)
    assert sum(len(p) for p in pieces) == len(covered(whole, lo, hi))
    assert len(cut) <= 3
    days = [p for p in cut if p.first is not None and p.end is not None
            and p.first % DAY == 0 and p.end % DAY == 0]  # fmt: skip
    if len(cut) > 1:  # the longest part is whole days, which stay cached while a day lasts
        assert days or cut[0].first is None
