"""DNS tunnelling: data smuggled out in the names a client asks its resolver for.

Per client and base domain (the last two labels: ``vendor.example`` of
``a9f3...c2.t.vendor.example``), within a window: how many unique names, how long their longest
label, how random its characters (Shannon entropy), how many TXT or NULL questions. An ordinary
client asks a few names per domain; a CDN's hosts are many but short and word-like; a tunnel
asks hundreds of long random ones.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from dataclasses import dataclass

from egresswatch.policy.model import DnsTunnelDetection

_DATA_TYPES = frozenset({"TXT", "NULL"})
_PAIRS = 16_384
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
        self._pairs: dict[tuple[str, str], deque[tuple[float, str, str]]] = {}

    def question(
        self, client: str, name: str, qtype: str, at: float, d: DnsTunnelDetection
    ) -> TunnelSign | None:
        """Note one question; the signs when the pair now looks like a tunnel (its history then
        starts again), else None."""
        if name.count(".") < 2:
            return None  # a domain itself, not a name under one
        pair = (client, base_domain(name))
        seen = self._pairs.get(pair)
        if seen is None:
            if len(self._pairs) >= _PAIRS:
                self._pairs.pop(next(iter(self._pairs)))
            seen = self._pairs[pair] = deque()
        seen.append((at, name, qtype))
        while seen and seen[0][0] < at - d.window_minutes * 60:
            seen.popleft()
        names = {n for _, n, _ in seen}
        if len(names) < d.min_unique:
            return None
        labels = [max(n[: -len(pair[1]) - 1].split("."), key=len) for n in names]
        sign = TunnelSign(
            unique=len(names),
            mean_label=sum(map(len, labels)) / len(labels),
            mean_entropy=sum(entropy(label) for label in labels) / len(labels),
            data_share=sum(q in _DATA_TYPES for _, _, q in seen) / len(seen),
        )
        long_labels = sign.mean_label >= d.min_label_length
        # Entropy means little on short labels (13 random hex characters score 3.4 already).
        random_labels = sign.mean_entropy >= d.min_entropy and sign.mean_label >= _RANDOM_MIN
        if not (long_labels or random_labels or sign.data_share >= 0.5):
            return None
        del self._pairs[pair]
        return sign
