"""The flow table: packets in, flow records out. Pure: time comes from the packets.

Bidirectional flows keyed by the 5-tuple. The initiator is the SYN sender, else the first packet's
sender, flipped when only the sender's port looks like a server's (flows seen mid-stream). Flows end
by FIN/RST (after a short grace), by idle timeout, by eviction when the table is full (counted), or
at shutdown; long flows are written out as interim updates every ``active_timeout`` seconds.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable
from itertools import islice
from typing import TYPE_CHECKING

from egresswatch.decode.batch import DecodedBatch
from egresswatch.decode.packet import TCP, UDP, PacketFacts, address_text
from egresswatch.flows.grouping import ALL_PLAIN, NEEDED, Group, Grouping, Rows, group_batch
from egresswatch.flows.initiator import responder_sent_first
from egresswatch.flows.key import FlowKey, canonical, flow_id, flow_uid
from egresswatch.flows.localnet import LocalNetworks
from egresswatch.flows.record import (
    NOT_ENRICHED,
    ClientNames,
    Direction,
    Enrichment,
    FlowRecord,
    protocol_name,
)
from egresswatch.flows.tcpstate import ACK, SYN, TcpState

if TYPE_CHECKING:
    from egresswatch.config import FlowSettings

Enrich = Callable[[Direction, str, str, float, int, int, int], Enrichment]
"""(direction, initiator address, responder address, first seen, IP protocol, initiator port,
responder port) -> what enrichment adds."""
_NO_NAMES = ClientNames(None, "", 0.0)
_MAX_SAID = 65_536

OnStart = Callable[[int, str, int, str, int, float], None]
"""(IP protocol, initiator address, port, responder address, port, time): a flow started."""

DNS_PORTS = frozenset({53, 137, 5353, 5355})
"""UDP ports of DNS and its multicast cousins (NetBIOS-NS, mDNS, LLMNR)."""


class Flow:
    """Mutable per-flow state inside the table (never leaves it: records do)."""

    __slots__ = (
        "deadline",
        "dport",
        "dst",
        "enrichment",
        "first_seen",
        "flipped",
        "idle",
        "interface",
        "key",
        "last_seen",
        "named",
        "names",
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
        self.names: ClientNames | None = None
        """What the client said about the server it wanted (SNI, QUIC SNI, HTTP Host)."""
        self.enrichment = NOT_ENRICHED


class FlowTable:
    """Tracks flows and hands out records when they end or need an interim update."""

    def __init__(
        self,
        settings: FlowSettings,
        local: LocalNetworks,
        *,
        enrich: Enrich | None = None,
        report_closing: bool = False,
        on_start: OnStart | None = None,
    ) -> None:
        self._settings = settings
        self._report_closing = report_closing
        """Live: a closing TCP flow (FIN/RST seen, or an unanswered SYN) gets an interim record
        at the next sweep, rather than only once its close_grace has run out."""
        self._local = local
        self._enrich = enrich
        self._on_start = on_start
        self._flows: dict[FlowKey, Flow] = {}  # by initiator-side key, oldest first
        self._index: dict[FlowKey, tuple[Flow, bool]] = {}  # both orientations -> (flow, is_orig)
        self._ready: list[FlowRecord] = []
        self._said: dict[tuple[object, ...], ClientNames] = {}  # by direction-free key
        self.counters: Counter[str] = Counter()
        """flows_created, flows_evicted, flows_reused: shown in the replay summary and metrics."""

    def __len__(self) -> int:
        return len(self._flows)

    def add(self, p: PacketFacts, ts: float, interface: str = "") -> None:
        """Account one packet."""
        src, dst, proto, sport, dport, flags, ip_bytes, payload_len, _, _, seq = p
        entry = self._index.get((src, sport, dst, dport, proto))
        if (
            entry is not None
            and entry[0].interface != interface
            and _copy(entry[0], ts, flags, seq)
        ):
            self.counters["packets_seen_on_two_interfaces"] += 1
            return
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
            extra_by_flow.setdefault(flow_id(item[2]), []).append(item)
        if grouping is None:  # a hash collision: never seen, but never wrong either
            self._add_rows(Rows(d, []), range(len(d)), [], interface)
        else:
            groups, fwd = grouping
            rows = Rows(d, fwd)
            index = self._index
            for g in groups:
                merged = extra_by_flow.pop(g[1], [])
                entry = index.get(g[2])
                if entry is not None and entry[0].interface != interface:
                    self._add_elsewhere(rows, g, merged, interface, entry[0])
                elif merged:
                    self._add_rows(rows, g[0], merged, interface, g)
                elif not self._count_only(g):
                    self._account_group(rows, g, interface)
        for items in extra_by_flow.values():
            for _, ts, facts in items:
                self.add(facts, ts, interface)

    def _add_elsewhere(
        self,
        rows: Rows,
        g: Group,
        extra: list[tuple[int, float, PacketFacts]],
        interface: str,
        flow: Flow,
    ) -> None:
        """A group of a flow already seen on another interface: routed traffic crosses a bridge
        and an uplink with the same addresses. The first interface's sighting is the flow; these
        packets are counted as seen twice, unless they start a new flow."""
        if g[4] or extra or g[5] - flow.last_seen >= flow.idle:  # may start a new flow
            self._add_rows(rows, g[0], extra, interface, g)
        else:
            self.counters["packets_seen_on_two_interfaces"] += len(g[0])

    def _count_only(self, g: Group) -> bool:
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
        if tcp is not None and NEEDED[orig_sent_fwd][kinds] & ~tcp.plain_done:
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

    def _account_group(self, rows: Rows, g: Group, interface: str) -> None:
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

    def _count_rows(self, rows: Rows, g: Group, indices: list[int]) -> bool:
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
        self, rows: Rows, g: Group, interface: str, start: int, settle_after: int
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
                self.add(rows.item(i, g)[2], ts, interface)
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
                if tcp is None or tcp.plain_done == ALL_PLAIN:
                    return pos + 1
        return len(indices)

    def _add_rows(
        self,
        rows: Rows,
        indices: Iterable[int],
        extra: list[tuple[int, float, PacketFacts]],
        interface: str,
        group: Group | None = None,
    ) -> None:
        """Packet by packet, in capture order, merging in the per-packet decoder's results."""
        items = [rows.item(i, group) for i in indices]
        if extra:
            items += extra
            items.sort(key=lambda item: item[0])
        add = self.add
        for _, ts, facts in items:
            add(facts, ts, interface)

    def name(self, fid: tuple[object, ...], names: ClientNames) -> None:
        """What a flow's client said (found on the decoding side). Held until the flow's next
        record, which takes it if the flow was running at ``names.ts``: the batch that carried
        it may also have ended that flow and started another on the same 5-tuple."""
        if len(self._said) >= _MAX_SAID:  # flows never recorded: forget the oldest half
            for key in list(islice(self._said, _MAX_SAID // 2)):
                del self._said[key]
        self._said[fid] = names

    def _claim_names(self, flow: Flow) -> ClientNames | None:
        src, sport, dst, dport, proto = flow.key
        said = self._said.get(canonical(src, sport, dst, dport, proto))
        if said is not None and flow.first_seen <= said.ts <= flow.last_seen:
            del self._said[canonical(src, sport, dst, dport, proto)]
            flow.names = said
        return flow.names

    def sweep(self, now: float) -> list[FlowRecord]:
        """Records of flows that ended by ``now``, plus interim updates of long ones."""
        active_timeout = self._settings.active_timeout
        ended: list[Flow] = []
        interim: list[FlowRecord] = []
        early = self._report_closing
        for flow in self._flows.values():
            if now >= flow.deadline or now - flow.last_seen >= flow.idle:
                ended.append(flow)
            elif now - flow.reported_at >= active_timeout or (
                early and flow.deadline != math.inf and flow.reported_at < flow.last_seen
            ):
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
        flipped = responder_sent_first(proto, sport, dport, flags)
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
        if self._on_start is not None and proto in (TCP, UDP):
            self._on_start(proto, address_text(key[0]), key[1], address_text(key[2]), key[3], ts)
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
            direction = self._local.direction(flow.src, flow.dst)
            flow.named = (direction, address_text(flow.src), address_text(flow.dst))
            if self._enrich is not None:
                flow.enrichment = self._enrich(
                    direction, *flow.named[1:], flow.first_seen, flow.proto, flow.sport, flow.dport
                )
        direction, src_ip, dst_ip = flow.named
        state, history = _state_and_history(flow)
        names = flow.names or (self._said and self._claim_names(flow)) or _NO_NAMES
        e = flow.enrichment
        # What the client said wins over what it looked up.
        server_name, source = names.server_name, names.source
        if server_name is None and e.dns_name is not None:
            server_name, source = e.dns_name, "dns"
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
            server_name=server_name,
            name_source=source if server_name else None,
            dns_name=e.dns_name,
            ja4=names.ja4,
            alpn=",".join(names.alpn) or None,
            country=e.country,
            city=e.city,
            asn=e.asn,
            as_org=e.as_org,
            container_id=e.container_id,
            container_name=e.container_name,
            image=e.image,
            pid=e.pid,
            process=e.process,
            exe=e.exe,
            cmdline=e.cmdline,
            user=e.user,
            user_id=e.user_id,
        )


def _ends_before(flow: Flow, ts: float, flags: int, seq: int) -> bool:
    """Whether ``flow`` is over by the time of this packet: idle, closed, or reused by a SYN."""
    if ts >= flow.deadline or ts - flow.last_seen >= flow.idle:
        return True
    return bool(flags & SYN) and flow.tcp is not None and flow.tcp.is_reuse(flags, seq)


def _copy(flow: Flow, ts: float, flags: int, seq: int) -> bool:
    """Whether a packet seen on another interface than ``flow``'s is a copy of one of its
    packets (routed through both), rather than the start of a new flow on the same 5-tuple."""
    if ts - flow.last_seen >= flow.idle:
        return False
    tcp = flow.tcp
    if tcp is None or not flags & SYN:
        return True
    start = tcp.resp_start if flags & ACK else tcp.orig_start
    return start is None or seq == start


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
