"""Small GeoIP databases of our own, written with mmdb_writer, in MaxMind's and DB-IP's layout.

Documentation ranges (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32) are what
tests map: no real database places them, and egresswatch looks them up like any public address.

    write_mmdb(tmp_path / "dbip-city-lite.mmdb", "DBIP-City-Lite",
               {"192.0.2.0/24": location("CN"), "198.51.100.0/24": location("DE", "Berlin")})
    write_mmdb(tmp_path / "dbip-asn-lite.mmdb", "DBIP-ASN-Lite (compat=GeoLite2-ASN)",
               {"198.51.100.0/24": autonomous_system(64500, "Example Networks")})
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import netaddr
from mmdb_writer import MMDBWriter


def location(country: str, city: str | None = None) -> dict[str, Any]:
    """A City or Country database record (MaxMind's and DB-IP's lite layout)."""
    record: dict[str, Any] = {"country": {"iso_code": country, "names": {"en": country}}}
    if city is not None:
        record["city"] = {"names": {"en": city}}
    return record


def autonomous_system(number: int, organisation: str | None = None) -> dict[str, Any]:
    """An ASN database record (GeoLite2-ASN's and DB-IP ASN lite's layout)."""
    record: dict[str, Any] = {"autonomous_system_number": number}
    if organisation is not None:
        record["autonomous_system_organization"] = organisation
    return record


class _Writer(MMDBWriter):  # type: ignore[misc]
    """MMDBWriter with a chosen build time (it always stamps "now")."""

    def __init__(self, built: datetime | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._built = built

    def _build_meta(self) -> dict[str, Any]:
        meta: dict[str, Any] = super()._build_meta()
        if self._built is not None:
            meta["build_epoch"] = int(self._built.timestamp())
        return meta


def write_mmdb(
    path: Path,
    database_type: str,
    records: Mapping[str, Mapping[str, Any]],
    *,
    ip_version: int = 6,
    built: datetime | None = None,
) -> Path:
    """Write a database mapping each network (CIDR) to its record; returns ``path``.

    Written to a temporary name and renamed into place, as geoipupdate does, so a resolver
    watching the directory never sees half a file. An IPv6 database also holds the IPv4 networks
    (at ::a.b.c.d, where readers look IPv4 addresses up).
    """
    writer = _Writer(
        built,
        ip_version=ip_version,
        database_type=database_type,
        languages=["en"],
        description=f"egresswatch test database ({database_type})",
        ipv4_compatible=ip_version == 6,
        int_type="u32",
    )
    for network, record in records.items():
        writer.insert_network(netaddr.IPSet([network]), dict(record))
    temporary = path.with_name(f".{path.name}.tmp")
    writer.to_db_file(str(temporary))
    os.replace(temporary, path)
    return path


MAXMIND_TEST_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "geoip-test"
"""MaxMind's official test databases (GeoIP2-City-Test.mmdb ... GeoLite2-ASN-Test.mmdb)."""


def maxmind_test_db(name: str, directory: Path, as_name: str | None = None) -> Path:
    """Copy MaxMind's test database ``name`` (e.g. ``GeoLite2-ASN-Test``) into ``directory``,
    under ``as_name`` when given; returns the copy (writable, unlike the originals)."""
    source = MAXMIND_TEST_DATA / f"{name}.mmdb"
    if not source.exists():
        raise FileNotFoundError(f"MaxMind's test databases are missing: expected {source}")
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / (as_name or source.name)
    target.write_bytes(source.read_bytes())
    return target
