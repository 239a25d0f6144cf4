"""Settings: one TOML file plus ``EGRESSWATCH_*`` environment overrides, loaded once by the CLI.

Environment variables win over the file. Nested keys use a double underscore:
``EGRESSWATCH_FLOWS__ACTIVE_TIMEOUT=30`` sets ``[flows] active_timeout``.
"""

from __future__ import annotations

import ipaddress
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from egresswatch.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("/etc/egresswatch/egresswatch.toml")
DEFAULT_DB_URL = "sqlite:////var/lib/egresswatch/egresswatch.db"

DEFAULT_LOCAL_NETWORKS = [
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",  # RFC 1918
    "100.64.0.0/10",  # carrier-grade NAT
    "127.0.0.0/8",
    "::1/128",  # loopback
    "169.254.0.0/16",
    "fe80::/10",  # link-local
    "fc00::/7",  # unique local
    "224.0.0.0/4",
    "ff00::/8",  # multicast
    "255.255.255.255/32",
    "0.0.0.0/32",
    "::/128",  # broadcast, unspecified
]


class FlowSettings(BaseModel):
    """How flows are tracked and when they are written out."""

    model_config = ConfigDict(extra="forbid")

    max_flows: int = Field(default=262_144, gt=0)
    """Flows tracked at once; beyond it the oldest flow is written out early and counted."""
    tcp_idle_timeout: float = Field(default=300.0, gt=0)
    """Seconds without a packet after which a TCP flow ends (Zeek: tcp_inactivity_timeout)."""
    udp_idle_timeout: float = Field(default=60.0, gt=0)
    """Seconds without a packet after which a UDP flow ends (Zeek: udp_inactivity_timeout)."""
    dns_idle_timeout: float = Field(default=10.0, gt=0)
    """Seconds without a packet after which a UDP DNS exchange ends (Zeek: dns_session_timeout),
    so each lookup burst is its own flow."""
    other_idle_timeout: float = Field(default=60.0, gt=0)
    """Seconds without a packet after which an ICMP or other-protocol flow ends."""
    close_grace: float = Field(default=5.0, ge=0)
    """Seconds a TCP flow is kept after FIN/RST to count the last packets (Zeek:
    tcp_close_delay)."""
    active_timeout: float = Field(default=60.0, gt=0)
    """A flow still running is written out (as an interim update) at least this often."""


class StoreSettings(BaseModel):
    """How flow records are written to the database."""

    model_config = ConfigDict(extra="forbid")

    batch_size: int = Field(default=2000, gt=0)
    """Records written per transaction."""
    keep_flows_days: float = Field(default=30.0, ge=0)
    """Flows, DNS answers and delivered webhook posts older than this are deleted (hourly, in
    small batches); 0 keeps them forever. Their hourly totals become daily ones."""
    keep_totals_days: float = Field(default=365.0, ge=0)
    """Daily totals (what ``/destinations`` and ``/containers`` add up) are kept this long;
    0 keeps them forever."""


class NameSettings(BaseModel):
    """How destinations are named (passive DNS, TLS SNI, HTTP Host, QUIC SNI)."""

    model_config = ConfigDict(extra="forbid")

    dns_cache_size: int = Field(default=100_000, gt=0)
    """(client, address) pairs remembered from DNS answers; beyond it the oldest are forgotten."""
    dns_grace: float = Field(default=300.0, ge=0)
    """Seconds a DNS answer still names connections after its TTL ran out (clients and resolvers
    keep answers longer than the TTL says)."""


class GeoSettings(BaseModel):
    """Where the GeoIP databases (MaxMind or DB-IP ``.mmdb``) are found."""

    model_config = ConfigDict(extra="forbid")

    paths: list[Path] = Field(
        default_factory=lambda: [Path("/usr/share/GeoIP"), Path("/var/lib/GeoIP")]
    )
    """Directories (or ``.mmdb`` files) searched for City/Country and ASN databases, first match
    wins; the defaults are where Debian's geoipupdate writes them."""
    reload_interval: float = Field(default=60.0, ge=0)
    """Seconds between checks for a database replaced on disk (geoipupdate's weekly run)."""


