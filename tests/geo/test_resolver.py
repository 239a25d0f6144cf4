"""GeoResolver on real .mmdb files: MaxMind's official test databases and small ones of our own.

Nothing is mocked: each test lays out database files in a temporary directory (copied, renamed,
replaced with os.replace as geoipupdate does, or corrupted) and points a resolver at it; time is
an injected clock.
"""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from egresswatch.geo.databases import database_kind
from egresswatch.geo.resolver import NO_GEO, GeoInfo, GeoResolver
from tests.geo.mmdb import autonomous_system, location, maxmind_test_db, write_mmdb

INTERVAL = 60.0


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def resolver(*paths: Path, clock: Clock | None = None) -> GeoResolver:
    return GeoResolver(list(paths), reload_interval=INTERVAL, clock=clock or Clock())


@pytest.fixture
def city_and_asn(tmp_path: Path) -> Path:
    maxmind_test_db("GeoLite2-City-Test", tmp_path)
    maxmind_test_db("GeoLite2-ASN-Test", tmp_path)
    return tmp_path


# ---- lookups against MaxMind's test databases ----


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("175.16.199.0", GeoInfo("CN", "Changchun", None, None)),
        ("175.16.199.255", GeoInfo("CN", "Changchun", None, None)),
        ("81.2.69.142", GeoInfo("GB", "London", None, None)),
        ("89.160.20.112", GeoInfo("SE", "Linköping", 29518, "Bredband2 AB")),
        ("216.160.83.56", GeoInfo("US", "Milton", 209, None)),
        ("2001:480::1", GeoInfo("US", "San Diego", None, None)),
        ("::ffff:81.2.69.142", GeoInfo("GB", "London", None, None)),  # IPv4-mapped
        ("64:ff9b::5102:458e", GeoInfo("GB", "London", None, None)),  # NAT64 of 81.2.69.142
    ],
)
def test_city_and_asn(city_and_asn: Path, address: str, expected: GeoInfo) -> None:
    geo = resolver(city_and_asn)
    assert geo.lookup(address) == expected
    assert [db.kind for db in geo.databases] == ["city", "asn"]
    assert geo.problems() == []


@pytest.mark.parametrize("name", ["GeoIP2-City-Test", "GeoLite2-City-Test"])
def test_both_city_databases(tmp_path: Path, name: str) -> None:
    geo = resolver(maxmind_test_db(name, tmp_path))  # a file path, not a directory
    assert geo.lookup("175.16.199.7") == GeoInfo("CN", "Changchun", None, None)
    assert geo.lookup("2001:480:10::1") == GeoInfo("US", "San Diego", None, None)
    assert geo.databases[0].database_type == name.removesuffix("-Test")


@pytest.mark.parametrize("name", ["GeoIP2-Country-Test", "GeoLite2-Country-Test"])
def test_country_database_has_no_city(tmp_path: Path, name: str) -> None:
    geo = resolver(maxmind_test_db(name, tmp_path))
    assert geo.lookup("81.2.69.142") == GeoInfo("GB", None, None, None)
    assert geo.lookup("89.160.20.112") == GeoInfo("SE", None, None, None)
    assert geo.databases[0].kind == "country"
    assert "no ASN database" in geo.describe()


def test_asn_database_alone(tmp_path: Path) -> None:
    geo = resolver(maxmind_test_db("GeoLite2-ASN-Test", tmp_path))
    assert geo.lookup("89.160.20.112") == GeoInfo(None, None, 29518, "Bredband2 AB")
    assert "no City or Country database" in geo.describe()


@pytest.mark.parametrize(
    "address",
    [
        "10.1.2.3",
        "172.16.5.4",
        "192.168.1.1",  # RFC 1918
        "100.64.0.1",  # CGNAT
        "127.0.0.1",
        "::1",
        "169.254.169.254",
        "fe80::1",
        "fc00::1",
        "fd12:3456::1",  # ULA
        "224.0.0.251",
        "ff02::fb",
        "239.255.255.250",
        "0.0.0.0",
        "::",
        "0.1.2.3",
        "240.0.0.1",
        "255.255.255.255",
        "::ffff:10.0.0.1",
    ],
)
def test_addresses_without_a_place(tmp_path: Path, address: str) -> None:
    # A database of our own that would place them proves they are never looked up.
    everything = {"0.0.0.0/1": location("XX"), "128.0.0.0/1": location("XX")}
    everything |= {"::/1": location("XX"), "8000::/1": location("XX")}
    geo = resolver(write_mmdb(tmp_path / "all.mmdb", "GeoLite2-Country", everything))
    assert geo.lookup("81.2.69.142") == GeoInfo("XX", None, None, None)
    assert geo.lookup(address) is NO_GEO


