"""IP fragment reassembly, bounded in datagrams, bytes and time.

Zeek and the kernel count a fragmented datagram once, at its reassembled size; so does
egresswatch. Fragments that never complete are dropped after ``timeout`` seconds and counted.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from egresswatch.decode.packet import Fragment, PacketFacts, transport

_MAX_DATAGRAM = 65535 + 40  # IPv6 payload length maximum plus its header


@dataclass(slots=True)
class _Pending:
    first_seen: float
    header_len: int = 0
    total: int = -1
    """Payload length of the whole datagram, known once the last fragment arrives."""
    pieces: dict[int, bytes] = field(default_factory=dict)


class FragmentReassembler:
    """Collects fragments by (src, dst, proto, id) and returns the datagram once complete."""

    def __init__(self, *, max_datagrams: int = 4096, timeout: float = 30.0) -> None:
        self._pending: dict[tuple[bytes, bytes, int, int], _Pending] = {}
        self._max = max_datagrams
        self._timeout = timeout
        self.dropped: Counter[str] = Counter()
        """Fragments discarded, by reason."""

    def add(self, frag: Fragment, now: float) -> PacketFacts | str | None:
        """Add one fragment; the reassembled packet's facts once complete, else None."""
        key = (frag.src, frag.dst, frag.proto, frag.ident)
        pending = self._pending.get(key)
        if pending is None:
            if len(self._pending) >= self._max:
                self._expire_oldest()
            pending = self._pending[key] = _Pending(first_seen=now)
        if frag.offset == 0:
            pending.header_len = frag.header_len
        if not frag.more:
            pending.total = frag.offset + len(frag.payload)
        if frag.offset + len(frag.payload) > _MAX_DATAGRAM:
            del self._pending[key]
            return "fragment_oversized"
        pending.pieces[frag.offset] = frag.payload
        return self._complete(key, pending)

    def expire(self, now: float) -> int:
        """Drop datagrams older than the timeout; returns how many."""
        stale = [k for k, p in self._pending.items() if now - p.first_seen > self._timeout]
        for key in stale:
            del self._pending[key]
        self.dropped["fragment_timeout"] += len(stale)
        return len(stale)

    def _expire_oldest(self) -> None:
        del self._pending[next(iter(self._pending))]
        self.dropped["fragment_table_full"] += 1

    def _complete(
        self, key: tuple[bytes, bytes, int, int], pending: _Pending
    ) -> PacketFacts | str | None:
        if pending.total < 0 or 0 not in pending.pieces:
            return None
        parts = []
        covered = 0
        for offset in sorted(pending.pieces):
            piece = pending.pieces[offset]
            if offset > covered:
                return None  # a hole: wait for the missing fragment
            parts.append(piece[covered - offset :])
            covered = max(covered, offset + len(piece))
        if covered < pending.total:
            return None
        del self._pending[key]
        data = b"".join(parts)[: pending.total]
        src, dst, proto, _ = key
        return transport(src, dst, proto, data, 0, len(data), pending.header_len + len(data))
