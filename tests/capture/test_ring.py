"""PacketRing on the loopback: real frames through a real TPACKET_V3 ring. Needs root."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from egresswatch.capture.ring import PacketRing
from egresswatch.decode import LinkType, decode
from egresswatch.decode.packet import PacketFacts

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: AF_PACKET")


def test_loopback_frames_are_seen_once_with_their_real_sizes() -> None:
    """lo shows every packet twice to a packet socket (out and in); tcpdump shows it once."""
    route = subprocess.run(["ip", "route", "get", "127.0.0.1"], capture_output=True, text=True,
                           check=True).stdout  # fmt: skip
    assert route.startswith("local ")
    ring = PacketRing("lo")
    try:
        receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        receiver.bind(("127.0.0.1", 0))
        port = receiver.getsockname()[1]
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for size in (10, 500, 3000):
            sender.sendto(b"x" * size, ("127.0.0.1", port))
        seen: list[PacketFacts] = []
        deadline = time.monotonic() + 1.5  # past the 100 ms block timeout: a copy would show
        while time.monotonic() < deadline:
            for batch in ring.batches():
                for i in range(len(batch)):
                    start, cap = int(batch.start[i]), int(batch.caplen[i])
                    facts = decode(batch.buf[start : start + cap], batch.linktype,
                                   int(batch.wirelen[i]))  # fmt: skip
                    if isinstance(facts, PacketFacts) and facts.dport == port:
                        seen.append(facts)
            time.sleep(0.05)
        assert sorted(f.ip_bytes for f in seen) == [38, 528, 3028]
        assert ring.stats().drops == 0
        sender.close()
        receiver.close()
    finally:
        ring.close()


def test_a_tun_device_without_link_header_is_read_as_raw_ip() -> None:
    """WireGuard and other tunnels carry bare IP packets (ARPHRD_NONE): the ring starts each
    frame at its IP header. Everything happens in a namespace the test creates."""
    tag = os.getpid() % 10000
    netns, name = f"ewr{tag}", f"ewtun{tag}"
    local, peer = "198.51.100.65", "198.51.100.66"
    subprocess.run(["ip", "netns", "add", netns], check=True)
    try:
        probe = subprocess.run(
            ["ip", "netns", "exec", netns, sys.executable,
             str(Path(__file__).with_name("tun_probe.py")), name, local, peer],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert probe.returncode == 0, probe.stderr
        seen = json.loads(probe.stdout)
    finally:
        subprocess.run(["ip", "netns", "del", netns], check=False)
    assert seen["linktypes"] == [LinkType.RAW]
    udp = [p for p in seen["packets"] if p[2] == 17]
    assert udp == [[peer, local, 17, 9999, 28 + size] for size in (10, 500, 1400)]
