"""DNS tunnelling: data smuggled out in the names a client asks its resolver for.

Per client and base domain (the last two labels: ``vendor.example`` of
``a9f3...c2.t.vendor.example``), within a window: how many unique names, how long their longest
label, how random its characters (Shannon entropy), how many TXT or NULL questions. An ordinary
client asks a few names per domain; a CDN's hosts are many but short and word-like; a tunnel
asks hundreds of long random ones.
"""

from __future__ import annotations

import math
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass

from egresswatch.policy.model import DnsTunnelDetection

_DATA_TYPES = frozenset({"TXT", "NULL"})
_PAIRS = 16_384
_KEPT = 4096  # questions remembered per pair
_RANDOM_MIN = 16  # characters: below this, entropy is not judged


def entropy(text: str) -> float:
    """Shannon entropy of the characters, bits per character."""
    if not text:
        return 0.0
    counts = Counter(text)
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


def base_domain(name: str) -> str:
    return ".".join(name.split(".")[-2:])


@dataclass(frozen=True, slots=True)
class TunnelSign:
    unique: int
    mean_label: float
    mean_entropy: float
    data_share: float


class TunnelWatch:
    """Questions per (client, base domain) within the window."""

    def __init__(self) -> None:
        self._pairs: OrderedDict[tuple[str, str], _Pair] = OrderedDict()
        """Least recently heard first: a full table forgets the quietest pair."""

    def question(
        self, client: str, name: str, qtype: str, at: float, d: DnsTunnelDetection
    ) -> TunnelSign | None:
        """Note one question; the signs when the pair now looks like a tunnel (its history then
        starts again), else None."""
        if name.count(".") < 2:
            return None  # a domain itself, not a name under one
        key = (client, base_domain(name))
        pair = self._pairs.get(key)
        if pair is None:
            if len(self._pairs) >= _PAIRS:
                self._pairs.popitem(last=False)
            pair = self._pairs[key] = _Pair()
        else:
            self._pairs.move_to_end(key)
        pair.add(at, name, qtype, at - d.window_minutes * 60)
        unique = len(pair.names)
        # Judged at the threshold and every tenth new name after it: not on every question.
        if unique < d.min_unique or (unique != pair.judged_at and unique % 10):
            return None
        pair.judged_at = unique
        labels = [max(n[: -len(key[1]) - 1].split("."), key=len) for n in pair.names]
        sign = TunnelSign(
            unique=unique,
            mean_label=sum(map(len, labels)) / len(labels),
            mean_entropy=sum(entropy(label) for label in labels) / len(labels),
            data_share=pair.data / len(pair.seen),
        )
        long_labels = sign.mean_label >= d.min_label_length
        # Entropy means little on short labels (13 random hex characters score 3.4 already).
        random_labels = sign.mean_entropy >= d.min_entropy and sign.mean_label >= _RANDOM_MIN
        if not (long_labels or random_labels or sign.data_share >= 0.5):
            return None
        del self._pairs[key]
        return sign


class _Pair:
    """One client's questions under one domain within the window (at most _KEPT)."""

    __slots__ = ("data", "judged_at", "names", "seen")

    def __init__(self) -> None:
        self.seen: deque[tuple[float, str, bool]] = deque()
        self.names: Counter[str] = Counter()
        self.data = 0
        self.judged_at = 0

    def add(self, at: float, name: str, qtype: str, oldest: float) -> None:
        is_data = qtype in _DATA_TYPES
        self.seen.append((at, name, is_data))
        self.names[name] += 1
        self.data += is_data
        while self.seen and (self.seen[0][0] < oldest or len(self.seen) > _KEPT):
            _, old, was_data = self.seen.popleft()
            self.data -= was_data
            self.names[old] -= 1
            if not self.names[old]:
                del self.names[old]
