"""The flow table: packets in, flow records out. Pure: time comes from the packets.

Bidirectional flows keyed by the 5-tuple. The initiator is the SYN sender, else the first packet's
sender, flipped when only the sender's port looks like a server's (flows seen mid-stream). Flows end
by FIN/RST (after a short grace), by idle timeout, by eviction when the table is full (counted), or
at shutdown; long flows are written out as interim updates every ``active_timeout`` seconds.
"""

from __future__ import annotations

import hashlib
import math
import socket
from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from egresswatch.decode.batch import DecodedBatch, address_bytes
from egresswatch.decode.packet import TCP, UDP, PacketFacts
from egresswatch.flows.localnet import LocalNetworks
from egresswatch.flows.record import Direction, FlowRecord, protocol_name
from egresswatch.flows.tcpstate import ACK, SYN, TcpState, plain_bit

if TYPE_CHECKING:
    from egresswatch.config import FlowSettings

FlowKey = tuple[bytes, int, bytes, int, int]
_new = tuple.__new__

# Zeek's likely_server_ports (the ports its default protocol scripts register), plus the services
# of an inference box. A flow seen mid-stream is turned around when only its sender's port is one.
LIKELY_SERVER_PORTS = frozenset(
    {
        21,
        22,
        23,
        25,
        53,
        67,
        69,
        80,
        81,
        88,
        102,
        110,
        123,
        135,
        137,
        139,
        143,
        161,
        162,
        389,
        443,
        445,
        465,
        502,
        514,
        563,
        585,
        587,
        614,
        631,
        636,
        853,
        989,
        990,
        992,
        993,
        995,
        1080,
        1194,
        1434,
        1812,
        1883,
        2049,
        2123,
        2152,
        2375,
        2376,
        2811,
        3128,
        3306,
        3389,
        3478,
        3544,
        4789,
        5060,
        5072,
        5222,
        5223,
        5269,
        5353,
        5355,
        5432,
        5671,
        5672,
        6081,
        6379,
        6443,
        6666,
        6667,
        6668,
        6669,
        6697,
        8000,
        8080,
        8443,
        8787,
        8888,
        9200,
        11211,
        11434,
        20000,
        27017,
    }
)


DNS_PORTS = frozenset({53, 137, 5353, 5355})
"""UDP ports of DNS and its multicast cousins (NetBIOS-NS, mDNS, LLMNR)."""


class Flow:
    """Mutable per-flow state inside the table (never leaves it: records do)."""

    __slots__ = (
        "deadline",
        "dport",
        "dst",
        "first_seen",
        "flipped",
        "idle",
        "interface",
        "key",
        "last_seen",
        "named",
        "obytes",
        "opkts",
        "proto",
        "rbytes",
        "reported_at",
        "rpkts",
        "sport",
        "src",
        "tcp",
        "uid",
    )

    def __init__(
        self, key: FlowKey, ts: float, interface: str, *, flipped: bool, idle: float
    ) -> None:
        self.key = key
        self.src, self.sport, self.dst, self.dport, self.proto = key
        self.first_seen = self.last_seen = self.reported_at = ts
        self.interface = interface
        self.flipped = flipped
        self.idle = idle
        """Seconds without packets after which the flow ends."""
        self.deadline = math.inf
        """Packet time at which the flow ends regardless of traffic (unanswered SYN, close)."""
        self.opkts = self.obytes = self.rpkts = self.rbytes = 0
        self.tcp = TcpState(flipped=flipped) if self.proto == TCP else None
        self.uid = ""
        self.named: tuple[Direction, str, str] = (Direction.TRANSIT, "", "")
        """Direction and printable addresses, worked out with the uid at the first record."""


