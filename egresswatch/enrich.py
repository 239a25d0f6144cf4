"""Enrichment: flow records in, the same records named and placed out.

The flow table already carries what the client itself said (SNI, QUIC SNI, HTTP Host, JA4, ALPN);
here each record also gets the DNS name its client looked up for the remote address, and the
remote address's country, city and AS. Work that never changes for a flow is done once and kept
until its final record.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import TYPE_CHECKING, Any

from egresswatch.flows.record import Direction, FlowRecord

if TYPE_CHECKING:
    from egresswatch.geo.resolver import GeoInfo, GeoResolver
    from egresswatch.names.passive_dns import DnsAnswer, PassiveDns


class Enricher:
    """Adds ``dns_name``, the DNS fallback for ``server_name``, and GeoIP fields to records."""

    def __init__(self, passive_dns: PassiveDns, geo: GeoResolver | None = None) -> None:
        self.passive_dns = passive_dns
        self._geo = geo
        self._open: dict[str, dict[str, Any]] = {}  # uid -> fields, for flows still running
        self.counters: Counter[str] = Counter()
        """flows_named_<source>, flows_unnamed, flows_geolocated."""

    def learn(self, answers: list[DnsAnswer]) -> None:
        """DNS answers seen on the wire, in time order."""
        for answer in answers:
            self.passive_dns.add(answer)

    def enrich(self, records: list[FlowRecord]) -> list[FlowRecord]:
        out = []
        for rec in records:
            fields = self._open.pop(rec.uid, None) if rec.closed else self._open.get(rec.uid)
            if fields is None:
                fields = self._fields(rec)
                if not rec.closed:
                    self._open[rec.uid] = fields
            out.append(dataclasses.replace(rec, **fields) if fields else rec)
        return out

    def _fields(self, rec: FlowRecord) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        dns_name = self.passive_dns.name(rec.src_ip, rec.dst_ip, rec.first_seen)
        if dns_name is not None:
            fields["dns_name"] = dns_name
            if rec.server_name is None:
                fields["server_name"], fields["name_source"] = dns_name, "dns"
        source = fields.get("name_source", rec.name_source)
        self.counters[f"flows_named_{source}" if source else "flows_unnamed"] += 1
        remote = rec.src_ip if rec.direction is Direction.INGRESS else rec.dst_ip
        if self._geo is not None and rec.direction is not Direction.INTERNAL:
            geo: GeoInfo = self._geo.lookup(remote)
            if geo.country or geo.asn:
                self.counters["flows_geolocated"] += 1
                fields.update(country=geo.country, city=geo.city, asn=geo.asn, as_org=geo.as_org)
        return fields