class CaptureSettings(BaseModel):
    """What `egresswatch run` captures on, and how."""

    model_config = ConfigDict(extra="forbid")

    engine: Literal["ring", "tshark"] = "ring"
    """How packets are captured. ``ring``: egresswatch's own TPACKET_V3 rings, every packet,
    exact counts (egresswatch needs CAP_NET_RAW). ``tshark``: dumpcap and tshark (via pyshark)
    capture only the packets that open, close or name a flow (SYN/FIN/RST, DNS, TLS ClientHello,
    HTTP request, QUIC Initial), for boxes that grant capture privileges to dumpcap alone; byte
    and packet counts are then not available (docs/running.md). With it, ``ring_blocks`` sizes
    dumpcap's buffer (MiB) and ``block_timeout_ms`` is how long captured frames wait to be handed
    on."""
    interfaces: list[str] = Field(default_factory=list)
    """Interfaces to capture on. Empty (the default): Docker's bridge networks and the
    interfaces holding a default route, found again every ``rediscover_interval``."""
    rediscover_interval: float = Field(default=5.0, gt=0)
    """Seconds between looks for bridges created or removed since start."""
    docker_socket: Path = Path("/var/run/docker.sock")
    """The Docker Engine API socket, asked for the bridge networks' devices (without it,
    ``docker0`` and ``br-*`` bridges are found in /sys/class/net)."""
    promiscuous_bridges: bool = True
    """Put bridges in promiscuous mode, so traffic between two containers is seen too (an
    uplink is never made promiscuous)."""
    ring_blocks: int = Field(default=32, ge=2, le=4096)
    """1 MiB blocks in each interface's capture ring: how long a burst the kernel can hold
    while egresswatch catches up."""
    block_timeout_ms: int = Field(default=100, ge=1, le=10_000)
    """A ring block not yet full is handed over after this long (the capture latency)."""
    snaplen: int = Field(default=4096, ge=256, le=262_144)
    """Bytes kept of each frame: headers and the start of the payload (enough for a TLS
    ClientHello); byte counts still come from the packets' own lengths."""
    queue_batches: int = Field(default=256, gt=0)
    """Ring blocks waiting for decoding; beyond it they are dropped and counted."""
    nat_twins: Literal["auto", "ports", "off"] = "auto"
    """A container's connection is seen on its bridge and again, NAT'd, on the uplink: it is
    written once, as the bridge saw it (with the container's address). ``auto``: the uplink
    sighting is recognised from the kernel's conntrack table, else by destination, ports and
    time; ``ports``: by destination, ports and time only; ``off``: both are written."""


class AttributionSettings(BaseModel):
    """How `egresswatch run` finds the container and process behind each flow."""

    model_config = ConfigDict(extra="forbid")

    probe: bool = True
    """Load the eBPF probe that reports every connection's process at connect time (needs a
    kernel with BTF, libbpf and CAP_BPF + CAP_NET_ADMIN). False, or when it cannot load:
    processes are looked up through sock_diag and /proc as flows start, which misses
    short-lived processes and those in containers with a network of their own."""


class PolicySettings(BaseModel):
    """Where the policy is (what may talk out; alerts for what breaks it)."""

    model_config = ConfigDict(extra="forbid")

    path: Path = Path("/etc/egresswatch/policy.yaml")
    """The policy file (docs/policy.md). Missing: the built-in default policy
    (``egresswatch/policy/default.yaml``; every rule it can raise: docs/alerts.md)."""


class ApiToken(BaseModel):
    """A bearer token for the REST API."""

    model_config = ConfigDict(extra="forbid")

    token: SecretStr
    """The token clients send (``Authorization: Bearer <token>``); a secret, never logged."""
    access: Literal["read", "write"] = "read"
    """``read``: GET only; ``write``: also acknowledging alerts."""


class ApiSettings(BaseModel):
    """The REST API (`egresswatch serve`)."""

    model_config = ConfigDict(extra="forbid")

    listen: str = "127.0.0.1:8787"
    """HOST:PORT. Any address but loopback needs at least one token: the service refuses to
    start without."""
    tokens: list[ApiToken] = Field(default_factory=list)
    """``[[api.tokens]]`` entries. None: on loopback, every local client may read and write."""
    cors_origins: list[str] = Field(default_factory=list)
    """Browser origins allowed to call the API (dashboards served from elsewhere)."""