@pytest.mark.parametrize("text", ["", "not-an-address", "1.2.3", "1.2.3.4.5", "2001:db8::g", " "])
def test_text_that_is_no_address(city_and_asn: Path, text: str) -> None:
    assert resolver(city_and_asn).lookup(text) is NO_GEO


def test_unknown_public_address(city_and_asn: Path) -> None:
    geo = resolver(city_and_asn)
    assert geo.lookup("203.0.113.9") is NO_GEO
    assert geo.lookup("2001:db8::1") is NO_GEO


# ---- which database is used ----


def test_kind_from_metadata_not_file_name(tmp_path: Path) -> None:
    maxmind_test_db("GeoLite2-ASN-Test", tmp_path, as_name="GeoLite2-City.mmdb")
    maxmind_test_db("GeoIP2-City-Test", tmp_path, as_name="GeoLite2-ASN.mmdb")
    geo = resolver(tmp_path)
    kinds = {db.path.name: (db.kind, db.database_type) for db in geo.databases}
    assert kinds == {
        "GeoLite2-City.mmdb": ("asn", "GeoLite2-ASN"),
        "GeoLite2-ASN.mmdb": ("city", "GeoIP2-City"),
    }
    assert geo.lookup("89.160.20.112") == GeoInfo("SE", "Linköping", 29518, "Bredband2 AB")


def test_city_preferred_over_country_in_the_same_place(tmp_path: Path) -> None:
    maxmind_test_db("GeoLite2-Country-Test", tmp_path, as_name="a-country.mmdb")  # sorts first
    maxmind_test_db("GeoLite2-City-Test", tmp_path, as_name="b-city.mmdb")
    geo = resolver(tmp_path)
    assert [db.path.name for db in geo.databases] == ["b-city.mmdb"]
    assert geo.lookup("81.2.69.142").city == "London"
    assert "Not used" in geo.describe() and "a-country.mmdb" in geo.describe()


