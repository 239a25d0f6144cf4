"""Conformance with Zeek's conn.log on the peer captures (../shared/peers).

For every case with a Zeek conn.log: the same connections (5-tuple), the same per-direction packet
counts and IP bytes, and the same conn_state. Deliberate differences, each asserted below:
- dns-corrupt-checksum: Zeek drops packets with bad UDP/TCP checksums from its counts (unless run
  with -C). egresswatch counts them: on a capturing host, checksum offload makes every locally sent
  packet look corrupt, so dropping them would hide exactly the egress we exist to see.
- protocol: Zeek calls ICMPv6 "icmp"; egresswatch's contract says "icmp6".
- cut baselines (QUIC cases) only give history and service; we compare what they give.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from tests.conformance.replay import peer_cases, replay_flows, zeek_log
from tests.conftest import SHARED

CASES = peer_cases(SHARED / "peers", "conn") if (SHARED / "peers").exists() else []
CHECKSUM_CASE = "zeek/dns-corrupt-checksum"


def _key(row: dict[str, Any]) -> tuple[str, int, str, int, str]:
    proto = "icmp" if row["protocol"] == "icmp6" else row["protocol"]
    return (row["src_ip"], row["src_port"], row["dst_ip"], row["dst_port"], proto)


def _zeek_key(row: dict[str, str]) -> tuple[str, int, str, int, str]:
    return (
        row["id.orig_h"],
        int(row["id.orig_p"]),
        row["id.resp_h"],
        int(row["id.resp_p"]),
        row["proto"],
    )


def _counts(row: dict[str, Any]) -> tuple[int, int, int, int, str]:
    return (row["packets_out"], row["bytes_out"], row["packets_in"], row["bytes_in"], row["state"])


def _zeek_counts(row: dict[str, str]) -> tuple[int, int, int, int, str]:
    return (
        int(row["orig_pkts"]),
        int(row["orig_ip_bytes"]),
        int(row["resp_pkts"]),
        int(row["resp_ip_bytes"]),
        row["conn_state"],
    )


@pytest.mark.parametrize(
    "case", [c for c in CASES if c["id"] != CHECKSUM_CASE], ids=lambda c: c["id"]
)
def test_same_connections_counts_and_states_as_zeek(
    case: dict[str, Any], peers: Path, tmp_path: Path
) -> None:
    ours = replay_flows(peers / case["pcap"], tmp_path)
    expected = zeek_log(peers / case["expected_logs"]["conn"]["file"])
    assert len(ours) == len(expected)
    if "id.orig_h" not in expected[0]:  # a cut baseline: history (and service) only
        assert sorted(r["history"] for r in ours) == sorted(e["history"] for e in expected)
        return
    mine: dict[tuple[Any, ...], list[tuple[int, int, int, int, str]]] = defaultdict(list)
    for row in ours:
        mine[_key(row)].append(_counts(row))
    theirs: dict[tuple[Any, ...], list[tuple[int, int, int, int, str]]] = defaultdict(list)
    for row in expected:
        theirs[_zeek_key(row)].append(_zeek_counts(row))
    assert {k: sorted(v) for k, v in mine.items()} == {k: sorted(v) for k, v in theirs.items()}


def test_bad_checksums_are_counted_on_purpose(peers: Path, tmp_path: Path) -> None:
    case = next(c for c in CASES if c["id"] == CHECKSUM_CASE)
    expected = zeek_log(peers / case["expected_logs"]["conn"]["file"])
    assert [(e["orig_pkts"], e["resp_pkts"], e["conn_state"]) for e in expected] == [
        ("0", "0", "OTH")
    ]  # Zeek without -C: both packets dropped as corrupt
    ours = replay_flows(peers / case["pcap"], tmp_path)
    assert [(r["packets_out"], r["packets_in"], r["state"]) for r in ours] == [(1, 1, "SF")]


def test_the_suite_is_all_there() -> None:
    assert len(CASES) == 10, "expected the 10 peer cases that carry a Zeek conn.log"