class FlowTable:
    """Tracks flows and hands out records when they end or need an interim update."""

    def __init__(self, settings: FlowSettings, local: LocalNetworks) -> None:
        self._settings = settings
        self._local = local
        self._flows: dict[FlowKey, Flow] = {}  # by initiator-side key, oldest first
        self._index: dict[FlowKey, tuple[Flow, bool]] = {}  # both orientations -> (flow, is_orig)
        self._ready: list[FlowRecord] = []
        self.counters: Counter[str] = Counter()
        """flows_created, flows_evicted, flows_reused: shown in the replay summary and metrics."""

    def __len__(self) -> int:
        return len(self._flows)

    def add(self, p: PacketFacts, ts: float, interface: str = "") -> None:
        """Account one packet."""
        src, dst, proto, sport, dport, flags, ip_bytes, payload_len, _, _, seq = p
        entry = self._index.get((src, sport, dst, dport, proto))
        if entry is None or _ends_before(entry[0], ts, flags, seq):
            if entry is not None:
                self._end(entry[0])
            flow = self._create(p, ts, interface)
            is_orig = flow.src == src and flow.sport == sport
        else:
            flow, is_orig = entry
        self._account(flow, is_orig, ts, flags, ip_bytes, payload_len, seq)

    def _account(
        self,
        flow: Flow,
        is_orig: bool,
        ts: float,
        flags: int,
        ip_bytes: int,
        payload_len: int,
        seq: int,
    ) -> None:
        if is_orig:
            flow.opkts += 1
            flow.obytes += ip_bytes
        else:
            flow.rpkts += 1
            flow.rbytes += ip_bytes
        flow.last_seen = ts
        tcp = flow.tcp
        if tcp is not None and (
            flags & 0x07 or not tcp.plain_done & ((1 << (payload_len > 0)) << (0 if is_orig else 2))
        ):
            s = self._settings
            tcp.update(is_orig, flags, payload_len, seq, ts, s.close_grace)
            flow.deadline = tcp.deadline
            flow.idle = s.udp_idle_timeout if tcp.handshaking else s.tcp_idle_timeout

    def add_batch(
        self, d: DecodedBatch, extra: list[tuple[int, float, PacketFacts]], interface: str = ""
    ) -> None:
        """Account a decoded batch plus the packets the per-packet decoder handled (``extra``:
        batch row, time, facts), as if every packet had gone through ``add`` in capture order.

        Packets are grouped by flow; a group that cannot change any flow state (an existing flow,
        no SYN/FIN/RST, every kind of plain segment already seen, no timeout crossed) is only
        counted. Any other group, and every group sharing a flow with ``extra``, goes packet by
        packet.
        """
        self.add_grouped(d, group_batch(d), extra, interface)

    def add_grouped(
        self,
        d: DecodedBatch,
        grouping: Grouping,
        extra: list[tuple[int, float, PacketFacts]],
        interface: str = "",
    ) -> None:
        """``add_batch`` with ``group_batch`` already done (in the decoding process)."""
        extra_by_flow: dict[tuple[object, ...], list[tuple[int, float, PacketFacts]]] = {}
        for item in extra:
            extra_by_flow.setdefault(_flow_id(item[2]), []).append(item)
        if grouping is None:  # a hash collision: never seen, but never wrong either
            self._add_rows(_Rows(d, []), range(len(d)), [], interface)
        else:
            groups, fwd = grouping
            rows = _Rows(d, fwd)
            for g in groups:
                merged = extra_by_flow.pop(g[1], [])
                if merged:
                    self._add_rows(rows, g[0], merged, interface)
                elif not self._count_only(g):
                    self._account_group(rows, g, interface)
        for items in extra_by_flow.values():
            for _, ts, facts in items:
                self.add(facts, ts, interface)

    def _count_only(self, g: _Group) -> bool:
        (
            _,
            _,
            key,
            key_is_fwd,
            control,
            first_ts,
            last_ts,
            max_gap,
            kinds,
            fwd_packets,
            fwd_bytes,
            rev_packets,
            rev_bytes,
        ) = g
        entry = self._index.get(key)
        if entry is None or control:
            return False
        flow, is_orig = entry
        if (
            first_ts - flow.last_seen >= flow.idle
            or max_gap >= flow.idle
            or last_ts >= flow.deadline
        ):
            return False
        orig_sent_fwd = is_orig == key_is_fwd
        tcp = flow.tcp
        if tcp is not None and _NEEDED[orig_sent_fwd][kinds] & ~tcp.plain_done:
            return False
        if orig_sent_fwd:
            flow.opkts += fwd_packets
            flow.obytes += fwd_bytes
            flow.rpkts += rev_packets
            flow.rbytes += rev_bytes
        else:
            flow.opkts += rev_packets
            flow.obytes += rev_bytes
            flow.rpkts += fwd_packets
            flow.rbytes += fwd_bytes
        flow.last_seen = last_ts
        return True

    def _account_group(self, rows: _Rows, g: _Group, interface: str) -> None:
        """A group that is not only counted: packet by packet where they can change a flow (up
        to its SYN/FIN/RST and until every kind of segment has been seen), counted in bulk before
        and after that."""
        indices = g[0]
        flags_col = rows.columns()[1]
        control = [p for p, i in enumerate(indices) if flags_col[i] & 0x07]
        first_control = control[0] if control else len(indices)
        start = (
            first_control
            if first_control and self._count_rows(rows, g, indices[:first_control])
            else 0
        )
        start = self._account_rows(rows, g, interface, start, control[-1] if control else 0)
        if start < len(indices) and not self._count_rows(rows, g, indices[start:]):
            self._account_rows(rows, g, interface, start, len(indices))

    def _count_rows(self, rows: _Rows, g: _Group, indices: list[int]) -> bool:
        """Count plain segments (no SYN/FIN/RST) of an existing flow without updating its state,
        if they cannot change it: no timeout crossed, every kind already seen. False (nothing
        done) otherwise."""
        entry = self._index.get(g[2])
        if entry is None:
            return False
        flow, key_is_orig = entry
        key_is_fwd = g[3]
        ts_col, _, bytes_col, plen_col, _, fwd_col = rows.columns()
        last, idle, deadline = flow.last_seen, flow.idle, flow.deadline
        needed = 0
        counts = [0, 0, 0, 0]  # originator packets, bytes; responder packets, bytes
        for i in indices:
            ts = ts_col[i]
            if ts - last >= idle or ts >= deadline:
                return False
            last = ts
            is_orig = key_is_orig == (fwd_col[i] == key_is_fwd)
            side = 0 if is_orig else 2
            counts[side] += 1
            counts[side + 1] += bytes_col[i]
            needed |= (1 << (plen_col[i] > 0)) << side
        if flow.tcp is not None and needed & ~flow.tcp.plain_done:
            return False
        flow.opkts += counts[0]
        flow.obytes += counts[1]
        flow.rpkts += counts[2]
        flow.rbytes += counts[3]
        flow.last_seen = last
        return True

    def _account_rows(
        self, rows: _Rows, g: _Group, interface: str, start: int, settle_after: int
    ) -> int:
        """The group's packets from position ``start``, one by one: ``add`` and ``_account``
        inlined, PacketFacts built only where a flow starts or ends. Stops early, returning the
        position reached, once past ``settle_after`` with a flow whose every kind of plain
        segment has been seen (the rest may then be counted in bulk)."""
        indices, key, key_is_fwd = g[0], g[2], g[3]
        ts_col, flags_col, bytes_col, plen_col, seq_col, fwd_col = rows.columns()
        s = self._settings
        grace, udp_idle, tcp_idle = s.close_grace, s.udp_idle_timeout, s.tcp_idle_timeout
        entry = self._index.get(key)
        for pos in range(start, len(indices)):
            i = indices[pos]
            ts, flags = ts_col[i], flags_col[i]
            if entry is None or _ends_before(entry[0], ts, flags, seq_col[i]):
                self.add(rows.item(i)[2], ts, interface)
                entry = self._index[key]
            else:
                flow = entry[0]
                is_orig = entry[1] == (fwd_col[i] == key_is_fwd)
                if is_orig:
                    flow.opkts += 1
                    flow.obytes += bytes_col[i]
                else:
                    flow.rpkts += 1
                    flow.rbytes += bytes_col[i]
                flow.last_seen = ts
                tcp = flow.tcp
                if tcp is not None:
                    plen = plen_col[i]
                    if flags & 0x07 or not tcp.plain_done & (
                        (1 << (plen > 0)) << (0 if is_orig else 2)
                    ):
                        tcp.update(is_orig, flags, plen, seq_col[i], ts, grace)
                        flow.deadline = tcp.deadline
                        flow.idle = udp_idle if tcp.handshaking else tcp_idle
            if pos >= settle_after:
                tcp = entry[0].tcp
                if tcp is None or tcp.plain_done == _ALL_PLAIN:
                    return pos + 1
        return len(indices)

    def _add_rows(
        self,
        rows: _Rows,
        indices: Iterable[int],
        extra: list[tuple[int, float, PacketFacts]],
        interface: str,
    ) -> None:
        """Packet by packet, in capture order, merging in the per-packet decoder's results."""
        items = [rows.item(i) for i in indices]
        if extra:
            items += extra
            items.sort(key=lambda item: item[0])
        add = self.add
        for _, ts, facts in items:
            add(facts, ts, interface)

    def sweep(self, now: float) -> list[FlowRecord]:
        """Records of flows that ended by ``now``, plus interim updates of long ones."""
        active_timeout = self._settings.active_timeout
        ended: list[Flow] = []
        interim: list[FlowRecord] = []
        for flow in self._flows.values():
            if now >= flow.deadline or now - flow.last_seen >= flow.idle:
                ended.append(flow)
            elif now - flow.reported_at >= active_timeout:
                flow.reported_at = now
                interim.append(self._record(flow, closed=False))
        for flow in ended:
            self._end(flow)
        out, self._ready = self._ready, []
        return out + interim

    def flush(self) -> list[FlowRecord]:
        """End every flow (shutdown, end of a replay) and return all pending records."""
        for flow in list(self._flows.values()):
            self._end(flow)
        out, self._ready = self._ready, []
        return out

    def _create(self, p: PacketFacts, ts: float, interface: str) -> Flow:
        if len(self._flows) >= self._settings.max_flows:
            self._end(next(iter(self._flows.values())))
            self.counters["flows_evicted"] += 1
        src, dst, proto, sport, dport, flags = p[:6]
        flipped = _responder_sent_first(proto, sport, dport, flags)
        key: FlowKey = (
            (dst, dport, src, sport, proto) if flipped else (src, sport, dst, dport, proto)
        )
        s = self._settings
        if proto == UDP and key[3] in DNS_PORTS:
            idle = s.dns_idle_timeout
        else:
            idle = s.udp_idle_timeout if proto in (TCP, UDP) else s.other_idle_timeout
        flow = Flow(key, ts, interface, flipped=flipped, idle=idle)
        self._flows[key] = flow
        self._index[key] = (flow, True)
        self._index[(key[2], key[3], key[0], key[1], proto)] = (flow, False)
        self.counters["flows_created"] += 1
        return flow

    def _end(self, flow: Flow) -> None:
        key = flow.key
        del self._flows[key]
        del self._index[key]
        del self._index[(key[2], key[3], key[0], key[1], key[4])]
        self._ready.append(self._record(flow, closed=True))

    def _record(self, flow: Flow, *, closed: bool) -> FlowRecord:
        if not flow.uid:  # first record of this flow: work out what never changes
            flow.uid = flow_uid(flow.interface, flow.first_seen, flow.key)
            flow.named = (
                self._local.direction(flow.src, flow.dst),
                _ntop(flow.src),
                _ntop(flow.dst),
            )
        direction, src_ip, dst_ip = flow.named
        state, history = _state_and_history(flow)
        return FlowRecord(
            uid=flow.uid,
            first_seen=flow.first_seen,
            last_seen=flow.last_seen,
            interface=flow.interface,
            direction=direction,
            ip_proto=flow.proto,
            protocol=protocol_name(flow.proto),
            src_ip=src_ip,
            src_port=flow.sport,
            dst_ip=dst_ip,
            dst_port=flow.dport,
            packets_out=flow.opkts,
            bytes_out=flow.obytes,
            packets_in=flow.rpkts,
            bytes_in=flow.rbytes,
            state=state,
            history=history,
            closed=closed,
        )


