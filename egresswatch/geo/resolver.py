"""Country, city and autonomous system of an address, from the GeoIP databases on this box.

``GeoResolver`` is the one edge class: it finds the databases under the paths it is given, keeps
them open, answers lookups from a bounded cache and notices when geoipupdate (or an operator)
replaces a file. Nothing is ever downloaded: without databases every answer is ``NO_GEO``.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from egresswatch.geo.databases import (
    ASN,
    CITY,
    COUNTRY,
    GeoDatabase,
    OpenDatabase,
    Signature,
    UnusableDatabase,
    places,
    signature,
)

log = logging.getLogger(__name__)

_T = TypeVar("_T")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Addresses no database places, looked at before any lookup. Documentation ranges (192.0.2.0/24,
# 2001:db8::/32 ...) are deliberately absent: real databases hold nothing there anyway, and tests
# build small databases that map them.
_UNPLACEABLE = tuple(
    ipaddress.ip_network(net)
    for net in (
        "0.0.0.0/8",  # "this network"
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",  # RFC 1918
        "100.64.0.0/10",  # carrier-grade NAT
        "fc00::/7",  # unique local
        "fec0::/10",  # site-local (deprecated, still seen)
    )
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")

_INSTALL_HINT = (
    "To fill them, install Debian's geoipupdate package, put a free MaxMind account's AccountID "
    "and LicenseKey and 'EditionIDs GeoLite2-City GeoLite2-ASN' in /etc/GeoIP.conf and run "
    "geoipupdate (it writes /var/lib/GeoIP), or copy DB-IP's free IP-to-City Lite and IP-to-ASN "
    "Lite .mmdb files (CC BY 4.0) into one of those paths. egresswatch never downloads anything "
    "itself."
)


@dataclass(frozen=True, slots=True)
class GeoInfo:
    """Where an address is, as far as the databases know; None where they do not say."""

    country: str | None
    """ISO 3166-1 alpha-2 code where the address is (else where it is registered), e.g. ``DE``."""
    city: str | None
    """City name in English, from a City database."""
    asn: int | None
    """Autonomous system number, from an ASN database."""
    as_org: str | None
    """Organisation that holds that autonomous system."""


NO_GEO = GeoInfo(None, None, None, None)
"""The answer for an address no database places (returned as this very object)."""


def placeable(address: IPAddress) -> IPAddress | None:
    """The address to look up for ``address`` (the IPv4 one inside an IPv4-mapped or NAT64
    address), or None for private, CGNAT, loopback, link-local, multicast, reserved and unspecified
    addresses, which no database places."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        elif address in _NAT64:
            address = ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF)
    if (
        address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or any(address in net for net in _UNPLACEABLE)
    ):
        return None
    return address


@dataclass(frozen=True, slots=True)
class _Skipped:
    signature: Signature
    reason: str


