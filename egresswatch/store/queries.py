"""Flow, DNS and alert queries: the filters the CLI (and later the API) offer, as indexed SQL."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Select, func, literal_column, select

from egresswatch.policy.model import SEVERITIES
from egresswatch.store.models import AlertRow, DestinationRow, DnsAddressRow, DnsRow, FlowRow

_HIDDEN = {"id", "dst_addr"}
FLOW_FIELDS = [c.name for c in FlowRow.__table__.columns if c.name not in _HIDDEN]
"""Field names of a flow as the CLI and API print it, in column order."""


@dataclass(frozen=True, slots=True, kw_only=True)
class FlowFilter:
    """Which flows to list. Every field is optional; ``limit`` 0 means no limit."""

    since: float | None = None
    """Flows active at or after this time (last packet >= since), epoch seconds."""
    until: float | None = None
    """Flows that started at or before this time, epoch seconds."""
    direction: str | None = None
    dst: str | None = None
    """Responder address or CIDR."""
    protocol: str | None = None
    port: int | None = None
    """Responder (service) port."""
    container: str | None = None
    """Container name, or id (or the start of one)."""
    process: str | None = None
    """Process name (as the kernel names it: ``wget``, ``python3``)."""
    server_name: str | None = None
    """Server name, or a glob (``*.example.com``; ``*`` and ``?``), case-insensitive."""
    country: str | None = None
    """ISO country code of the remote end."""
    asn: int | None = None
    min_bytes_out: int | None = None
    """Only flows that sent at least this many bytes."""
    before: tuple[float, str] | None = None
    """Keyset pagination: only flows ordered after this (last_seen, uid), newest first."""
    limit: int = 50


_MANY = 20_000
"""An address range with this many flows is walked newest first rather than sorted."""


def select_flows(conn: Connection, flt: FlowFilter) -> Iterator[dict[str, Any]]:
    columns = [FlowRow.__table__.c[name] for name in FLOW_FIELDS]
    newest = (FlowRow.last_seen.desc(), FlowRow.uid.desc())
    query: Select[Any] = select(*columns)
    if flt.dst and flt.limit:
        dense = _flows_in_range(conn, flt.dst) >= _MANY
        if not dense:  # the page's ids from the address index alone, then only their rows
            ids = select(FlowRow.id).where(*_where(flt)).order_by(*newest).limit(flt.limit)
            query = query.where(FlowRow.id.in_(ids.scalar_subquery()))
        else:  # a few rows along the time index find a page; sorting every match would not
            query = query.where(*_where(flt, address_index=conn.dialect.name != "sqlite"))
    else:
        query = query.where(*_where(flt))
    query = query.order_by(*newest)
    if flt.limit:
        query = query.limit(flt.limit)
    for row in conn.execute(query):
        yield dict(row._mapping)


def _flows_in_range(conn: Connection, dst: str) -> int:
    """How many flows go to ``dst`` (an address or CIDR), counting up to _MANY."""
    low, high = address_range(dst)
    some = select(FlowRow.id).where(FlowRow.dst_addr.between(low, high)).limit(_MANY).subquery()
    return int(conn.execute(select(func.count()).select_from(some)).scalar_one())


def select_flow(conn: Connection, uid: str) -> dict[str, Any] | None:
    columns = [FlowRow.__table__.c[name] for name in FLOW_FIELDS]
    row = conn.execute(select(*columns).where(FlowRow.uid == uid)).first()
    return dict(row._mapping) if row is not None else None


def select_alert(conn: Connection, uid: str) -> dict[str, Any] | None:
    for row in select_alerts(conn, AlertFilter(uid=uid, limit=1)):
        return row
    return None


def _where(flt: FlowFilter, *, address_index: bool = True) -> list[Any]:
    """The filter's WHERE clauses (``address_index`` False: SQLite must not use the address
    index for ``dst``, written ``+dst_addr``)."""
    clauses: list[Any] = []
    if flt.since is not None:
        clauses.append(FlowRow.last_seen >= flt.since)
    if flt.until is not None:
        clauses.append(FlowRow.first_seen <= flt.until)
    if flt.direction:
        clauses.append(FlowRow.direction == flt.direction)
    if flt.protocol:
        clauses.append(FlowRow.protocol == flt.protocol.lower())
    if flt.port is not None:
        clauses.append(FlowRow.dst_port == flt.port)
    if flt.before is not None:
        last_seen, uid = flt.before
        clauses.append(
            (FlowRow.last_seen < last_seen)
            | ((FlowRow.last_seen == last_seen) & (FlowRow.uid < uid))
        )
    if flt.container:
        clauses.append(
            (FlowRow.container_name == flt.container)
            | FlowRow.container_id.startswith(flt.container.lower(), autoescape=True)
        )
    if flt.process:
        clauses.append(FlowRow.process == flt.process)
    if flt.server_name:
        clauses.append(_matches(FlowRow.server_name, flt.server_name))
    if flt.country:
        clauses.append(FlowRow.country == flt.country.upper())
    if flt.asn is not None:
        clauses.append(FlowRow.asn == flt.asn)
    if flt.min_bytes_out is not None:
        clauses.append(FlowRow.bytes_out >= flt.min_bytes_out)
    if flt.dst:
        low, high = address_range(flt.dst)
        dst_addr = FlowRow.dst_addr if address_index else literal_column("+flows.dst_addr")
        clauses.append(dst_addr.between(low, high))
        # IPv4 keys live inside ::ffff:0:0/96: keep an IPv6 prefix from matching IPv4 flows.
        v6 = ":" in flt.dst
        clauses.append(FlowRow.dst_ip.contains(":") if v6 else ~FlowRow.dst_ip.contains(":"))
    return clauses


def _matches(column: Any, name: str) -> Any:
    """A name, or a glob (``*``, ``?``), as stored: lower case, no trailing dot."""
    pattern = name.lower().rstrip(".")
    if "*" not in pattern and "?" not in pattern:
        return column == pattern
    like = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return column.like(like.replace("*", "%").replace("?", "_"), escape="\\")


_V4_MAPPED = b"\x00" * 10 + b"\xff\xff"


def address_key(ip: str) -> bytes:
    """16-byte sortable form of an address: IPv6 as is, IPv4 mapped into ::ffff:0:0/96."""
    packed = ipaddress.ip_address(ip).packed
    return _V4_MAPPED + packed if len(packed) == 4 else packed


def address_range(text: str) -> tuple[bytes, bytes]:
    """First and last 16-byte address keys of an address or CIDR (raises ValueError)."""
    net = ipaddress.ip_network(text, strict=False)
    low, high = net.network_address.packed, net.broadcast_address.packed
    return (_V4_MAPPED + low, _V4_MAPPED + high) if net.version == 4 else (low, high)


@dataclass(frozen=True, slots=True, kw_only=True)
class DnsFilter:
    """Which DNS answers to list; ``limit`` 0 means no limit."""

    name: str | None = None
    """Query name, or a glob (``*.vendor.cn``; ``*`` and ``?``), case-insensitive."""
    ip: str | None = None
    """An address the answer contained."""
    since: float | None = None
    until: float | None = None
    limit: int = 50


DNS_FIELDS = ["time", "client", "resolver", "query", "qtype", "rcode", "answers", "ttl"]


def select_dns(conn: Connection, flt: DnsFilter) -> Iterator[dict[str, Any]]:
    query: Select[Any] = select(*[DnsRow.__table__.c[name] for name in DNS_FIELDS])
    if flt.name:
        query = query.where(_matches(DnsRow.query, flt.name))
    if flt.ip:
        address = str(ipaddress.ip_address(flt.ip))
        uids = select(DnsAddressRow.dns_uid).where(DnsAddressRow.address == address)
        query = query.where(DnsRow.uid.in_(uids))
    if flt.since is not None:
        query = query.where(DnsRow.time >= flt.since)
    if flt.until is not None:
        query = query.where(DnsRow.time <= flt.until)
    query = query.order_by(DnsRow.time.desc(), DnsRow.id.desc())
    if flt.limit:
        query = query.limit(flt.limit)
    for row in conn.execute(query):
        answer = dict(row._mapping)
        answer["answers"] = json.loads(answer["answers"])
        yield answer


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertFilter:
    """Which alerts to list; ``limit`` 0 means no limit."""

    since: float | None = None
    """Alerts raised or repeated at or after this time, epoch seconds."""
    unacknowledged: bool = False
    """Only alerts nobody has acknowledged yet."""
    acknowledged_only: bool = False
    """Only alerts somebody has acknowledged."""
    severity: str | None = None
    """This severity or a higher one (low < medium < high < critical)."""
    rule: str | None = None
    container: str | None = None
    """Alerts about this container's flows (its name, or id)."""
    uid: str | None = None
    limit: int = 50


