"""A decoded batch grouped by flow, so the flow table can count whole groups at once.

Rows are grouped by a hash of their direction-free key (verified: a collision sends the batch
packet by packet), and each group carries what decides whether its packets can only be counted.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from egresswatch.decode.batch import DecodedBatch, address_bytes
from egresswatch.decode.packet import PacketFacts
from egresswatch.flows.key import FlowKey, canonical
from egresswatch.flows.tcpstate import plain_bit

_new = tuple.__new__

# One flow's packets within a batch: (row indices, flow id, key as first seen, whether that key
# is the flow id's orientation, any SYN/FIN/RST, first time, last time, largest gap, kinds of
# plain segment present (bit 0 rev-ack, 1 rev-data, 2 fwd-ack, 3 fwd-data), then packets and bytes
# in the id's forward and reverse directions).
Group = tuple[
    list[int], tuple[object, ...], FlowKey, bool, bool, float, float, float, int, int, int, int, int
]


def needed_bits(orig_sent_fwd: bool, kinds: int) -> int:
    needed = 0
    for bit, (fwd, has_data) in enumerate(
        ((False, False), (False, True), (True, False), (True, True))
    ):
        if kinds >> bit & 1:
            needed |= plain_bit(fwd == orig_sent_fwd, has_data)
    return needed


ALL_PLAIN = 0b1111  # every TcpState.plain_done bit
# NEEDED[orig_sent_fwd][kinds]: the TcpState.plain_done bits a group of those kinds requires.
NEEDED = [[needed_bits(o, k) for k in range(16)] for o in (False, True)]
_K = [
    np.uint64(k)
    for k in (
        0x9E3779B97F4A7C15,
        0xC2B2AE3D27D4EB4F,
        0x165667B19E3779F9,
        0xD6E8FEB86659FD93,
        0xFF51AFD7ED558CCD,
    )
]


Grouping = tuple[list[Group], list[bool]] | None
"""A batch's groups and each row's orientation; None when two flows' hashes collided."""