# One flow's packets within a batch: (row indices, flow id, key as first seen, whether that key
# is the flow id's orientation, any SYN/FIN/RST, first time, last time, largest gap, kinds of
# plain segment present (bit 0 rev-ack, 1 rev-data, 2 fwd-ack, 3 fwd-data), then packets and bytes
# in the id's forward and reverse directions).
_Group = tuple[
    list[int], tuple[object, ...], FlowKey, bool, bool, float, float, float, int, int, int, int, int
]


def _needed_bits(orig_sent_fwd: bool, kinds: int) -> int:
    needed = 0
    for bit, (fwd, has_data) in enumerate(
        ((False, False), (False, True), (True, False), (True, True))
    ):
        if kinds >> bit & 1:
            needed |= plain_bit(fwd == orig_sent_fwd, has_data)
    return needed


_ALL_PLAIN = 0b1111  # every TcpState.plain_done bit
# _NEEDED[orig_sent_fwd][kinds]: the TcpState.plain_done bits a group of those kinds requires.
_NEEDED = [[_needed_bits(o, k) for k in range(16)] for o in (False, True)]
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


Grouping = tuple[list[_Group], list[bool]] | None
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
    groups: list[_Group] = []
    for g, (lo, hi, v6, sp, dp, proto, is_fwd, ctrl, first_ts, last_ts, gap, kind, fp, fb,
            cnt, ab) in enumerate(columns):  # fmt: skip
        s = address_bytes(sources[g], v6)
        t = address_bytes(destinations[g], v6)
        groups.append((
            order_list[lo:hi], _canonical(s, sp, t, dp, proto), (s, sp, t, dp, proto), is_fwd,
            ctrl, first_ts, last_ts, gap, kind, fp, fb, cnt - fp, ab - fb,
        ))  # fmt: skip
    return groups, fwd.tolist()


