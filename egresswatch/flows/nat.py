"""One connection, one flow record, when NAT shows it twice.

A container's connection is captured on its bridge (container address) and again on the uplink
after Docker's MASQUERADE (the host's address); a published port the other way round. Both
sightings become flows in the table; this keeps the bridge's, which names the container, and
drops the uplink's. Which uplink flow is whose twin:

- the kernel's conntrack entry says exactly (``lookup``: both views of the connection), while
  it lasts;
- otherwise the destination, ports and time: same protocol, source port, destination address
  and port on a bridge, started within ``window`` seconds (MASQUERADE keeps the source port
  whenever it is free).

The twins are emitted in the same sweep or the next, in either order, so an uplink record whose
twin has not been seen yet is held back until ``hold`` seconds have passed.
"""

from __future__ import annotations

import ipaddress
import logging
from collections import Counter, deque
from collections.abc import Callable, Sequence

from egresswatch.capture.conntrack import Connection, Tuple
from egresswatch.decode.packet import address_text
from egresswatch.errors import CaptureError
from egresswatch.flows.record import FlowRecord

Lookup = Callable[[Tuple], Connection | None]
TextTuple = tuple[str, int, str, int, int]
"""(initiator address, port, responder address, port, IP protocol), addresses as text."""
PortsKey = tuple[int, int, str, int]
"""(IP protocol, initiator port, responder address, responder port): what MASQUERADE keeps."""
_log = logging.getLogger(__name__)
_TRACKED = (6, 17)  # TCP and UDP: the protocols conntrack is asked about


class NatTwins:
    """Filters flow records, dropping the uplink twins of flows seen on a captured bridge.

    ``bridges`` names the captured bridge interfaces (kept current by the caller); with none,
    records pass untouched. ``lookup`` asks conntrack; None (or once it has failed) leaves the
    matching to destination, ports and time.
    """

    def __init__(
        self,
        lookup: Lookup | None,
        *,
        window: float = 2.0,
        hold: float = 2.0,
        remember: float = 180.0,
    ) -> None:
        self.bridges: frozenset[str] = frozenset()
        self._lookup = lookup
        self._window = window
        self._hold = hold
        self._remember = remember
        self._seen: dict[TextTuple, float] = {}
        """Flows seen on a bridge -> their first_seen."""
        self._by_ports: dict[PortsKey, dict[TextTuple, float]] = {}
        self._expiry: deque[tuple[float, TextTuple]] = deque()
        """(when forgotten, flow), oldest first: bridge flows are remembered ``remember`` s."""
        self._decided: dict[str, bool] = {}
        """uid -> dropped, for flows with more records to come (interim updates)."""
        self._held: list[tuple[float, FlowRecord]] = []
        self.counters: Counter[str] = Counter()

    def settle(
        self, records: Sequence[FlowRecord], now: float, *, final: bool = False
    ) -> list[FlowRecord]:
        """The records to write now: ``records`` and those held before, less uplink twins.
        ``final``: nothing is held back (shutdown)."""
        if not self.bridges:
            released, self._held = [r for _, r in self._held], []
            return [*released, *records]
        self._forget(now)
        for r in records:
            if r.interface in self.bridges:
                self._remember_bridge_flow(r, now)
        out: list[FlowRecord] = []
        held, self._held = self._held, []
        for since, r in [*held, *((now, r) for r in records)]:
            verdict = self._verdict(r)
            if verdict is None and not final and now - since < self._hold:
                self._held.append((since, r))
                continue
            if verdict:
                self.counters["flows_nat_twins_dropped"] += r.closed
            else:
                out.append(r)
            if r.closed:
                self._decided.pop(r.uid, None)
            else:
                self._decided[r.uid] = bool(verdict)
        return out

    def _verdict(self, r: FlowRecord) -> bool | None:
        """True: drop (an uplink twin); False: keep; None: not known yet."""
        known = self._decided.get(r.uid)
        if known is not None:
            return known
        if r.interface in self.bridges or r.ip_proto not in _TRACKED:
            return False  # (ICMP and the like: neighbour discovery looks alike everywhere)
        connection = self._connection(r)
        if connection is not None:
            if not connection.translated:
                return False
            twin = _twin_view(connection, r)
            if twin not in self._seen:
                return None
            self.counters["flows_nat_twins_from_conntrack"] += r.closed
            return True
        return True if self._seen_by_ports(r) else None

    def _connection(self, r: FlowRecord) -> Connection | None:
        if self._lookup is None or r.ip_proto not in _TRACKED:
            return None
        try:
            # The uplink's view (host:port -> server) is neither of the entry's tuples (the
            # original is the container's, the reply comes from the server): its reverse is.
            packet = _tuple(r)
            return self._lookup(packet) or self._lookup(packet.reversed())
        except CaptureError as exc:
            _log.warning("%s; matching NAT twins by destination, ports and time instead", exc)
            self._lookup = None
            return None

    def _seen_by_ports(self, r: FlowRecord) -> bool:
        sightings = self._by_ports.get((r.ip_proto, r.src_port, r.dst_ip, r.dst_port), {})
        return any(
            flow[0] != r.src_ip and abs(first_seen - r.first_seen) <= self._window
            for flow, first_seen in sightings.items()
        )

    def _remember_bridge_flow(self, r: FlowRecord, now: float) -> None:
        flow = (r.src_ip, r.src_port, r.dst_ip, r.dst_port, r.ip_proto)
        if flow not in self._seen:
            self._seen[flow] = r.first_seen
            self._by_ports.setdefault((r.ip_proto, r.src_port, r.dst_ip, r.dst_port), {})[flow] = (
                r.first_seen
            )
            self._expiry.append((now + self._remember, flow))

    def _forget(self, now: float) -> None:
        while self._expiry and self._expiry[0][0] <= now:
            _, flow = self._expiry.popleft()
            del self._seen[flow]
            ports = (flow[4], flow[1], flow[2], flow[3])
            sightings = self._by_ports[ports]
            del sightings[flow]
            if not sightings:
                del self._by_ports[ports]


def _twin_view(connection: Connection, r: FlowRecord) -> TextTuple:
    """The other capture's view of the connection, initiator first, as text addresses."""
    original, reply_view = connection.original, connection.reply.reversed()
    mine = _tuple(r)
    other = reply_view if mine in (original, original.reversed()) else original
    return (address_text(other.src), other.sport, address_text(other.dst), other.dport, other.proto)


def _tuple(r: FlowRecord) -> Tuple:
    packed = ipaddress.ip_address
    return Tuple(
        packed(r.src_ip).packed, r.src_port, packed(r.dst_ip).packed, r.dst_port, r.ip_proto
    )
