"""The policy file's shape (``/etc/egresswatch/policy.yaml``), validated by pydantic.

Scopes are tried in file order; a flow is judged by the first scope that matches it (like
firewall rules). Within a scope: a ``deny`` rule that matches raises an alert; else an ``allow``
rule that matches lets it pass; else the scope's ``default`` decides (``allow``, or ``deny``:
"this container must never talk out").
"""

from __future__ import annotations

import ipaddress
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator

Severity = Literal["low", "medium", "high", "critical"]
SEVERITIES: tuple[Severity, ...] = get_args(Severity)
"""Every severity, the least first."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Match(_Strict):
    """Which flows a scope covers. Every key given must match (globs: ``*``, ``?``, ``[...]``);
    ``all: true`` (or nothing given) matches every flow."""

    all: bool = False
    container_names: list[str] = Field(default_factory=list)
    images: list[str] = Field(default_factory=list)
    container_labels: dict[str, str] = Field(default_factory=dict)
    """Label -> value glob; needs Docker's API (labels are not in the flow record)."""
    processes: list[str] = Field(default_factory=list)
    """Process names (the kernel's, e.g. ``wget``) or executable paths."""
    host: bool | None = None
    """true: only the host's own flows (no container); false: only containers' flows."""


class Destination(_Strict):
    """One allow or deny rule: every key given must match the flow's remote end."""

    domains: list[str] = Field(default_factory=list)
    """Globs against the flow's server_name and its DNS name (``*.openai.com``)."""
    cidrs: list[str] = Field(default_factory=list)
    countries: list[str] = Field(default_factory=list)
    """ISO codes (``CN``) of the remote end's GeoIP country."""
    asns: list[int] = Field(default_factory=list)
    ports: list[int] = Field(default_factory=list)
    protocols: list[Literal["tcp", "udp", "icmp", "icmp6"]] = Field(default_factory=list)

    @field_validator("cidrs")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for cidr in value:
            ipaddress.ip_network(cidr, strict=False)  # ValueError names the bad one
        return value

    @field_validator("countries")
    @classmethod
    def _countries(cls, value: list[str]) -> list[str]:
        for code in value:
            if len(code) != 2 or not code.isalpha():
                raise ValueError(f"{code!r} is not a two-letter ISO country code")
        return [code.upper() for code in value]


class Scope(_Strict):
    name: str
    match: Match = Field(default_factory=lambda: Match(all=True))
    allow: list[Destination] = Field(default_factory=list)
    deny: list[Destination] = Field(default_factory=list)
    default: Literal["allow", "deny"] = "allow"
    severity: Severity = "high"
    """Severity of the alerts this scope raises."""


class UploadDetection(_Strict):
    max_bytes_per_flow: int = Field(default=50_000_000, gt=0)
    """An alert when one flow sends more than this many bytes out (IP layer)."""
    max_bytes_per_source: int | None = Field(default=None, gt=0)
    """An alert when one source (container, else process, else address) sends more than this
    many bytes out, over all its flows, within ``window_minutes``; None: not judged."""
    window_minutes: float = Field(default=60.0, gt=0)
    severity: Severity = "medium"


DOH_NAMES: tuple[str, ...] = (
    "dns.google", "dns.google.com", "cloudflare-dns.com", "*.cloudflare-dns.com", "one.one.one.one",
    "dns.quad9.net", "*.dns.quad9.net", "doh.opendns.com", "dns.adguard.com", "*.dns.adguard.com",
    "doh.cleanbrowsing.org", "dns.nextdns.io", "*.dns.nextdns.io", "doh.mullvad.net",
)  # fmt: skip
"""Well-known public DNS-over-HTTPS endpoints."""


def _tcp_only() -> list[Literal["tcp", "udp"]]:
    return ["tcp"]


class RawIpDetection(_Strict):
    """Egress to an address nothing named: no DNS answer led there, no SNI, no HTTP Host."""

    protocols: list[Literal["tcp", "udp"]] = Field(default_factory=_tcp_only)
    ignore_ports: list[int] = Field(default_factory=lambda: [123])
    """Ports where a bare address is normal (NTP)."""
    severity: Severity = "low"


