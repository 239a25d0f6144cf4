"""Writing and listing flow records on a real SQLite file and a real PostgreSQL server."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import pytest

from egresswatch.flows.record import Direction, FlowRecord
from egresswatch.store import queries
from egresswatch.store.database import Database
from egresswatch.store.queries import FlowFilter

T0 = 1_732_350_000.0


def flow(uid: str, **fields: Any) -> FlowRecord:
    """A closed egress TCP flow to 93.184.216.34:443 at T0..T0+1; ``fields`` override."""
    values: dict[str, Any] = {
        "uid": uid, "first_seen": T0, "last_seen": T0 + 1.0, "interface": "eth0",
        "direction": Direction.EGRESS, "ip_proto": 6, "protocol": "tcp",
        "src_ip": "10.0.0.2", "src_port": 40000, "dst_ip": "93.184.216.34", "dst_port": 443,
        "packets_out": 6, "bytes_out": 258, "packets_in": 3, "bytes_in": 139,
        "state": "SF", "history": "ShADdFf", "closed": True,
    }  # fmt: skip
    values.update(fields)
    return FlowRecord(**values)


def uids(db: Database, **filter_fields: Any) -> list[str]:
    """uids listed for a filter (no limit unless given), in the order the store returns them."""
    filter_fields.setdefault("limit", 0)
    return [row["uid"] for row in db.flows(FlowFilter(**filter_fields))]


def test_every_field_round_trips(db: Database) -> None:
    records = [
        flow(
            "CRoundTripV4",
            first_seen=1_732_350_000.123456,
            last_seen=1_732_350_042.654321,
            interface="enp3s0f1",
            direction=Direction.INTERNAL,
            ip_proto=17,
            protocol="udp",
            src_ip="172.17.0.5",
            src_port=65535,
            dst_ip="172.17.0.1",
            dst_port=53,
            packets_out=4_000_000_000,
            bytes_out=9_000_000_000_000,  # beyond 32 bits: counters are BIGINT
            packets_in=0,
            bytes_in=0,
            state="S0",
            history="D",
            closed=False,
        ),
        flow(
            "CRoundTripV6",
            last_seen=T0 + 2.0,
            direction=Direction.INGRESS,
            ip_proto=58,
            protocol="icmp6",
            src_ip="2001:db8::1",
            src_port=128,
            dst_ip="fd00::1234:5678:9abc:def0",
            dst_port=129,
            history="S" * 64,
        ),
    ]
    db.write_flows(records)

    rows = {row["uid"]: row for row in db.flows(FlowFilter(limit=0))}
    for rec in records:
        expected = dataclasses.asdict(rec)
        row = rows[rec.uid]
        assert {name: row[name] for name in expected} == expected
        assert row["direction"] == str(rec.direction)
        # Enrichment is not known yet: null, never guessed.
        assert all(row[name] is None for name in row.keys() - expected.keys())


def test_history_longer_than_the_column_is_truncated_not_rejected(db: Database) -> None:
    db.write_flows([flow("CLongHistory", history="ShAD" + "ad" * 100)])
    [row] = db.flows(FlowFilter())
    assert row["history"] == ("ShAD" + "ad" * 100)[:64]


def test_interim_then_final_record_leaves_one_row_with_the_final_values(db: Database) -> None:
    interim = flow(
        "CLongFlow", last_seen=T0 + 60, packets_out=10, bytes_out=1000, packets_in=8,
        bytes_in=9000, state="S1", history="ShADad", closed=False,
    )  # fmt: skip
    final = flow(
        "CLongFlow", last_seen=T0 + 95, packets_out=25, bytes_out=2500, packets_in=20,
        bytes_in=30000, state="SF", history="ShADadFf", closed=True,
    )  # fmt: skip
    db.write_flows([interim, flow("COther", last_seen=T0 + 5)])
    db.write_flows([final])

    rows = {row["uid"]: row for row in db.flows(FlowFilter(limit=0))}
    assert sorted(rows) == ["CLongFlow", "COther"]
    row = rows["CLongFlow"]
    assert row["first_seen"] == T0
    assert (row["last_seen"], row["state"], row["history"], row["closed"]) == (
        T0 + 95,
        "SF",
        "ShADadFf",
        True,
    )
    assert (row["packets_out"], row["bytes_out"], row["packets_in"], row["bytes_in"]) == (
        25,
        2500,
        20,
        30000,
    )
    assert rows["COther"]["last_seen"] == T0 + 5


def test_same_uid_twice_in_one_batch_keeps_the_later_record(db: Database) -> None:
    db.write_flows(
        [
            flow("CTwice", last_seen=T0 + 10, bytes_out=100, closed=False),
            flow("CTwice", last_seen=T0 + 20, bytes_out=200, closed=True),
        ]
    )
    [row] = db.flows(FlowFilter())
    assert (row["last_seen"], row["bytes_out"], row["closed"]) == (T0 + 20, 200, True)


def test_newest_activity_is_listed_first(db: Database) -> None:
    db.write_flows(
        [
            flow("CMiddle", first_seen=T0, last_seen=T0 + 50),
            flow("COldest", first_seen=T0 + 1, last_seen=T0 + 2),
            flow("CNewest", first_seen=T0 - 100, last_seen=T0 + 90),  # started first, still active
        ]
    )
    assert uids(db) == ["CNewest", "CMiddle", "COldest"]


def test_limit_keeps_the_newest_and_zero_means_all(db: Database) -> None:
    db.write_flows([flow(f"C{i:03d}", last_seen=T0 + i) for i in range(60)])

    assert uids(db, limit=3) == ["C059", "C058", "C057"]
    assert len(uids(db, limit=FlowFilter().limit)) == 50
    everything = uids(db, limit=0)
    assert everything == [f"C{i:03d}" for i in reversed(range(60))]


def test_since_and_until_select_flows_active_in_the_window(db: Database) -> None:
    db.write_flows(
        [
            flow("CBefore", first_seen=T0, last_seen=T0 + 9),
            flow("CEndsAtSince", first_seen=T0, last_seen=T0 + 10),
            flow("CSpans", first_seen=T0, last_seen=T0 + 100),
            flow("CInside", first_seen=T0 + 12, last_seen=T0 + 15),
            flow("CStartsAtUntil", first_seen=T0 + 20, last_seen=T0 + 30),
            flow("CAfter", first_seen=T0 + 21, last_seen=T0 + 30),
        ]
    )
    assert set(uids(db, since=T0 + 10)) == {
        "CEndsAtSince", "CSpans", "CInside", "CStartsAtUntil", "CAfter",
    }  # fmt: skip
    assert set(uids(db, until=T0 + 20)) == {
        "CBefore", "CEndsAtSince", "CSpans", "CInside", "CStartsAtUntil",
    }  # fmt: skip
    assert set(uids(db, since=T0 + 10, until=T0 + 20)) == {
        "CEndsAtSince", "CSpans", "CInside", "CStartsAtUntil",
    }  # fmt: skip


def test_direction_filter(db: Database) -> None:
    db.write_flows([flow(f"C{d.value}", direction=d) for d in Direction])
    for d in Direction:
        assert uids(db, direction=str(d)) == [f"C{d.value}"]


def test_protocol_filter_ignores_case(db: Database) -> None:
    db.write_flows(
        [
            flow("CTcp", ip_proto=6, protocol="tcp"),
            flow("CUdp", ip_proto=17, protocol="udp"),
            flow("CIcmp", ip_proto=1, protocol="icmp"),
        ]
    )
    assert uids(db, protocol="udp") == ["CUdp"]
    assert uids(db, protocol="TCP") == ["CTcp"]
    assert uids(db, protocol="icmp6") == []


def test_port_filter_matches_the_responder_port_only(db: Database) -> None:
    db.write_flows(
        [
            flow("CHttps", src_port=53, dst_port=443),
            flow("CDns", src_port=443, dst_port=53),
        ]
    )
    assert uids(db, port=443) == ["CHttps"]
    assert uids(db, port=53) == ["CDns"]
    assert uids(db, port=80) == []


DESTINATIONS = {
    "CV4Exact": "93.184.216.34",
    "CV4SameNet": "93.184.216.35",
    "CV4OtherNet": "93.184.217.1",
    "CV4Low": "0.0.0.1",
    "CV4High": "255.255.255.254",
    "CV6Exact": "2606:2800:220:1:248:1893:25c8:1946",
    "CV6SameNet": "2606:2800:220:1::1",
    "CV6OtherNet": "2606:2801::1",
    "CV6Low": "::2",
    "CV6High": "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe",
}
V4 = {uid for uid in DESTINATIONS if uid.startswith("CV4")}
V6 = {uid for uid in DESTINATIONS if uid.startswith("CV6")}


@pytest.fixture
def by_destination(db: Database) -> Database:
    db.write_flows([flow(uid, dst_ip=ip) for uid, ip in DESTINATIONS.items()])
    return db


@pytest.mark.parametrize(
    ("dst", "expected"),
    [
        ("93.184.216.34", {"CV4Exact"}),
        ("93.184.216.34/32", {"CV4Exact"}),
        ("93.184.216.0/24", {"CV4Exact", "CV4SameNet"}),
        ("93.184.0.0/16", {"CV4Exact", "CV4SameNet", "CV4OtherNet"}),
        ("93.184.216.1/24", {"CV4Exact", "CV4SameNet"}),  # host bits set: still the /24
        ("10.0.0.0/8", set()),
        ("2606:2800:220:1:248:1893:25c8:1946", {"CV6Exact"}),
        ("2606:2800:220:1::/64", {"CV6Exact", "CV6SameNet"}),
        ("2606:2800::/32", {"CV6Exact", "CV6SameNet"}),
        ("2606::/16", {"CV6Exact", "CV6SameNet", "CV6OtherNet"}),
        ("2001:db8::/32", set()),
    ],
)
def test_dst_filter_address_and_cidr(
    by_destination: Database, dst: str, expected: set[str]
) -> None:
    assert set(uids(by_destination, dst=dst)) == expected


def test_an_ipv4_cidr_never_matches_ipv6_flows(by_destination: Database) -> None:
    assert set(uids(by_destination, dst="0.0.0.0/0")) == V4
    assert set(uids(by_destination, dst="0.0.0.0/1")) == V4 - {"CV4High"}


def test_an_ipv6_cidr_outside_the_mapped_range_never_matches_ipv4_flows(
    by_destination: Database,
) -> None:
    assert set(uids(by_destination, dst="8000::/1")) == {"CV6High"}
    assert set(uids(by_destination, dst="::/8")) & V6 == {"CV6Low"}


@pytest.mark.parametrize(
    ("dst", "expected"),
    [
        ("::/0", V6),  # every IPv6 flow, and only those
        ("::/8", {"CV6Low"}),
    ],
)
def test_an_ipv6_cidr_never_matches_ipv4_flows(
    by_destination: Database, dst: str, expected: set[str]
) -> None:
    assert set(uids(by_destination, dst=dst)) == expected


def test_an_ipv4_cidr_never_matches_an_ipv4_mapped_ipv6_flow(db: Database) -> None:
    db.write_flows(
        [
            flow("CV4", dst_ip="93.184.216.34"),
            flow("CV6Mapped", dst_ip="::ffff:93.184.216.34"),
        ]
    )
    assert uids(db, dst="93.184.216.0/24") == ["CV4"]


def test_filters_combine(db: Database) -> None:
    db.write_flows(
        [
            flow("CMatch", dst_ip="198.51.100.1", dst_port=853, last_seen=T0 + 50),
            flow("CWrongPort", dst_ip="198.51.100.1", dst_port=53, last_seen=T0 + 50),
            flow("CWrongDst", dst_ip="198.51.100.8", dst_port=853, last_seen=T0 + 50),
            flow("CTooOld", dst_ip="198.51.100.1", dst_port=853, last_seen=T0 + 5),
            flow("CIngress", dst_ip="198.51.100.1", dst_port=853, direction=Direction.INGRESS,
                 last_seen=T0 + 50),
        ]
    )  # fmt: skip
    assert uids(db, dst="198.51.100.0/29", port=853, since=T0 + 10, direction="egress") == [
        "CMatch"
    ]


def test_a_batch_of_5000_records_is_written_in_one_call(db: Database) -> None:
    batch = [
        flow(f"CBatch{i:05d}", last_seen=T0 + i, dst_ip=f"198.51.{i // 256 % 256}.{i % 256}")
        for i in range(5000)
    ]
    started = time.monotonic()
    db.write_flows(batch)
    assert time.monotonic() - started < 20

    listed = uids(db)
    assert len(listed) == 5000
    assert listed[0] == "CBatch04999" and listed[-1] == "CBatch00000"
    assert uids(db, dst="198.51.19.135") == ["CBatch04999"]
    assert len(uids(db, dst="198.51.0.0/24")) == 256


def test_a_cidr_holding_many_flows_pages_newest_first_like_a_narrow_one(db: Database) -> None:
    """Past ``queries._MANY`` flows in a range the query walks the time index instead of
    sorting the range: the pages must be the same flows in the same order either way."""
    many = queries._MANY + 500
    db.write_flows([
        flow(f"CWide{i:06d}", last_seen=T0 + i % 977, dst_ip=f"198.51.{i // 250 % 200}.{i % 250}",
             dst_port=443 if i % 3 else 80)
        for i in range(many)
    ] + [flow("COther", last_seen=T0 + 5000, dst_ip="203.0.113.9"),
         flow("CV6", last_seen=T0 + 5000, dst_ip="2001:db8::9")])  # fmt: skip
    everything = list(db.flows(FlowFilter(limit=0)))
    for dst in ("198.51.0.0/16", "0.0.0.0/0", "198.51.7.0/24", "::/0"):
        low, high = queries.address_range(dst)
        expected = [f["uid"] for f in everything
                    if low <= queries.address_key(f["dst_ip"]) <= high
                    and (":" in f["dst_ip"]) == (":" in dst)]  # fmt: skip
        pages, before = [], None
        for _ in range(3):  # three pages through the cursor, as the API pages
            page = list(db.flows(FlowFilter(dst=dst, limit=100, before=before)))
            pages += [f["uid"] for f in page]
            if len(page) < 100:
                break
            before = (page[-1]["last_seen"], page[-1]["uid"])
        assert pages == expected[: len(pages)] and len(pages) == min(300, len(expected)), dst
    ports = [f["uid"] for f in db.flows(FlowFilter(dst="198.51.0.0/16", port=80, limit=100))]
    assert ports == [f["uid"] for f in everything
                     if f["uid"].startswith("CWide") and f["dst_port"] == 80][:100]  # fmt: skip
