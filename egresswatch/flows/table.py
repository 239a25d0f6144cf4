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

from egresswatch.config import FlowSettings
from egresswatch.decode.packet import TCP, UDP, PacketFacts
from egresswatch.flows.localnet import LocalNetworks
from egresswatch.flows.record import FlowRecord, protocol_name
from egresswatch.flows.tcpstate import ACK, SYN, TcpState

FlowKey = tuple[bytes, int, bytes, int, int]

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
        """Account one packet (the hot path: keep it lean)."""
        src, dst, proto, sport, dport, flags, ip_bytes, payload_len, _, _, seq = p
        entry = self._index.get((src, sport, dst, dport, proto))
        if entry is None:
            flow = self._create(p, ts, interface)
            is_orig = flow.src == src and flow.sport == sport
        else:
            flow, is_orig = entry
            if (
                ts >= flow.deadline
                or ts - flow.last_seen >= flow.idle
                or (flags & SYN and flow.tcp is not None and flow.tcp.is_reuse(flags, seq))
            ):
                self._end(flow)
                flow = self._create(p, ts, interface)
                is_orig = flow.src == src and flow.sport == sport
        if is_orig:
            flow.opkts += 1
            flow.obytes += ip_bytes
        else:
            flow.rpkts += 1
            flow.rbytes += ip_bytes
        flow.last_seen = ts
        tcp = flow.tcp
        if tcp is not None and (flags & 0x07 or not tcp.settled):
            s = self._settings
            tcp.update(is_orig, flags, payload_len, seq, ts, s.close_grace)
            flow.deadline = tcp.deadline
            flow.idle = s.udp_idle_timeout if tcp.handshaking else s.tcp_idle_timeout

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
        if not flow.uid:
            flow.uid = flow_uid(flow.interface, flow.first_seen, flow.key)
        state, history = _state_and_history(flow)
        return FlowRecord(
            uid=flow.uid,
            first_seen=flow.first_seen,
            last_seen=flow.last_seen,
            interface=flow.interface,
            direction=self._local.direction(flow.src, flow.dst),
            ip_proto=flow.proto,
            protocol=protocol_name(flow.proto),
            src_ip=_ntop(flow.src),
            src_port=flow.sport,
            dst_ip=_ntop(flow.dst),
            dst_port=flow.dport,
            packets_out=flow.opkts,
            bytes_out=flow.obytes,
            packets_in=flow.rpkts,
            bytes_in=flow.rbytes,
            state=state,
            history=history,
            closed=closed,
        )


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


_UID_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


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
    value = int.from_bytes(hashlib.blake2b(material, digest_size=13).digest(), "big")
    chars = []
    for _ in range(17):
        value, digit = divmod(value, 62)
        chars.append(_UID_ALPHABET[digit])
    return "C" + "".join(chars)