class DnsDetection(_Strict):
    """DNS that goes around the box's resolvers."""

    resolvers: list[str] = Field(default_factory=list)
    """Addresses (or CIDRs) DNS may go to; empty: any resolver is fine."""
    encrypted: bool = True
    """Alert on DNS over TLS (TCP 853), over QUIC (UDP 853) and on DNS-over-HTTPS endpoints
    (by name): lookups
    hidden from the box's resolver, and from egresswatch."""
    doh_names: list[str] = Field(default_factory=lambda: list(DOH_NAMES))
    severity: Severity = "medium"

    @field_validator("resolvers")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for cidr in value:
            ipaddress.ip_network(cidr, strict=False)
        return value


class FirstSeenDetection(_Strict):
    """A source (container, else process, else host address) reaching a destination (server
    name, else address) it never reached before, once the learning period is over."""

    learning_hours: float = Field(default=24.0, ge=0)
    """Quiet for this long after egresswatch first ran on this database: what is reached then
    is the normal the rest is judged against."""
    severity: Severity = "medium"


class BeaconDetection(_Strict):
    """Periodic connections from one source to one destination (RITA-style): regular intervals
    and regular sizes over a window, as implants and telemetry calling home make them."""

    min_connections: int = Field(default=8, ge=4)
    """Connections needed before the pattern is judged."""
    window_hours: float = Field(default=6.0, gt=0)
    """Only connections this recent count."""
    min_interval: float = Field(default=10.0, ge=0)
    """Seconds: connections closer together than this (median) are a burst, not a beacon."""
    ignore_ports: list[int] = Field(default_factory=lambda: [53, 123])
    """Services that are periodic by design (DNS, NTP)."""
    min_regularity: float = Field(default=0.8, gt=0, le=1)
    """1 - (median absolute deviation / median) of the intervals, and of the bytes sent: 1 is
    a metronome; jittered beacons score about 0.8-0.95, people browsing far lower."""
    severity: Severity = "medium"


class DnsTunnelDetection(_Strict):
    """Data carried in DNS names: one client asking many unique, long, random-looking names
    under one domain (or mostly TXT/NULL questions) within a window."""

    window_minutes: float = Field(default=10.0, gt=0)
    min_unique: int = Field(default=50, ge=2)
    """Unique names under one domain from one client within the window, at least."""
    min_label_length: int = Field(default=24, ge=1)
    """...whose mean longest label is at least this long..."""
    min_entropy: float = Field(default=3.5, ge=0)
    """...or whose labels carry at least this many bits per character (random data: about
    4 to 5; words and CDN host names: about 2.5 to 3.5); or mostly TXT or NULL questions."""
    severity: Severity = "high"


class ImageChangeDetection(_Strict):
    """A container recreated under its name from another image: an auto-update pulled new
    code (seen while egresswatch runs)."""

    severity: Severity = "medium"


class Detections(_Strict):
    upload: UploadDetection | None = Field(default_factory=UploadDetection)
    """None (``upload: null``) turns it off."""
    raw_ip: RawIpDetection | None = None
    """Off unless given (``raw_ip: {}`` turns it on with its defaults)."""
    dns: DnsDetection | None = Field(default_factory=DnsDetection)
    first_seen: FirstSeenDetection | None = Field(default_factory=FirstSeenDetection)
    beaconing: BeaconDetection | None = Field(default_factory=BeaconDetection)
    dns_tunnel: DnsTunnelDetection | None = Field(default_factory=DnsTunnelDetection)
    image_change: ImageChangeDetection | None = Field(default_factory=ImageChangeDetection)


class Policy(_Strict):
    version: Literal[1] = 1
    scopes: list[Scope] = Field(default_factory=list)
    detections: Detections = Field(default_factory=Detections)
    suppression_window: float = Field(default=3600.0, ge=0)
    """Seconds during which a repeat of the same alert (same rule, source and destination)
    adds to its count instead of raising a new one (not to an acknowledged alert, and for at
    most a day from the first: then it is raised again)."""

    def geoip_gaps(self, kinds: set[str]) -> list[str]:
        """What the scopes' rules by country or ASN cannot match with only GeoIP databases of
        ``kinds`` ("city", "country", "asn") at hand: such a rule matches no flow, so a deny
        by country would let everything through unseen."""
        gaps = []
        for scope in self.scopes:
            rules = [*scope.allow, *scope.deny]
            if any(r.countries for r in rules) and not kinds & {"city", "country"}:
                gaps.append(f"scope {scope.name!r} names countries, and there is no GeoIP "
                            "City or Country database: those rules match nothing")  # fmt: skip
            if any(r.asns for r in rules) and "asn" not in kinds:
                gaps.append(f"scope {scope.name!r} names ASNs, and there is no GeoIP ASN "
                            "database: those rules match nothing")  # fmt: skip
        return gaps
