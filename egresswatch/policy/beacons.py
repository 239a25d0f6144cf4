"""Beaconing: one source calling one destination at regular intervals with regular sizes.

Scored as RITA does, with robust statistics so that jitter and the odd retry do not hide a
beacon: for the intervals between connection starts and for the bytes each sends, regularity
is ``1 - MAD / median`` (median absolute deviation). Both at least ``min_regularity`` over at
least ``min_connections`` connections inside the window: a beacon.
"""

from __future__ import annotations

import itertools
import statistics
from collections import OrderedDict, deque

from egresswatch.policy.model import BeaconDetection

_KEPT = 64  # connections remembered per pair: enough to judge, bounded
_PAIRS = 65_536


def regularity(values: list[float]) -> float:
    """1 - MAD/median (0 when the median is 0 or the spread exceeds it)."""
    middle = statistics.median(values)
    if middle <= 0:
        return 0.0
    spread = statistics.median(abs(v - middle) for v in values)
    return max(0.0, 1.0 - spread / middle)


class BeaconWatch:
    """Connection starts and sizes per (source, destination)."""

    def __init__(self) -> None:
        self._pairs: OrderedDict[tuple[str, str], deque[tuple[float, int]]] = OrderedDict()
        """Least recently heard first: a full table forgets the quietest pair."""

    def connection(
        self, pair: tuple[str, str], start: float, bytes_out: int, d: BeaconDetection
    ) -> tuple[float, float, int] | None:
        """Note a connection; (interval regularity, size regularity, connections) when the
        pair now looks like a beacon (its history then starts again), else None."""
        seen = self._pairs.get(pair)
        if seen is None:
            if len(self._pairs) >= _PAIRS:  # forget the pair unheard of longest
                self._pairs.popitem(last=False)
            seen = self._pairs[pair] = deque(maxlen=_KEPT)
        else:
            self._pairs.move_to_end(pair)
        seen.append((start, bytes_out))
        while seen and seen[0][0] < start - d.window_hours * 3600:
            seen.popleft()
        if len(seen) < d.min_connections:
            return None
        starts = sorted(t for t, _ in seen)
        intervals = [b - a for a, b in itertools.pairwise(starts)]
        if statistics.median(intervals) < d.min_interval:
            return None  # a burst of calls, not a beacon
        timing = regularity(intervals)
        sizes = regularity([float(n) for _, n in seen])
        if timing < d.min_regularity or sizes < d.min_regularity:
            return None
        del self._pairs[pair]
        return timing, sizes, len(starts)
