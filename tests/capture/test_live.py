"""`egresswatch run` on real interfaces: a bridge the test creates, a veth pair into a network
namespace, real TCP and UDP between them. Needs root (CI runs as root).

Network safety: every address is on the test's own bridge or inside its namespace, and
`ip route get` must say so before a packet is sent.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from egresswatch.capture.interfaces import InterfaceFinder
from tests.capture.netlab import Daemon, sh

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: namespaces, AF_PACKET")

HOST_IP, NS_IP = "198.51.100.1", "198.51.100.2"  # documentation range, on the test's bridge only


@dataclass
class Lab:
    bridge: str
    netns: str
    veth: str

    def in_ns(self, *args: str) -> list[str]:
        return ["ip", "netns", "exec", self.netns, *args]


@pytest.fixture
def lab() -> Iterator[Lab]:
    tag = f"{os.getpid() % 10000}"
    lab = Lab(bridge=f"br-ewt{tag}", netns=f"ewt{tag}", veth=f"ewv{tag}")
    sh("ip", "link", "add", lab.bridge, "type", "bridge")
    try:
        sh("ip", "addr", "add", f"{HOST_IP}/24", "dev", lab.bridge)
        sh("ip", "link", "set", lab.bridge, "up")
        sh("ip", "netns", "add", lab.netns)
        sh("ip", "link", "add", lab.veth, "type", "veth", "peer", "name", "ewpeer", "netns",
           lab.netns)  # fmt: skip
        sh("ip", "link", "set", lab.veth, "master", lab.bridge, "up")
        sh(*lab.in_ns("ip", "addr", "add", f"{NS_IP}/24", "dev", "ewpeer"))
        sh(*lab.in_ns("ip", "link", "set", "ewpeer", "up"))
        sh(*lab.in_ns("ip", "link", "set", "lo", "up"))
        # The safety rule: both ends stay on this machine, over the test's own link.
        assert sh("ip", "route", "get", HOST_IP).startswith("local ")
        assert f"dev {lab.bridge}" in sh("ip", "route", "get", NS_IP)
        assert "dev ewpeer" in sh(*lab.in_ns("ip", "route", "get", HOST_IP))
        yield lab
    finally:
        sh("ip", "netns", "del", lab.netns, check=False)
        sh("ip", "link", "del", lab.bridge, check=False)


def tcp_exchange(lab: Lab, port: int, upload: int, download: int) -> None:
    """A client in the namespace uploads ``upload`` bytes to a server on the host bridge, which
    answers with ``download`` bytes and closes."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((HOST_IP, port))
    server.listen()

    def serve() -> None:
        conn, _ = server.accept()
        got = 0
        while chunk := conn.recv(65536):
            got += len(chunk)
        assert got == upload
        conn.sendall(b"d" * download)
        conn.close()

    thread = threading.Thread(target=serve)
    thread.start()
    client = (
        f"import socket; s=socket.create_connection(('{HOST_IP}', {port})); "
        f"s.sendall(b'u'*{upload}); s.shutdown(socket.SHUT_WR)\nwhile s.recv(65536): pass"
    )
    subprocess.run(lab.in_ns(sys.executable, "-c", client), check=True, timeout=30)
    thread.join(timeout=30)
    server.close()