class GeoResolver:
    """Country, city and AS lookups from the ``.mmdb`` files found under ``paths``.

    Which databases are used: ``paths`` are searched in order, and the first one holding a City or
    Country database provides country and city, the first one holding an ASN database provides
    asn and as_org. Within one path a City database is preferred over a Country one (it has the
    country too), and of two of the same kind the newer build (DB-IP's monthly files sit side by
    side under dated names). Unreadable, corrupt or unrelated files are skipped and listed in
    ``problems()``; they never stop egresswatch.

    Reloads: at most every ``reload_interval`` seconds (by ``clock``), a lookup first stats the
    files; a file replaced on disk (new inode, mtime or size: geoipupdate renames a new file over
    the old one), added or removed is reopened or dropped, the choice above made again, and the
    cache cleared. ``reload_interval=0`` checks on every lookup. Replace files by renaming: a file
    rewritten in place (``cp`` over it) under a running reader may be read half-written.

    Thread-safe: lookups and reloads are serialised by a lock.
    """

    def __init__(
        self,
        paths: Sequence[Path],
        *,
        reload_interval: float = 60.0,
        cache_size: int = 65536,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._paths = tuple(Path(p) for p in paths)
        self._reload_interval = reload_interval
        self._clock = clock
        self._lock = threading.Lock()
        self._open: dict[Path, OpenDatabase] = {}
        self._skipped: dict[Path, _Skipped] = {}
        self._unlisted: list[str] = []
        self._order: list[list[Path]] = []  # files per search path, as last found
        self._location: OpenDatabase | None = None
        self._asn: OpenDatabase | None = None
        self._closed = False
        self._failed = 0
        self._cached = functools.lru_cache(maxsize=cache_size)(self._resolve)
        # The first scan logs nothing: the caller logs describe(), which says it all in one line.
        self._started = False
        self._rescan()
        self._started = True
        self._next_check = clock() + reload_interval

    @property
    def paths(self) -> tuple[Path, ...]:
        """The search paths, in order."""
        return self._paths

    @property
    def databases(self) -> list[GeoDatabase]:
        """The databases in use: the City or Country one first, then the ASN one."""
        return [db.info for db in (self._location, self._asn) if db is not None]

    @property
    def available(self) -> list[GeoDatabase]:
        """Every usable database found, in search order, whether in use or not."""
        return [self._open[f].info for files in self._order for f in files if f in self._open]

    @property
    def failed_lookups(self) -> int:
        """Lookups that failed on a damaged database (answered ``NO_GEO``), for metrics."""
        return self._failed

    def problems(self) -> list[str]:
        """Paths that could not be listed and files skipped, each with why."""
        skipped = [
            self._skipped[f].reason for files in self._order for f in files if f in self._skipped
        ]
        return [*self._unlisted, *skipped]

    def lookup(self, address: str) -> GeoInfo:
        """Country and city from the City or Country database, asn and as_org from the ASN one.

        ``NO_GEO`` for addresses no database places (see ``placeable``), addresses not in the
        databases, text that is not an address, and after ``close()``. Never raises.
        """
        with self._lock:
            if self._closed:
                return NO_GEO
            now = self._clock()
            if now >= self._next_check:
                self._next_check = now + self._reload_interval
                if self._rescan():
                    self._cached.cache_clear()
            return self._cached(address)

    def describe(self) -> str:
        """One paragraph for the startup log and ``egresswatch geoip status``."""
        with self._lock:
            return self._describe()

    def close(self) -> None:
        """Close the database files; later lookups answer ``NO_GEO``."""
        with self._lock:
            self._closed = True
            self._cached.cache_clear()
            for db in self._open.values():
                db.close()
            self._open.clear()
            self._location = self._asn = None

    def _resolve(self, address: str) -> GeoInfo:
        try:
            ip = placeable(ipaddress.ip_address(address))
        except ValueError:
            return NO_GEO
        if ip is None:
            return NO_GEO
        try:
            place = self._location.record(ip) if self._location else {}
            holder = self._asn.record(ip) if self._asn else {}
        except Exception as exc:
            # A damaged file, or one rewritten in place under the reader, fails in ways the
            # decoder does not promise (InvalidDatabaseError, UnicodeDecodeError ...); a lookup
            # must never take the pipeline down, and the next reload reopens the file.
            self._failed += 1
            log.debug("GeoIP lookup of %s failed: %s", address, exc)
            return NO_GEO
        info = GeoInfo(
            country=_country(place),
            city=_english_name(place.get("city")),
            asn=_typed(holder.get("autonomous_system_number"), int),
            as_org=_typed(holder.get("autonomous_system_organization"), str),
        )
        return NO_GEO if info == NO_GEO else info

    def _rescan(self) -> bool:
        """Bring the open databases in line with the files on disk; True when anything changed."""
        order: list[list[Path]] = []
        unlisted: list[str] = []
        now_there: dict[Path, Signature] = {}
        for _, files, problem in places(self._paths):
            if problem:
                unlisted.append(problem)
            order.append([f for f in files if f not in now_there])  # a file named twice: once
            for file in order[-1]:
                try:
                    now_there[file] = signature(file)
                except OSError:
                    continue  # vanished between listing and stat: gone, as far as we know
        changed = self._forget_changed(now_there)
        for file, sig in now_there.items():
            if file not in self._open and file not in self._skipped:
                changed = True
                self._load(file, sig)
        if self._started:
            for problem in set(unlisted) - set(self._unlisted):
                log.warning("GeoIP: %s", problem)
        self._unlisted = unlisted
        self._order = [[f for f in files if f in now_there] for files in order]
        if changed:
            self._choose()
        return changed

    def _forget_changed(self, now_there: Mapping[Path, Signature]) -> bool:
        """Close and forget files that are gone or are no longer the file we opened."""
        changed = False
        for file, db in list(self._open.items()):
            if now_there.get(file) != db.signature:
                db.close()
                del self._open[file]
                changed = True
        for file, skipped in list(self._skipped.items()):
            if now_there.get(file) != skipped.signature:
                del self._skipped[file]
                changed = True
        return changed

    def _load(self, file: Path, sig: Signature) -> None:
        try:
            self._open[file] = OpenDatabase(file, sig)
        except UnusableDatabase as exc:
            self._skipped[file] = _Skipped(sig, str(exc))
            if self._started:
                log.warning("GeoIP: skipping %s", exc)

    def _choose(self) -> None:
        """Pick the databases to use (see the class docstring) and log the choice."""
        before = self.databases
        by_place = [[self._open[f] for f in files if f in self._open] for files in self._order]
        self._location = _first(by_place, (CITY, COUNTRY))
        self._asn = _first(by_place, (ASN,))
        if self._started and self.databases != before:
            for db in self.databases:
                log.info("GeoIP: using %s", _label(db))
            if not self.databases:
                log.warning("GeoIP: no database in use: %s", self._describe())

    def _describe(self) -> str:
        where = ", ".join(str(p) for p in self._paths) or "(no paths)"
        if self._location is None and self._asn is None:
            text = (
                f"No GeoIP database found in {where}: the country, city, asn and as_org fields of "
                f"flows stay empty. {_INSTALL_HINT}"
            )
            text += _sentence("Skipped", self.problems())
            return text + f" Databases added later are used within {self._reload_interval:g}s."
        text = f"GeoIP: {self._location_use()}; {self._asn_use()}."
        if any(db.database_type.startswith("DBIP") for db in self.databases):
            text += " IP geolocation by DB-IP (https://db-ip.com), CC BY 4.0."
        unused = [str(db.path) for db in self.available if db not in self.databases]
        text += _sentence("Not used (an earlier path or newer build wins)", unused)
        text += _sentence("Skipped", self.problems())
        if self._location is None or self._asn is None:
            text += f" Searched {where}. {_INSTALL_HINT}"
        return text + f" Files replaced on disk are used within {self._reload_interval:g}s."

    def _location_use(self) -> str:
        if self._location is None:
            return "no City or Country database, so country and city stay empty"
        if self._location.info.kind == CITY:
            return f"country and city from {_label(self._location.info)}"
        return f"country from {_label(self._location.info)}, a Country database (no cities)"

    def _asn_use(self) -> str:
        if self._asn is None:
            return "no ASN database, so asn and as_org stay empty"
        return f"asn and as_org from {_label(self._asn.info)}"


def _sentence(lead: str, items: list[str]) -> str:
    return f" {lead}: {'; '.join(items)}." if items else ""


def _first(by_place: list[list[OpenDatabase]], kinds: tuple[str, ...]) -> OpenDatabase | None:
    """The first place's database of one of ``kinds``: the earlier kind, then the newest build."""
    for dbs in by_place:
        fitting = [db for db in dbs if db.info.kind in kinds]
        if fitting:
            return min(
                fitting, key=lambda db: (kinds.index(db.info.kind), -db.info.build_time.timestamp())
            )
    return None


def _label(db: GeoDatabase) -> str:
    return f"{db.database_type} built {db.build_time:%Y-%m-%d} ({db.path})"


def _country(record: Mapping[str, Any]) -> str | None:
    # Where the address is; for some (anycast, satellite, some proxies) the databases know only
    # the country it is registered in, which still says whose network it is.
    for key in ("country", "registered_country"):
        section = record.get(key)
        if isinstance(section, dict) and isinstance(section.get("iso_code"), str):
            return str(section["iso_code"])
    return None


def _english_name(section: object) -> str | None:
    if isinstance(section, dict):
        names = section.get("names")
        if isinstance(names, dict):
            return _typed(names.get("en"), str)
    return None


def _typed(value: object, kind: type[_T]) -> _T | None:
    # bool is an int: an "autonomous_system_number": true in a home-made database is no ASN.
    return value if isinstance(value, kind) and not isinstance(value, bool) else None
