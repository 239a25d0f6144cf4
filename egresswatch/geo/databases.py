"""GeoIP database files: where they are, what they hold, and an open one's records.

A database is identified by the ``database_type`` in its metadata, never by its file name: DB-IP's
monthly files are named ``dbip-city-lite-2026-11.mmdb`` and an operator may rename anything.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import maxminddb
from maxminddb.reader import Metadata

CITY = "city"
COUNTRY = "country"
ASN = "asn"

# Words of a database_type, checked in this order, and the kind they mean. MaxMind: GeoIP2-City,
# GeoLite2-Country, GeoLite2-ASN, GeoIP2-ISP, GeoIP2-Enterprise; DB-IP: DBIP-City-Lite,
# DBIP-Country-Lite, "DBIP-ASN-Lite (compat=GeoLite2-ASN)", "DBIP-Location-ISP (compat=Enterprise)".
_KIND_WORDS = (
    ("asn", ASN),
    ("city", CITY),
    ("location", CITY),
    ("enterprise", CITY),
    ("country", COUNTRY),
    ("isp", ASN),
)

Signature = tuple[int, int, int, int, int]
"""(device, inode, mtime, ctime, size) of a file, times in ns. geoipupdate renames a new file over
the old one, which changes the inode even when size and time happen to match; ctime also changes
on chmod, so a file skipped as unreadable is tried again once its permissions are fixed."""


@dataclass(frozen=True, slots=True)
class GeoDatabase:
    """One usable GeoIP database file, as its metadata describes it."""

    path: Path
    """The file (as found: a symlink stays a symlink)."""
    kind: str
    """``city``, ``country`` or ``asn``: what egresswatch reads from it."""
    database_type: str
    """The metadata's own name for it: ``GeoLite2-City``, ``DBIP-City-Lite``."""
    build_time: datetime
    """When the vendor built it (UTC): how current the data is."""
    ip_version: int
    """4 for an IPv4-only database (IPv6 addresses are then not found), 6 for both."""


class UnusableDatabase(Exception):  # noqa: N818 - a reason to skip a file, not a failure
    """A file that cannot serve lookups; the message says why, for ``problems()``."""


def database_kind(database_type: str) -> str | None:
    """``city``, ``country`` or ``asn`` for a metadata ``database_type``; None for databases
    with none of those (anonymous-IP, connection-type, domain)."""
    words = set(re.findall(r"[a-z0-9]+", database_type.lower()))
    return next((kind for word, kind in _KIND_WORDS if word in words), None)


def signature(path: Path) -> Signature:
    """Identity of the file now at ``path`` (following symlinks). Raises OSError."""
    st = path.stat()
    return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size)


def places(paths: Sequence[Path]) -> Iterator[tuple[Path, list[Path], str | None]]:
    """Each search path with the database files in it, and why it could not be listed (or None).

    A directory holds every ``*.mmdb`` in it (not hidden files: editors' and downloaders' temporary
    copies), sorted by name; a file path is itself, whatever its name, as the operator named it; a
    missing path holds nothing and is not a problem (the defaults rarely all exist).
    """
    for place in paths:
        try:
            is_dir = place.is_dir()
            exists = is_dir or place.exists()
        except OSError as exc:  # EACCES on a parent: pathlib only swallows "not there"
            yield place, [], f"{place}: cannot look at it: {exc.strerror}"
            continue
        if not is_dir:
            yield place, [place] if exists else [], None
            continue
        try:
            names = sorted(os.listdir(place))
        except OSError as exc:
            yield place, [], f"{place}: cannot list: {exc.strerror}"
            continue
        files = [place / n for n in names if n.endswith(".mmdb") and not n.startswith(".")]
        yield place, [f for f in files if _is_file(f)], None


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:
        return False


class OpenDatabase:
    """An open database file: what it is, and its raw records.

    Records are read with maxminddb directly rather than through geoip2's readers: those refuse a
    database whose type does not contain "City", "Country" or "GeoLite2-ASN" (DB-IP's
    "DBIP-Location", own databases), and build a full model object per lookup that we do not need.
    The C extension memory-maps the file, so a file replaced by rename keeps serving until closed.
    """

    def __init__(self, path: Path, signature: Signature) -> None:
        """Open and identify ``path``. Raises UnusableDatabase saying why it cannot be used."""
        try:
            reader = maxminddb.open_database(path)
        except OSError as exc:
            raise UnusableDatabase(f"{path}: cannot read: {exc.strerror or exc}") from exc
        except Exception as exc:
            # InvalidDatabaseError as documented, but odd files also raise ValueError and others:
            # whatever a file in the search path holds, it must not stop egresswatch.
            raise UnusableDatabase(
                f"{path}: not a valid MaxMind DB (.mmdb) file: damaged, truncated or another format"
            ) from exc
        try:
            self.info = _identify(path, reader.metadata())
        except UnusableDatabase:
            reader.close()
            raise
        except Exception as exc:  # metadata without the fields every MaxMind DB has
            reader.close()
            raise UnusableDatabase(f"{path}: damaged MaxMind DB metadata: {exc}") from exc
        self.signature = signature
        self._reader = reader

    def record(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> Mapping[str, Any]:
        """The record for ``address``, empty when it is not in the database (or when an IPv6
        address meets an IPv4-only one). Raises maxminddb.InvalidDatabaseError for a damaged
        file."""
        if address.version == 6 and self.info.ip_version == 4:
            return {}
        found = self._reader.get(address)
        return found if isinstance(found, dict) else {}

    def close(self) -> None:
        self._reader.close()


def _identify(path: Path, meta: Metadata) -> GeoDatabase:
    database_type = str(meta.database_type)
    kind = database_kind(database_type)
    if kind is None:
        raise UnusableDatabase(
            f"{path}: database type {database_type!r} has no country, city or ASN data"
        )
    return GeoDatabase(
        path=path,
        kind=kind,
        database_type=database_type,
        build_time=datetime.fromtimestamp(int(meta.build_epoch), tz=UTC),
        ip_version=int(meta.ip_version),
    )