def test_earlier_path_wins_over_a_city_database_later(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    maxmind_test_db("GeoLite2-Country-Test", first)
    maxmind_test_db("GeoLite2-City-Test", second)
    maxmind_test_db("GeoLite2-ASN-Test", second)
    geo = resolver(first, second)
    assert [db.database_type for db in geo.databases] == ["GeoLite2-Country", "GeoLite2-ASN"]
    assert geo.lookup("89.160.20.112") == GeoInfo("SE", None, 29518, "Bredband2 AB")
    assert [db.database_type for db in geo.available] == [
        "GeoLite2-Country",
        "GeoLite2-ASN",
        "GeoLite2-City",
    ]


def test_newest_build_wins_in_the_same_place(tmp_path: Path) -> None:
    # DB-IP's monthly files keep dated names; an operator may leave last month's beside it.
    net = "198.51.100.0/24"
    write_mmdb(
        tmp_path / "dbip-city-lite-2026-11.mmdb",
        "DBIP-City-Lite",
        {net: location("FR", "Paris")},
        built=datetime(2026, 11, 1, tzinfo=UTC),
    )
    write_mmdb(
        tmp_path / "dbip-city-lite-2026-10.mmdb",
        "DBIP-City-Lite",
        {net: location("DE", "Berlin")},
        built=datetime(2026, 10, 1, tzinfo=UTC),
    )
    geo = resolver(tmp_path)
    assert geo.lookup("198.51.100.1") == GeoInfo("FR", "Paris", None, None)
    assert geo.databases[0].build_time == datetime(2026, 11, 1, tzinfo=UTC)


def test_dbip_style_databases_of_our_own(tmp_path: Path) -> None:
    write_mmdb(
        tmp_path / "dbip-city-lite.mmdb",
        "DBIP-City-Lite",
        {
            "192.0.2.0/24": location("CN"),
            "198.51.100.0/24": location("DE", "Berlin"),
            "2001:db8::/32": location("NL", "Amsterdam"),
        },
    )
    write_mmdb(
        tmp_path / "dbip-asn-lite.mmdb",
        "DBIP-ASN-Lite (compat=GeoLite2-ASN)",
        {
            "198.51.100.0/24": autonomous_system(64500, "Example Networks"),
            "2001:db8::/32": autonomous_system(64501),
        },
    )
    geo = resolver(tmp_path)
    assert geo.lookup("192.0.2.77") == GeoInfo("CN", None, None, None)
    assert geo.lookup("198.51.100.9") == GeoInfo("DE", "Berlin", 64500, "Example Networks")
    assert geo.lookup("2001:db8:1::5") == GeoInfo("NL", "Amsterdam", 64501, None)
    assert geo.lookup("203.0.113.1") is NO_GEO
    assert [(db.kind, db.ip_version) for db in geo.databases] == [("city", 6), ("asn", 6)]
    assert "DB-IP" in geo.describe() and "CC BY 4.0" in geo.describe()


def test_ipv4_only_database_and_an_ipv6_address(tmp_path: Path) -> None:
    geo = resolver(
        write_mmdb(
            tmp_path / "v4.mmdb", "GeoLite2-Country", {"192.0.2.0/24": location("CN")}, ip_version=4
        )
    )
    assert geo.databases[0].ip_version == 4
    assert geo.lookup("192.0.2.1").country == "CN"
    assert geo.lookup("2001:db8::1") is NO_GEO


def test_unrelated_database_type_is_skipped(tmp_path: Path) -> None:
    write_mmdb(tmp_path / "anon.mmdb", "GeoIP2-Anonymous-IP", {"192.0.2.0/24": {"is_vpn": True}})
    geo = resolver(tmp_path)
    assert geo.databases == []
    assert geo.problems() == [
        f"{tmp_path / 'anon.mmdb'}: database type 'GeoIP2-Anonymous-IP' has no country, city "
        "or ASN data"
    ]


@pytest.mark.parametrize(
    ("database_type", "kind"),
    [
        ("GeoLite2-City", "city"),
        ("GeoIP2-City", "city"),
        ("GeoIP2-City-Europe", "city"),
        ("GeoIP2-Enterprise", "city"),
        ("DBIP-City-Lite", "city"),
        ("DBIP-Location-ISP (compat=Enterprise)", "city"),
        ("GeoLite2-Country", "country"),
        ("GeoIP2-Country", "country"),
        ("DBIP-Country-Lite", "country"),
        ("GeoLite2-ASN", "asn"),
        ("DBIP-ASN-Lite (compat=GeoLite2-ASN)", "asn"),
        ("GeoIP2-ISP", "asn"),
        ("GeoIP2-Anonymous-IP", None),
        ("GeoIP2-Connection-Type", None),
        ("GeoIP2-Domain", None),
        ("", None),
    ],
)
def test_database_kind(database_type: str, kind: str | None) -> None:
    assert database_kind(database_type) == kind


# ---- damaged files and no files ----


def test_corrupt_file_is_skipped_not_fatal(tmp_path: Path) -> None:
    corrupt = tmp_path / "GeoLite2-City.mmdb"
    corrupt.write_bytes(os.urandom(4096))
    (tmp_path / "empty.mmdb").write_bytes(b"")
    maxmind_test_db("GeoLite2-ASN-Test", tmp_path)
    geo = resolver(tmp_path)
    assert [db.kind for db in geo.databases] == ["asn"]
    assert geo.lookup("89.160.20.112") == GeoInfo(None, None, 29518, "Bredband2 AB")
    problems = geo.problems()
    assert len(problems) == 2
    assert problems[0].startswith(f"{corrupt}: not a valid MaxMind DB")
    assert "Skipped" in geo.describe() and str(corrupt) in geo.describe()


def test_no_databases(tmp_path: Path) -> None:
    geo = resolver(tmp_path / "empty", tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    for address in ("81.2.69.142", "89.160.20.112", "2001:480::1", "10.0.0.1"):
        assert geo.lookup(address) is NO_GEO
    assert geo.databases == [] and geo.problems() == []
    text = geo.describe()
    assert text.startswith(f"No GeoIP database found in {tmp_path / 'empty'}, ")
    for hint in ("geoipupdate", "GeoLite2-City", "GeoLite2-ASN", "/var/lib/GeoIP", "DB-IP"):
        assert hint in text
    assert "CC BY 4.0" in text and "never downloads" in text


def test_closed_resolver_answers_nothing(city_and_asn: Path) -> None:
    geo = resolver(city_and_asn)
    assert geo.lookup("81.2.69.142").country == "GB"
    geo.close()
    assert geo.lookup("81.2.69.142") is NO_GEO
    assert geo.databases == []


# ---- databases replaced, added and removed while running ----


def test_database_replaced_on_disk_is_picked_up(tmp_path: Path, clock: Clock) -> None:
    live = tmp_path / "GeoIP"
    maxmind_test_db("GeoLite2-City-Test", live, as_name="GeoLite2-City.mmdb")
    geo = resolver(live, clock=clock)
    assert geo.lookup("81.2.69.142") == GeoInfo("GB", "London", None, None)

    # What geoipupdate does: write the new edition beside it, rename it over the old one.
    update = write_mmdb(
        tmp_path / "download.mmdb", "GeoLite2-City", {"81.2.69.0/24": location("FR", "Paris")}
    )
    os.replace(update, live / "GeoLite2-City.mmdb")

    clock.now += INTERVAL - 1  # not yet: the old file (still open) and the cache answer
    assert geo.lookup("81.2.69.142") == GeoInfo("GB", "London", None, None)
    assert geo.lookup("175.16.199.1").country == "CN"
    clock.now += 1
    assert geo.lookup("81.2.69.142") == GeoInfo("FR", "Paris", None, None)
    assert geo.lookup("175.16.199.1") is NO_GEO  # not in the new edition
    assert geo.databases[0].database_type == "GeoLite2-City"


def test_database_rewritten_in_place_is_picked_up(tmp_path: Path, clock: Clock) -> None:
    target = maxmind_test_db("GeoLite2-City-Test", tmp_path)
    geo = resolver(tmp_path, clock=clock)
    assert geo.lookup("81.2.69.142").city == "London"
    shutil.copyfile(maxmind_test_db("GeoLite2-Country-Test", tmp_path / "new"), target)
    clock.now += INTERVAL
    assert geo.lookup("81.2.69.142") == GeoInfo("GB", None, None, None)
    assert geo.databases[0].kind == "country"


def test_database_appearing_later_is_picked_up(tmp_path: Path, clock: Clock) -> None:
    geo = resolver(tmp_path / "GeoIP", clock=clock)  # not even created yet
    assert geo.lookup("89.160.20.112") is NO_GEO
    maxmind_test_db("GeoLite2-ASN-Test", tmp_path / "GeoIP")
    clock.now += INTERVAL / 2
    assert geo.lookup("89.160.20.112") is NO_GEO  # answered from the cache, not yet checked
    clock.now += INTERVAL / 2
    assert geo.lookup("89.160.20.112") == GeoInfo(None, None, 29518, "Bredband2 AB")
    maxmind_test_db("GeoLite2-City-Test", tmp_path / "GeoIP")
    clock.now += INTERVAL
    assert geo.lookup("89.160.20.112") == GeoInfo("SE", "Linköping", 29518, "Bredband2 AB")
    assert not geo.describe().startswith("No GeoIP database")


def test_database_removed_is_dropped(city_and_asn: Path, clock: Clock) -> None:
    geo = resolver(city_and_asn, clock=clock)
    assert geo.lookup("89.160.20.112").asn == 29518
    (city_and_asn / "GeoLite2-ASN-Test.mmdb").unlink()
    clock.now += INTERVAL
    assert geo.lookup("89.160.20.112") == GeoInfo("SE", "Linköping", None, None)
    assert [db.kind for db in geo.databases] == ["city"]


def test_corrupt_file_replaced_by_a_good_one(tmp_path: Path, clock: Clock) -> None:
    broken = tmp_path / "GeoLite2-City.mmdb"
    broken.write_bytes(b"\x00" * 1000)
    geo = resolver(tmp_path, clock=clock)
    assert len(geo.problems()) == 1
    clock.now += INTERVAL
    assert geo.lookup("81.2.69.142") is NO_GEO  # checked again: same file, still skipped
    assert len(geo.problems()) == 1
    os.replace(maxmind_test_db("GeoLite2-City-Test", tmp_path / "new"), broken)
    clock.now += INTERVAL
    assert geo.lookup("81.2.69.142").city == "London"
    assert geo.problems() == []


def test_zero_interval_checks_on_every_lookup(tmp_path: Path, clock: Clock) -> None:
    geo = GeoResolver([tmp_path], reload_interval=0, clock=clock)
    assert geo.lookup("81.2.69.142") is NO_GEO
    maxmind_test_db("GeoLite2-Country-Test", tmp_path)
    assert geo.lookup("81.2.69.142").country == "GB"


def test_reload_is_logged(tmp_path: Path, clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    geo = resolver(tmp_path, clock=clock)
    maxmind_test_db("GeoLite2-City-Test", tmp_path)
    (tmp_path / "bad.mmdb").write_bytes(b"junk")
    clock.now += INTERVAL
    with caplog.at_level("INFO", logger="egresswatch.geo"):
        geo.lookup("81.2.69.142")
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("GeoIP: using GeoLite2-City built ") for m in messages)
    assert any(m.startswith(f"GeoIP: skipping {tmp_path / 'bad.mmdb'}") for m in messages)
