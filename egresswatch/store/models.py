"""Database tables. Schema changes go through Alembic (``migrations/``), never create_all."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Float, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL wants BIGINT for millions of rows.
_BigId = BigInteger().with_variant(Integer, "sqlite")


class Base(DeclarativeBase):
    pass


class FlowRow(Base):
    """One row per flow (uid); interim updates of a long flow overwrite its row."""

    __tablename__ = "flows"

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    uid: Mapped[str] = mapped_column(String(32), unique=True)
    first_seen: Mapped[float] = mapped_column(Float(precision=53))
    last_seen: Mapped[float] = mapped_column(Float(precision=53))
    interface: Mapped[str] = mapped_column(String(64))
    direction: Mapped[str] = mapped_column(String(8))
    ip_proto: Mapped[int] = mapped_column(Integer)
    protocol: Mapped[str] = mapped_column(String(8))
    src_ip: Mapped[str] = mapped_column(String(45))
    src_port: Mapped[int] = mapped_column(Integer)
    dst_ip: Mapped[str] = mapped_column(String(45))
    dst_port: Mapped[int] = mapped_column(Integer)
    dst_addr: Mapped[bytes] = mapped_column(LargeBinary(16))
    """Responder address as 16 bytes (IPv4 mapped into ::ffff:0:0/96): CIDR filters are ranges."""
    packets_out: Mapped[int] = mapped_column(BigInteger)
    bytes_out: Mapped[int] = mapped_column(BigInteger)
    packets_in: Mapped[int] = mapped_column(BigInteger)
    bytes_in: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(8))
    history: Mapped[str] = mapped_column(String(64))
    closed: Mapped[bool] = mapped_column(Boolean)
    # Filled by enrichment (names, geo, attribution); null when unknown, never guessed.
    server_name: Mapped[str | None] = mapped_column(String(255))
    name_source: Mapped[str | None] = mapped_column(String(8))
    dns_name: Mapped[str | None] = mapped_column(String(255))
    ja4: Mapped[str | None] = mapped_column(String(40))
    alpn: Mapped[str | None] = mapped_column(String(255))
    country: Mapped[str | None] = mapped_column(String(2))
    city: Mapped[str | None] = mapped_column(String(128))
    asn: Mapped[int | None] = mapped_column(BigInteger)
    as_org: Mapped[str | None] = mapped_column(String(255))
    container_id: Mapped[str | None] = mapped_column(String(64))
    container_name: Mapped[str | None] = mapped_column(String(255))
    image: Mapped[str | None] = mapped_column(String(255))
    pid: Mapped[int | None] = mapped_column(Integer)
    process: Mapped[str | None] = mapped_column(String(64))
    exe: Mapped[str | None] = mapped_column(Text)
    cmdline: Mapped[str | None] = mapped_column(Text)
    user: Mapped[str | None] = mapped_column(String(64))
    user_id: Mapped[int | None] = mapped_column(BigInteger)

    __table_args__ = (
        Index("ix_flows_last_seen", "last_seen"),
        Index("ix_flows_first_seen", "first_seen"),
        # Covers a CIDR filter's newest page: its ids come from the index alone.
        Index("ix_flows_dst_addr_last_seen", "dst_addr", "last_seen", "uid", "dst_ip"),
        Index("ix_flows_dst_port", "dst_port"),
        Index("ix_flows_direction_last_seen", "direction", "last_seen"),
        Index("ix_flows_server_name", "server_name"),
    )


class DnsRow(Base):
    """One row per DNS response seen (passive DNS history)."""

    __tablename__ = "dns"

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    uid: Mapped[str] = mapped_column(String(32), unique=True)
    time: Mapped[float] = mapped_column(Float(precision=53))
    client: Mapped[str] = mapped_column(String(45))
    resolver: Mapped[str] = mapped_column(String(45))
    query: Mapped[str] = mapped_column(String(255))
    qtype: Mapped[str] = mapped_column(String(16))
    rcode: Mapped[str] = mapped_column(String(16))
    answers: Mapped[str] = mapped_column(Text)
    """JSON list of the addresses and CNAME targets in the answer section."""
    ttl: Mapped[int | None] = mapped_column(BigInteger)

    __table_args__ = (
        Index("ix_dns_time", "time"),
        Index("ix_dns_query", "query"),
    )


class DnsAddressRow(Base):
    """The addresses each DNS response gave, so "who resolved this address" is an index lookup."""

    __tablename__ = "dns_addresses"

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    dns_uid: Mapped[str] = mapped_column(String(32))
    address: Mapped[str] = mapped_column(String(45))

    __table_args__ = (
        Index("ix_dns_addresses_address", "address"),
        Index("ix_dns_addresses_dns_uid_address", "dns_uid", "address", unique=True),
    )


class AlertRow(Base):
    """One alert; repeats within the suppression window raise ``count`` and ``last_time``."""

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    uid: Mapped[str] = mapped_column(String(32), unique=True)
    time: Mapped[float] = mapped_column(Float(precision=53))
    last_time: Mapped[float] = mapped_column(Float(precision=53))
    rule: Mapped[str] = mapped_column(String(255))
    severity: Mapped[str] = mapped_column(String(16))
    summary: Mapped[str] = mapped_column(Text)
    dedup_key: Mapped[str] = mapped_column(String(1024))
    count: Mapped[int] = mapped_column(BigInteger)
    flow_uid: Mapped[str] = mapped_column(String(32))
    flow: Mapped[str] = mapped_column(Text)
    """JSON object: every field of the flow that raised it."""
    acknowledged: Mapped[bool] = mapped_column(Boolean, default=False)
    evidence: Mapped[bytes | None] = mapped_column(LargeBinary)
    """The flow's first packets, a pcap file (``egresswatch alerts --evidence UID``)."""
    container: Mapped[str | None] = mapped_column(String(255))
    """The flow's container name (else id); None for the host's own flows."""
    source: Mapped[str | None] = mapped_column(String(255))
    """Who, for an alert raised by no single flow (a DNS client, a container); else None."""
    destination: Mapped[str | None] = mapped_column(String(255))
    """To what, for an alert raised by no single flow (a domain, an image); else None."""

    __table_args__ = (
        Index("ix_alerts_time", "time"),
        Index("ix_alerts_last_time", "last_time"),
        Index("ix_alerts_dedup_key_last_time", "dedup_key", "last_time"),
    )