class _Rows:
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

    def item(self, i: int) -> tuple[int, float, PacketFacts]:
        """Row ``i`` as (batch row, time, PacketFacts). Called for the few packets that start a
        flow, so it reads single values rather than converting whole columns."""
        d = self._d
        v6 = bool(d.v6[i])
        facts = _new(
            PacketFacts,
            (
                address_bytes(d.src[i].tolist(), v6), address_bytes(d.dst[i].tolist(), v6),
                int(d.proto[i]),
                int(d.sport[i]), int(d.dport[i]), int(d.flags[i]), int(d.ip_bytes[i]),
                int(d.payload_len[i]), d.buf, int(d.payload_offset[i]), int(d.seq[i]),
            ),
        )  # fmt: skip
        return int(d.row[i]), float(d.ts[i]), facts


def _ends_before(flow: Flow, ts: float, flags: int, seq: int) -> bool:
    """Whether ``flow`` is over by the time of this packet: idle, closed, or reused by a SYN."""
    if ts >= flow.deadline or ts - flow.last_seen >= flow.idle:
        return True
    return bool(flags & SYN) and flow.tcp is not None and flow.tcp.is_reuse(flags, seq)


def _canonical(s: bytes, sp: int, t: bytes, dp: int, proto: int) -> tuple[object, ...]:
    return (s, sp, t, dp, proto) if (s, sp) <= (t, dp) else (t, dp, s, sp, proto)