def test_live_flows_match_a_capture_of_the_same_traffic(lab: Lab, tmp_path: Path) -> None:
    """Flows from the live rings have exactly the packets and bytes that egresswatch replay
    finds in tcpdump's capture of the same traffic, and reach the database while running."""
    pcap = tmp_path / "oracle.pcap"
    tcpdump = subprocess.Popen(
        ["tcpdump", "-i", lab.bridge, "-w", str(pcap), "-U", "--immediate-mode"],
        stderr=subprocess.PIPE,
    )
    daemon = Daemon(tmp_path, "--interface", lab.bridge)
    try:
        daemon.wait_for(f"capturing on {lab.bridge}")
        assert tcpdump.stderr is not None
        tcpdump.stderr.readline()  # "listening on ...": tcpdump is capturing too
        tcp_exchange(lab, 18080, upload=300_000, download=70_000)
        udp = "import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        udp += f"for n in (100, 900, 1400): s.sendto(b'q'*n, ('{HOST_IP}', 18053))"
        subprocess.run(lab.in_ns(sys.executable, "-c", udp), check=True, timeout=30)
        # A finished TCP flow is in the database within 2 s, while the daemon runs.
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            running = [f for f in daemon.flows() if f["dst_port"] == 18080]
            if running and running[0]["state"] == "SF":
                break
            time.sleep(0.1)
        assert running and running[0]["state"] == "SF", daemon.flows()
        time.sleep(0.5)
    finally:
        assert daemon.stop() == 0, daemon.log.read_text()
        tcpdump.send_signal(signal.SIGINT)
        tcpdump.wait(timeout=10)
    assert "SIGTERM: writing out every flow" in daemon.log.read_text()

    replayed = tmp_path / "replayed.db"
    subprocess.run(
        [sys.executable, "-m", "egresswatch", "replay", str(pcap), "--db",
         f"sqlite:///{replayed}", "--flows-only", "--quiet", "--interface", lab.bridge],
        check=True,
    )  # fmt: skip
    keys = ("src_ip", "src_port", "dst_ip", "dst_port", "protocol", "packets_out", "bytes_out",
            "packets_in", "bytes_in", "state", "history", "interface")  # fmt: skip
    with sqlite3.connect(replayed) as conn:
        conn.row_factory = sqlite3.Row
        oracle = sorted(tuple(r[k] for k in keys) for r in conn.execute("SELECT * FROM flows"))
    live = sorted(tuple(f[k] for k in keys) for f in daemon.flows())
    ours = [f for f in live if f[3] in (18080, 18053)]
    assert len(ours) == 2, live
    tcp = next(f for f in ours if f[3] == 18080)
    assert tcp[:5] == (NS_IP, tcp[1], HOST_IP, 18080, "tcp")
    assert tcp[6] > 300_000 and tcp[8] > 70_000  # payload plus headers, each way
    udp_flow = next(f for f in ours if f[3] == 18053)
    assert udp_flow[5:7] == (3, 3 * 28 + 100 + 900 + 1400)

    # Every flow between the two ends, to the byte (ICMP port unreachables included). Link
    # chatter from before the daemon started (IGMP, router solicitations) is only in tcpdump's.
    def between(flows: list[tuple[object, ...]]) -> list[tuple[object, ...]]:
        return [f for f in flows if {f[0], f[2]} == {HOST_IP, NS_IP}]

    assert between(live) == between(oracle)
    assert len(between(live)) >= 3
    assert all(f["closed"] for f in daemon.flows())


def test_without_the_capability_it_says_which_and_how(tmp_path: Path) -> None:
    done = subprocess.run(
        ["capsh", "--drop=cap_net_raw", "--", "-c",
         f"{sys.executable} -m egresswatch run -i lo --db sqlite:///{tmp_path}/x.db"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "CAP_NET_RAW" in lines[0] and "AmbientCapabilities" in lines[0]
    assert not (tmp_path / "x.db").exists()  # nothing started before the check


def test_a_bridge_created_after_start_is_captured_then_released(lab: Lab, tmp_path: Path) -> None:
    """Discovery: the test's bridge (named like Docker's, br-*) comes and goes while running."""
    late = f"br-ewl{os.getpid() % 10000}"
    finder = InterfaceFinder(docker_socket=tmp_path / "no-docker.sock")
    assert lab.bridge in finder.bridges() and late not in finder.bridges()
    daemon = Daemon(tmp_path)
    try:
        daemon.wait_for("capturing on")
        assert late not in daemon.log.read_text()
        sh("ip", "link", "add", late, "type", "bridge")
        started = time.monotonic()
        daemon.wait_for(f"capturing on {late}", timeout=8)
        assert time.monotonic() - started < 6.5  # within the 5 s rediscovery interval
        sh("ip", "link", "del", late)
        daemon.wait_for(f"released {late}", timeout=8)
    finally:
        sh("ip", "link", "del", late, check=False)
        assert daemon.stop() == 0, daemon.log.read_text()


def test_uplinks_are_the_interfaces_holding_a_default_route() -> None:
    expected = {
        line.split(" dev ")[1].split()[0]
        for family in ("-4", "-6")
        for line in sh("ip", family, "route", "show", "default").splitlines()
        if " dev " in line
    }
    assert InterfaceFinder().uplinks() == expected