def select_alerts(conn: Connection, flt: AlertFilter) -> Iterator[dict[str, Any]]:
    columns = [c for c in AlertRow.__table__.c if c.name not in ("id", "evidence")]
    # Whether packets were kept, not the pcap itself (alert_evidence() reads that).
    kept = AlertRow.evidence.is_not(None).label("evidence")
    query: Select[Any] = select(*columns, kept)
    if flt.since is not None:
        query = query.where(AlertRow.last_time >= flt.since)
    if flt.unacknowledged:
        query = query.where(AlertRow.acknowledged.is_(False))
    if flt.acknowledged_only:
        query = query.where(AlertRow.acknowledged.is_(True))
    if flt.severity is not None:
        query = query.where(AlertRow.severity.in_(SEVERITIES[SEVERITIES.index(flt.severity) :]))
    if flt.rule is not None:
        query = query.where(AlertRow.rule == flt.rule)
    if flt.container is not None:
        query = query.where(AlertRow.container == flt.container)
    if flt.uid is not None:
        query = query.where(AlertRow.uid == flt.uid)
    query = query.order_by(AlertRow.last_time.desc(), AlertRow.id.desc())
    if flt.limit:
        query = query.limit(flt.limit)
    for row in conn.execute(query):
        out = dict(row._mapping)
        out["flow"] = json.loads(out["flow"])
        out["evidence"] = bool(out["evidence"])
        yield out


def alert_evidence(conn: Connection, uid: str) -> bytes | None:
    return conn.execute(select(AlertRow.evidence).where(AlertRow.uid == uid)).scalar()


def known_destinations(conn: Connection) -> tuple[set[tuple[str, str]], float | None]:
    """Every (source, destination) pair stored, and the oldest first sighting (None: none)."""
    pairs: set[tuple[str, str]] = set()
    oldest: float | None = None
    for source, dest, at in conn.execute(
        select(DestinationRow.source, DestinationRow.destination, DestinationRow.first_seen)
    ):
        pairs.add((source, dest))
        oldest = at if oldest is None else min(oldest, at)
    return pairs, oldest


def alert_counts(conn: Connection) -> list[tuple[str, bool, int]]:
    """(severity, acknowledged, number of alerts), for metrics."""
    query = select(AlertRow.severity, AlertRow.acknowledged, func.count()).group_by(
        AlertRow.severity, AlertRow.acknowledged
    )
    return [(severity, bool(ack), int(n)) for severity, ack, n in conn.execute(query)]
