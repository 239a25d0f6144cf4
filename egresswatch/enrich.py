"""Enrichment: what a flow's addresses say beyond the packets, worked out once per flow.

The flow table already carries what the client itself said (SNI, QUIC SNI, HTTP Host, JA4, ALPN);
here a flow also gets the DNS name its client looked up for the remote address before the flow
started, the remote end's country, city and AS, the container at the local end and the process
that opened it. The table
calls ``enrichment`` at a flow's first record and keeps the answer for its later ones.
"""

from __future__ import annotations

import functools
import pwd
from collections import Counter
from typing import TYPE_CHECKING

from egresswatch.attribution.containers import Container
from egresswatch.flows.record import Direction, Enrichment

if TYPE_CHECKING:
    from egresswatch.attribution.containers import ContainerMap
    from egresswatch.attribution.processes import Process, ProcessMap
    from egresswatch.geo.resolver import GeoResolver
    from egresswatch.names.passive_dns import DnsAnswer, PassiveDns


class Enricher:
    """DNS names from the passive-DNS memory, places from the GeoIP databases, containers from
    Docker, processes from the kernel's connect-time reports."""

    def __init__(
        self,
        passive_dns: PassiveDns,
        geo: GeoResolver | None = None,
        containers: ContainerMap | None = None,
        processes: ProcessMap | None = None,
    ) -> None:
        self.passive_dns = passive_dns
        self._geo = geo
        self.containers = containers
        self.processes = processes
        self.counters: Counter[str] = Counter()
        """flows_geolocated, flows_attributed_to_a_container, flows_attributed_to_a_process."""

    def learn(self, answers: list[DnsAnswer]) -> None:
        """DNS answers seen on the wire, in time order."""
        for answer in answers:
            self.passive_dns.add(answer)

    def enrichment(
        self,
        direction: Direction,
        src: str,
        dst: str,
        first_seen: float,
        proto: int = 0,
        sport: int = 0,
        dport: int = 0,
    ) -> Enrichment:
        """For a flow from ``src:sport`` to ``dst:dport``: the DNS name ``src`` looked up for
        ``dst``, the place of the remote end (the initiator of an ingress flow, else the
        responder), the container at the local end and the process that opened it."""
        dns_name = self.passive_dns.name(src, dst, first_seen)
        place: tuple[str | None, str | None, int | None, str | None] = (None, None, None, None)
        if self._geo is not None and direction is not Direction.INTERNAL:
            geo = self._geo.lookup(src if direction is Direction.INGRESS else dst)
            if geo.country or geo.asn:
                self.counters["flows_geolocated"] += 1
            place = (geo.country, geo.city, geo.asn, geo.as_org)
        process = self._process(proto, src, sport, dst, dport, first_seen)
        if process is not None and not self._same_place(process, src, first_seen):
            process = None
            self.counters["process_reports_from_elsewhere"] += 1
        container = self._container(src, dst, first_seen, process)
        country, city, asn, as_org = place
        container_id, container_name, image = _container_fields(container)
        pid, comm, exe, cmdline, user, user_id = _process_fields(process, container)
        return Enrichment(dns_name, country, city, asn, as_org, container_id, container_name,
                          image, pid, comm, exe, cmdline, user, user_id)  # fmt: skip

    def _container(
        self, src: str, dst: str, first_seen: float, process: Process | None
    ) -> Container | None:
        """The container at the initiator's end, else at the responder's; else the one the
        opening process runs in (host network, or no Docker API: then only its id is known)."""
        container = None
        if self.containers is not None:
            container = self.containers.at(src, first_seen) or self.containers.at(dst, first_seen)
        if container is None and process is not None and process.container_id:
            if self.containers is not None:
                container = self.containers.by_id(process.container_id)
            container = container or Container(id=process.container_id, name="", image="")
        if container is not None:
            self.counters["flows_attributed_to_a_container"] += 1
        return container

    def _same_place(self, process: Process, src: str, first_seen: float) -> bool:
        """Whether the reporting process runs where the flow's initiator is: in the container
        holding ``src``, or on the host (or in a container on the host's network). A report
        matched by destination and time alone (a connected UDP socket) could be another
        container's."""
        if self.containers is None or not process.place_known:
            return True
        holder = self.containers.at(src, first_seen)
        if holder is not None:
            return process.container_id == holder.id
        if process.container_id is None:
            return True
        known = self.containers.by_id(process.container_id)
        return known is None or known.network_mode == "host"

    def _process(
        self, proto: int, src: str, sport: int, dst: str, dport: int, first_seen: float
    ) -> Process | None:
        """The process that opened the flow (initiators on this box only)."""
        if self.processes is None or proto not in (6, 17):
            return None
        process = self.processes.owner(proto, src, sport, dst, dport, first_seen)
        if process is not None:
            self.counters["flows_attributed_to_a_process"] += 1
        return process


def _container_fields(c: Container | None) -> tuple[str | None, str | None, str | None]:
    """container_id, container_name, image (a name or image Docker did not tell: None)."""
    return (c.id, c.name or None, c.image or None) if c else (None, None, None)


_ProcessFields = tuple[int | None, str | None, str | None, str | None, str | None, int | None]


def _process_fields(p: Process | None, container: Container | None) -> _ProcessFields:
    """pid, process, exe, cmdline, user, user_id (the user's name only outside containers:
    a container's users are its own)."""
    if p is None:
        return None, None, None, None, None, None
    return p.pid, p.comm, p.exe, p.cmdline, None if container else _user_name(p.uid), p.uid


@functools.lru_cache(maxsize=1024)
def _user_name(uid: int) -> str | None:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return None
