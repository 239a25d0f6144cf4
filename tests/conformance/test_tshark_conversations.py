"""Differential test against tshark (driven through pyshark) on every peer capture.

tshark decides, frame by frame, which TCP/UDP conversation each frame belongs to; egresswatch must
find the same conversations with the same frame counts (its flows for one 5-tuple summed: it splits
a conversation where Zeek does, tshark never splits). The one deliberate difference: egresswatch
also reports the IPv6 flows inside Teredo tunnels, which tshark keeps inside the outer UDP
conversation.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pyshark
import pytest

from tests.conformance.replay import replay_flows
from tests.conftest import SHARED

pytestmark = pytest.mark.tshark
INDEX = SHARED / "peers" / "index.json"
CASES = json.loads(INDEX.read_text())["cases"] if INDEX.exists() else []

Conversation = tuple[str, frozenset[tuple[str, int]]]


def tshark_conversations(pcap: Path) -> Counter[Conversation]:
    """Frames per TCP/UDP conversation, as tshark dissects them (outermost IP and transport)."""
    if shutil.which("tshark") is None:
        pytest.fail("tshark is not installed (tests/run.sh installs it)")
    asyncio.set_event_loop(asyncio.new_event_loop())
    frames: Counter[Conversation] = Counter()
    capture = pyshark.FileCapture(str(pcap), keep_packets=False)
    try:
        for pkt in capture:
            names = [layer.layer_name for layer in pkt.layers]
            ip_at = next((i for i, n in enumerate(names) if n in ("ip", "ipv6")), None)
            if ip_at is None or ip_at + 1 >= len(names) or names[ip_at + 1] not in ("tcp", "udp"):
                continue  # not TCP/UDP, a non-final fragment, or transport inside ICMP
            ip, l4 = pkt.layers[ip_at], pkt.layers[ip_at + 1]
            ends = frozenset({(ip.src, int(l4.srcport)), (ip.dst, int(l4.dstport))})
            frames[(names[ip_at + 1], ends)] += 1
    finally:
        capture.close()
        # pyshark attached a SIGCHLD watcher to this loop, which outlives the capture: every
        # later child process's exit would raise BlockingIOError in asyncio's signal handler.
        asyncio.get_child_watcher().close()
        asyncio.set_child_watcher(None)
    return frames


def our_conversations(flows: list[dict[str, Any]]) -> Counter[Conversation]:
    frames: Counter[Conversation] = Counter()
    for f in flows:
        if f["protocol"] in ("tcp", "udp"):
            ends = frozenset({(f["src_ip"], f["src_port"]), (f["dst_ip"], f["dst_port"])})
            frames[(f["protocol"], ends)] += f["packets_out"] + f["packets_in"]
    return frames


@pytest.mark.parametrize("case", CASES, ids=lambda c: c["id"])
def test_same_conversations_and_frame_counts_as_tshark(
    case: dict[str, Any], peers: Path, tmp_path: Path
) -> None:
    pcap = peers / case["pcap"]
    theirs = tshark_conversations(pcap)
    ours = our_conversations(replay_flows(pcap, tmp_path))
    assert {k: ours.get(k) for k in theirs} == dict(theirs)
    extra = set(ours) - set(theirs)
    if "teredo" in case["id"]:
        assert extra, "the Teredo-tunnelled IPv6 flows are missing"
        assert all(":" in ip for _, ends in extra for ip, _ in ends)
    else:
        assert not extra


def test_every_case_is_compared() -> None:
    assert len(CASES) == 32