class OutboxRow(Base):
    """One alert (or digest) waiting to be posted to one webhook; kept once delivered."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    alert_uid: Mapped[str] = mapped_column(String(32))
    webhook: Mapped[int] = mapped_column(Integer)
    """The webhook's key (a hash of its URL, stable across config edits; never the URL)."""
    created: Mapped[float] = mapped_column(Float(precision=53))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt: Mapped[float] = mapped_column(Float(precision=53))
    delivered: Mapped[float | None] = mapped_column(Float(precision=53))
    last_error: Mapped[str | None] = mapped_column(String(255))

    __table_args__ = (
        Index("ix_outbox_pending", "delivered", "next_attempt"),
        Index("ix_outbox_alert_uid_webhook", "alert_uid", "webhook", unique=True),
    )


class DestinationRow(Base):
    """Each destination each source has reached, first time only: what "first seen" is
    judged against, kept across restarts. The oldest row starts the learning period."""

    __tablename__ = "destinations"

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(255))
    """The container's name, else the process's name, else the host's address."""
    destination: Mapped[str] = mapped_column(String(255))
    """The server name, else the address."""
    first_seen: Mapped[float] = mapped_column(Float(precision=53))

    __table_args__ = (
        Index("ix_destinations_source_destination", "source", "destination", unique=True),
    )


class FlowHourRow(Base):
    """Hourly totals by destination, direction, place, container and process: what
    ``/destinations`` and ``/containers`` sum over, so a month is a few thousand rows, not
    millions of flows. Kept current by the flow writer; bytes count in the hour they were
    reported (a long flow's interim updates add their increase)."""

    __tablename__ = "flow_hours"

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    hour: Mapped[float] = mapped_column(Float(precision=53))
    """Start of the hour, epoch seconds."""
    direction: Mapped[str] = mapped_column(String(8))
    # The key columns hold "" (asn: 0) for unknown: NULLs would never collide in a unique index.
    server_name: Mapped[str] = mapped_column(String(255))
    dst_ip: Mapped[str] = mapped_column(String(45))
    """The responder's address when the flow has no server name ("" when it has one)."""
    country: Mapped[str] = mapped_column(String(2))
    asn: Mapped[int] = mapped_column(BigInteger)
    as_org: Mapped[str] = mapped_column(String(255))
    container: Mapped[str] = mapped_column(String(255))
    """Container name ("" for the host)."""
    process: Mapped[str] = mapped_column(String(64))
    flows: Mapped[int] = mapped_column(BigInteger)
    packets_out: Mapped[int] = mapped_column(BigInteger)
    bytes_out: Mapped[int] = mapped_column(BigInteger)
    packets_in: Mapped[int] = mapped_column(BigInteger)
    bytes_in: Mapped[int] = mapped_column(BigInteger)
    first_seen: Mapped[float] = mapped_column(Float(precision=53))
    last_seen: Mapped[float] = mapped_column(Float(precision=53))

    __table_args__ = (
        Index(
            "ix_flow_hours_key",
            "hour",
            "direction",
            "server_name",
            "dst_ip",
            "country",
            "asn",
            "container",
            "process",
            unique=True,
        ),
    )


class FlowHourChangeRow(Base):
    """How many times each hour's totals were written to: an answer cached from closed hours
    stays valid while their counts stay the same (a replay or a late flow changes them)."""

    __tablename__ = "flow_hour_changes"

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    hour: Mapped[float] = mapped_column(Float(precision=53), unique=True)
    changes: Mapped[int] = mapped_column(BigInteger)


class ContainerRow(Base):
    """Every container the Docker API described, with what could hide its traffic."""

    __tablename__ = "containers"

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    container_id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(255))
    image: Mapped[str] = mapped_column(String(255))
    first_seen: Mapped[float] = mapped_column(Float(precision=53))
    last_seen: Mapped[float] = mapped_column(Float(precision=53))
    network_mode: Mapped[str] = mapped_column(String(255))
    privileged: Mapped[bool] = mapped_column(Boolean)
    host_pid: Mapped[bool] = mapped_column(Boolean)
    docker_socket: Mapped[bool] = mapped_column(Boolean)
    cap_add: Mapped[str] = mapped_column(Text)
    """JSON list of the capabilities added (``NET_ADMIN``, ``SYS_ADMIN``, ...)."""


class StatusRow(Base):
    """The capture daemon's health and counters, one row per host, rewritten every few
    seconds: what ``/readyz`` and ``/metrics`` report from another process."""

    __tablename__ = "daemon_status"

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    host: Mapped[str] = mapped_column(String(255), unique=True)
    updated: Mapped[float] = mapped_column(Float(precision=53))
    status: Mapped[str] = mapped_column(Text)
    """JSON object: see ``egresswatch.status``."""