def _flow_id(p: PacketFacts) -> tuple[object, ...]:
    return _canonical(p.src, p.sport, p.dst, p.dport, p.proto)


def _responder_sent_first(proto: int, sport: int, dport: int, flags: int) -> bool:
    """Whether the first packet of a flow came from its responder (Zeek's WantConnection flip)."""
    if proto == TCP:
        if flags & SYN and not flags & ACK:
            return False  # a pure SYN names its sender the originator
        if sport not in LIKELY_SERVER_PORTS:
            return False
        if dport in LIKELY_SERVER_PORTS:
            return not flags & SYN and sport < dport
        return True
    if proto == UDP:
        return sport in LIKELY_SERVER_PORTS and dport not in LIKELY_SERVER_PORTS
    return False


def _state_and_history(flow: Flow) -> tuple[str, str]:
    if flow.tcp is not None:
        return flow.tcp.conn_state(), flow.tcp.history
    if flow.proto != UDP:
        return "OTH", ""  # Zeek records no history for ICMP and other protocols
    history = (
        ("^" if flow.flipped else "") + ("D" if flow.opkts else "") + ("d" if flow.rpkts else "")
    )
    if flow.opkts:
        return ("SF" if flow.rpkts else "S0"), history
    return ("SHR" if flow.rpkts else "OTH"), history


def _ntop(addr: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET if len(addr) == 4 else socket.AF_INET6, addr)


_UID_ALPHABET = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_UID_TABLE = bytes(_UID_ALPHABET[b % 62] for b in range(256))  # hash bytes -> base62 letters


def flow_uid(interface: str, first_seen: float, key: FlowKey) -> str:
    """A Zeek-like uid ("C" + 17 base62 characters), derived from what identifies the flow.

    Deterministic, so replaying the same capture twice updates the same rows instead of
    duplicating them.
    """
    src, sport, dst, dport, proto = key
    material = b"|".join(
        [
            interface.encode(),
            f"{first_seen:.6f}".encode(),
            src,
            dst,
            f"{sport}/{dport}/{proto}".encode(),
        ]
    )
    return "C" + hashlib.blake2b(material, digest_size=17).digest().translate(_UID_TABLE).decode()
