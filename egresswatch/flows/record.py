"""The flow record: one documented row per flow, the contract dashboards and scripts read."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple


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


@dataclass(frozen=True, slots=True)
class ClientNames:
    """What a client said about the server it wanted, on one flow."""

    server_name: str | None
    source: str
    """``sni`` (TLS), ``quic`` (QUIC Initial) or ``http`` (Host header)."""
    ts: float
    """Time of the packet that completed the hello or request: which of two flows on the same
    5-tuple it belongs to."""
    ja4: str | None = None
    alpn: tuple[str, ...] = ()


class Enrichment(NamedTuple):
    """What enrichment adds to a flow, worked out once, at its first record."""

    dns_name: str | None = None
    country: str | None = None
    city: str | None = None
    asn: int | None = None
    as_org: str | None = None
    container_id: str | None = None
    container_name: str | None = None
    image: str | None = None
    pid: int | None = None
    process: str | None = None
    exe: str | None = None
    cmdline: str | None = None
    user: str | None = None
    user_id: int | None = None


NOT_ENRICHED = Enrichment()


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
    server_name: str | None = None
    """The destination's name: what the client itself said (TLS SNI, QUIC SNI, HTTP Host) wins
    over the name it looked up in DNS before the flow started; None when there was neither."""
    name_source: str | None = None
    """Where ``server_name`` came from: ``sni``, ``quic``, ``http`` or ``dns``."""
    dns_name: str | None = None
    """The name this client asked DNS for and got the responder's address back, before the flow
    started (the queried name, not the CNAME target); kept beside ``server_name`` so that an SNI
    which differs from the DNS name stays visible."""
    ja4: str | None = None
    """JA4 fingerprint of the TLS or QUIC ClientHello: identifies the client library."""
    alpn: str | None = None
    """ALPN protocols the client offered, comma-separated in its order (``h2,http/1.1``)."""
    country: str | None = None
    """ISO country code of the remote end (the responder, or the initiator of ingress flows)."""
    city: str | None = None
    """City of the remote end, in English, when the GeoIP database has one."""
    asn: int | None = None
    """Autonomous system number of the remote end."""
    as_org: str | None = None
    """Organisation that holds that autonomous system."""
    container_id: str | None = None
    """Full id of the Docker container at the local end (the initiator's, else the
    responder's), from Docker's own record of which container held that address when the flow
    started; None for the host's own flows and when Docker could not be asked."""
    container_name: str | None = None
    """That container's name (``ollama``, ``dify-api-1``)."""
    image: str | None = None
    """The image the container was created from (``ollama/ollama:latest``)."""
    pid: int | None = None
    """Process id of the process that opened the flow (its initiator), reported by the kernel
    at connect time; None when the flow was not opened on this box, or the probe is off."""
    process: str | None = None
    """That process's name as the kernel keeps it (``wget``, ``python3``; 15 characters)."""
    exe: str | None = None
    """Its executable's path (as seen inside its container); None if it exited too fast."""
    cmdline: str | None = None
    """Its command line, arguments separated by spaces; None if it exited too fast."""
    user: str | None = None
    """The user name of ``user_id`` on the host (None inside containers: their users differ)."""
    user_id: int | None = None
    """The process's user id (inside its container's user namespace, if any)."""

    @property
    def duration(self) -> float:
        """Seconds from first to last packet."""
        return self.last_seen - self.first_seen
