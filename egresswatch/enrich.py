"""Enrichment: what a flow's addresses say beyond the packets, worked out once per flow.

The flow table already carries what the client itself said (SNI, QUIC SNI, HTTP Host, JA4, ALPN);
here a flow also gets the DNS name its client looked up for the remote address before the flow
started, and the remote end's country, city and AS. The table calls ``enrichment`` at a flow's
first record and keeps the answer for its later ones.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from egresswatch.flows.record import NOT_ENRICHED, Direction, Enrichment

if TYPE_CHECKING:
    from egresswatch.geo.resolver import GeoResolver
    from egresswatch.names.passive_dns import DnsAnswer, PassiveDns


class Enricher:
    """DNS names from the passive-DNS memory, places from the GeoIP databases."""

    def __init__(self, passive_dns: PassiveDns, geo: GeoResolver | None = None) -> None:
        self.passive_dns = passive_dns
        self._geo = geo
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
        if self._geo is None or direction is Direction.INTERNAL:
            return Enrichment(dns_name) if dns_name else NOT_ENRICHED
        geo = self._geo.lookup(src if direction is Direction.INGRESS else dst)
        if geo.country or geo.asn:
            self.counters["flows_geolocated"] += 1
        return Enrichment(dns_name, geo.country, geo.city, geo.asn, geo.as_org)
