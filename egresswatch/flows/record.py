"""The flow record: one documented row per flow, the contract dashboards and scripts read."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Direction(StrEnum):
    """Who initiated the flow, relative to this box's local networks."""

    EGRESS = "egress"
    """The initiator is local and the responder is not: traffic leaving the box."""
    INGRESS = "ingress"
    """The responder is local and the initiator is not."""
    INTERNAL = "internal"
    """Both ends are local (container to container, host to container)."""
    TRANSIT = "transit"
    """Neither end is local: forwarded traffic, or a capture taken elsewhere."""


PROTOCOL_NAMES = {6: "tcp", 17: "udp", 1: "icmp", 58: "icmp6"}


def protocol_name(proto: int) -> str:
    """``tcp``, ``udp``, ``icmp``, ``icmp6``, or the IP protocol number as text."""
    return PROTOCOL_NAMES.get(proto, str(proto))


@dataclass(frozen=True, slots=True, kw_only=True)
class FlowRecord:
    """One flow, as written to the database and shown by ``egresswatch flows``.

    A long flow is written several times under the same ``uid`` (interim updates); the last write,
    with ``closed`` set, is final.
    """

    uid: str
    """Stable flow id: the key that joins logs, alerts and API answers."""
    first_seen: float
    """Time of the first packet, seconds since the epoch (UTC)."""
    last_seen: float
    """Time of the latest packet, seconds since the epoch (UTC)."""
    interface: str
    """Interface the flow was captured on (or the capture file's interface name)."""
    direction: Direction
    """egress, ingress, internal or transit, from the local networks setting."""
    ip_proto: int
    """IP protocol number."""
    protocol: str
    """tcp, udp, icmp, icmp6, or the IP protocol number."""
    src_ip: str
    """Initiator address."""
    src_port: int
    """Initiator port (ICMP: message type)."""
    dst_ip: str
    """Responder address."""
    dst_port: int
    """Responder port (ICMP: counterpart type or code)."""
    packets_out: int
    """Packets sent by the initiator."""
    bytes_out: int
    """IP-layer bytes sent by the initiator (header included), as Zeek's orig_ip_bytes."""
    packets_in: int
    """Packets sent by the responder."""
    bytes_in: int
    """IP-layer bytes sent by the responder, as Zeek's resp_ip_bytes."""
    state: str
    """Connection state in Zeek's conn_state vocabulary (S0, S1, SF, REJ, RSTO, RSTR, OTH, ...)."""
    history: str
    """Zeek-style history: one letter per event, upper case for the initiator."""
    closed: bool
    """True once the flow has ended (FIN/RST and grace, idle timeout, eviction or shutdown)."""

    @property
    def duration(self) -> float:
        """Seconds from first to last packet."""
        return self.last_seen - self.first_seen