def group_batch(d: DecodedBatch) -> Grouping:
    """Group a batch's rows by flow (both directions together), with each row's orientation
    (True: its source is the lower end of the flow's key); None on a hash collision."""
    n = len(d)
    if n == 0:
        return [], []
    src, dst = d.src, d.dst
    # fwd: the row's source is the lower end of the flow key; both directions then hash alike.
    fwd = (src[:, 0] < dst[:, 0]) | (
        (src[:, 0] == dst[:, 0])
        & ((src[:, 1] < dst[:, 1]) | ((src[:, 1] == dst[:, 1]) & (d.sport <= d.dport)))
    )
    low = np.where(fwd[:, None], src, dst)
    high = np.where(fwd[:, None], dst, src)
    low_port = np.where(fwd, d.sport, d.dport).astype(np.uint64)
    high_port = np.where(fwd, d.dport, d.sport).astype(np.uint64)
    tail = (
        (low_port << np.uint64(32))
        | (high_port << np.uint64(16))
        | (d.proto.astype(np.uint64) << np.uint64(1))
        | d.v6.astype(np.uint64)
    )
    h = (
        low[:, 0] * _K[0]
        ^ low[:, 1] * _K[1]
        ^ high[:, 0] * _K[2]
        ^ high[:, 1] * _K[3]
        ^ tail * _K[4]
    )
    h ^= h >> np.uint64(31)
    _, first, inverse = np.unique(h, return_index=True, return_inverse=True)
    rep = first[inverse]
    if not (
        np.array_equal(low, low[rep])
        and np.array_equal(high, high[rep])
        and np.array_equal(tail, tail[rep])
    ):
        return None
    order = np.argsort(inverse, kind="stable")
    count = np.bincount(inverse)
    bounds = np.concatenate(([0], np.cumsum(count))).tolist()
    starts = bounds[:-1]
    ts_sorted = d.ts[order]
    gaps = np.zeros(n)
    gaps[1:] = np.diff(ts_sorted)
    gaps[starts] = 0.0
    fwd_w = fwd.astype(np.float64)
    fwd_packets = np.bincount(inverse, weights=fwd_w).astype(np.int64)
    fwd_bytes = np.bincount(inverse, weights=d.ip_bytes * fwd_w).astype(np.int64)
    all_bytes = np.bincount(inverse, weights=d.ip_bytes.astype(np.float64)).astype(np.int64)
    kind_bit = np.left_shift(1, fwd * 2 + (d.payload_len > 0))
    kinds = np.bitwise_or.reduceat(kind_bit[order], starts)
    control = np.bitwise_or.reduceat(d.flags[order] & 0x07, starts) != 0
    order_list = order.tolist()
    sources, destinations = d.src[first].tolist(), d.dst[first].tolist()
    columns = zip(
        starts, bounds[1:], d.v6[first].tolist(), d.sport[first].tolist(),
        d.dport[first].tolist(), d.proto[first].tolist(), fwd[first].tolist(), control.tolist(),
        d.ts[first].tolist(), np.maximum.reduceat(ts_sorted, starts).tolist(),
        np.maximum.reduceat(gaps, starts).tolist(), kinds.tolist(), fwd_packets.tolist(),
        fwd_bytes.tolist(), count.tolist(), all_bytes.tolist(), strict=True,
    )  # fmt: skip
    groups: list[Group] = []
    for g, (lo, hi, v6, sp, dp, proto, is_fwd, ctrl, first_ts, last_ts, gap, kind, fp, fb,
            cnt, ab) in enumerate(columns):  # fmt: skip
        s = address_bytes(sources[g], v6)
        t = address_bytes(destinations[g], v6)
        groups.append((
            order_list[lo:hi], canonical(s, sp, t, dp, proto), (s, sp, t, dp, proto), is_fwd,
            ctrl, first_ts, last_ts, gap, kind, fp, fb, cnt - fp, ab - fb,
        ))  # fmt: skip
    return groups, fwd.tolist()


class Rows:
    """A decoded batch's rows as Python values, for the groups that go packet by packet."""

    def __init__(self, d: DecodedBatch, fwd: list[bool]) -> None:
        self._d = d
        self._fwd = fwd
        self._raw: tuple[list[Any], ...] | None = None

    def columns(self) -> tuple[list[Any], ...]:
        """time, flags, ip_bytes, payload_len, seq and orientation of every row."""
        if self._raw is None:
            d = self._d
            self._raw = (
                d.ts.tolist(),
                d.flags.tolist(),
                d.ip_bytes.tolist(),
                d.payload_len.tolist(),
                d.seq.tolist(),
                self._fwd,
            )
        return self._raw

    def item(self, i: int, g: Group | None = None) -> tuple[int, float, PacketFacts]:
        """Row ``i`` as (batch row, time, PacketFacts), its addresses and ports taken from its
        group's key when there is one (the batch may then be ``for_accounting`` only). Called
        for the few packets that start or end a flow, so it reads single values rather than
        converting whole columns. The facts carry no payload: the flow table reads none."""
        d = self._d
        if g is None:
            v6 = bool(d.v6[i])
            src, dst = address_bytes(d.src[i].tolist(), v6), address_bytes(d.dst[i].tolist(), v6)
            proto, sport, dport = int(d.proto[i]), int(d.sport[i]), int(d.dport[i])
        else:
            src, sport, dst, dport, proto = g[2]
            if self._fwd[i] != g[3]:  # the other direction from the key's first packet
                src, sport, dst, dport = dst, dport, src, sport
        facts = _new(
            PacketFacts,
            (
                src, dst, proto, sport, dport, int(d.flags[i]), int(d.ip_bytes[i]),
                int(d.payload_len[i]), b"", 0, int(d.seq[i]),
            ),
        )  # fmt: skip
        return int(d.row[i]), float(d.ts[i]), facts