class Webhook(BaseModel):
    """One place alerts are posted to."""

    model_config = ConfigDict(extra="forbid")

    url: SecretStr
    """The webhook URL (a secret: never logged)."""
    kind: Literal["slack", "json"] = "slack"
    """``slack``: a Slack incoming webhook (Block Kit message); ``json``: the alert as JSON,
    signed with ``secret`` (header ``X-Egresswatch-Signature: sha256=<hex HMAC>``)."""
    secret: SecretStr | None = None
    """HMAC-SHA256 key for ``json`` webhooks."""
    min_severity: Literal["low", "medium", "high", "critical"] = "low"
    """Only alerts at least this severe go here."""
    rules: list[str] = Field(default_factory=list)
    """Only alerts whose rule matches one of these globs (empty: every rule)."""


class NotifySettings(BaseModel):
    """Where alerts are delivered, and how hard to try."""

    model_config = ConfigDict(extra="forbid")

    webhooks: list[Webhook] = Field(default_factory=list)
    """Besides ``slack_webhook_url``: ``[[notify.webhooks]]`` entries."""
    max_backoff: float = Field(default=900.0, gt=0)
    """Longest wait between two attempts at one delivery, seconds (it doubles from 2 s, with
    jitter; a 429's Retry-After is honoured)."""
    digest_after: int = Field(default=10, ge=1)
    """More alerts than this waiting for one webhook are sent as one digest message."""


class Settings(BaseSettings):
    """Everything egresswatch can be configured with."""

    model_config = SettingsConfigDict(
        env_prefix="EGRESSWATCH_", env_nested_delimiter="__", extra="forbid"
    )

    db: str = DEFAULT_DB_URL
    """SQLAlchemy URL of the database (SQLite by default; PostgreSQL for a fleet of boxes)."""
    log_level: str = "INFO"
    """Python logging level name."""
    local_networks: list[str] = Field(default_factory=lambda: list(DEFAULT_LOCAL_NETWORKS))
    """Networks that count as "this box": the initiator of an egress flow is inside them."""
    extra_local_networks: list[str] = Field(default_factory=list)
    """Added to ``local_networks`` (e.g. the box's public prefix), so the defaults stay."""
    flows: FlowSettings = Field(default_factory=FlowSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    names: NameSettings = Field(default_factory=NameSettings)
    geoip: GeoSettings = Field(default_factory=GeoSettings)
    capture: CaptureSettings = Field(default_factory=CaptureSettings)
    attribution: AttributionSettings = Field(default_factory=AttributionSettings)
    policy: PolicySettings = Field(default_factory=PolicySettings)
    slack_webhook_url: SecretStr | None = None
    """The simplest set-up: every alert to this Slack incoming webhook
    (``EGRESSWATCH_SLACK_WEBHOOK_URL``). A secret: never logged."""
    notify: NotifySettings = Field(default_factory=NotifySettings)
    api: ApiSettings = Field(default_factory=ApiSettings)

    @field_validator("local_networks", "extra_local_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for net in value:
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError as exc:
                raise ValueError(f"{net!r} is not an IP network (CIDR)") from exc
        return value

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        if value.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return value.upper()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The TOML file arrives as init arguments; the environment must override it.
        return (env_settings, init_settings)


def load_settings(path: Path | None = None) -> Settings:
    """Read the config file (``path``, else the default if it exists) and the environment.

    Raises ConfigError naming the file, the key and the problem.
    """
    explicit = path is not None
    path = path or DEFAULT_CONFIG_PATH
    data: dict[str, Any] = {}
    if path.exists():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    elif explicit:
        raise ConfigError(f"{path}: config file not found")
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, path if data else None)) from exc


def _describe(exc: ValidationError, path: Path | None) -> str:
    where = f" in {path} or the environment" if path else " in the environment"
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        env = "EGRESSWATCH_" + "__".join(str(p) for p in err["loc"] if isinstance(p, str)).upper()
        message = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        lines.append(f"config key '{key}' ({env}){where}: {message}")
    return "\n".join(lines)
