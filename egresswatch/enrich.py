"""Enrichment: what a flow's addresses say beyond the packets, worked out once per flow.

The flow table already carries what the client itself said (SNI, QUIC SNI, HTTP Host, JA4, ALPN);
here a flow also gets the DNS name its client looked up for the remote address before the flow
started, the remote end's country, city and AS, and the container at the local end. The table
calls ``enrichment`` at a flow's first record and keeps the answer for its later ones.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from egresswatch.flows.record import NOT_ENRICHED, Direction, Enrichment

_NO_PLACE = (None, None, None, None)

if TYPE_CHECKING:
    from egresswatch.attribution.containers import Container, ContainerMap
    from egresswatch.geo.resolver import GeoResolver
    from egresswatch.names.passive_dns import DnsAnswer, PassiveDns


class Enricher:
    """DNS names from the passive-DNS memory, places from the GeoIP databases."""

    def __init__(
        self,
        passive_dns: PassiveDns,
        geo: GeoResolver | None = None,
        containers: ContainerMap | None = None,
    ) -> None:
        self.passive_dns = passive_dns
        self._geo = geo
        self.containers = containers
        self.counters: Counter[str] = Counter()
        """flows_geolocated: flows whose remote end a GeoIP database placed."""

    def learn(self, answers: list[DnsAnswer]) -> None:
        """DNS answers seen on the wire, in time order."""
        for answer in answers:
            self.passive_dns.add(answer)

    def enrichment(self, direction: Direction, src: str, dst: str, first_seen: float) -> Enrichment:
        """For a flow from ``src`` to ``dst``: the DNS name ``src`` looked up for ``dst`` and
        the place of the remote end (the initiator of an ingress flow, else the responder)."""
        dns_name = self.passive_dns.name(src, dst, first_seen)
        container = self._container(src, dst, first_seen)
        if self._geo is None or direction is Direction.INTERNAL:
            if container is None:
                return Enrichment(dns_name) if dns_name else NOT_ENRICHED
            return Enrichment(dns_name, *_NO_PLACE, container.id, container.name, container.image)
        geo = self._geo.lookup(src if direction is Direction.INGRESS else dst)
        if geo.country or geo.asn:
            self.counters["flows_geolocated"] += 1
        place = (geo.country, geo.city, geo.asn, geo.as_org)
        if container is None:
            return Enrichment(dns_name, *place)
        return Enrichment(dns_name, *place, container.id, container.name, container.image)

    def _container(self, src: str, dst: str, first_seen: float) -> Container | None:
        """The container at the initiator's end, else at the responder's."""
        if self.containers is None:
            return None
        container = self.containers.at(src, first_seen) or self.containers.at(dst, first_seen)
        if container is not None:
            self.counters["flows_attributed_to_a_container"] += 1
        return container
