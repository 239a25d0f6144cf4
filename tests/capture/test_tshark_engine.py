"""`egresswatch run --engine tshark` on real interfaces: dumpcap and tshark (pyshark) capture in a
network namespace, between two namespaces joined by a veth pair. Needs root (CI runs as root)
and tshark.

Network isolation: every address, route and packet of these tests is inside namespaces they
create (``ewk*``); nothing is added to the host's. Before anything is sent, `ip route get` in
each namespace must say the other end is over the test's veth.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pyshark.tshark.tshark import get_tshark_version

from egresswatch.capture.tshark import (
    TSHARK_ARGUMENTS,
    _PromptJsonParser,
    dumpcap_summary,
    link_type,
)
from egresswatch.decode.linktypes import LinkType
from tests.capture.netlab import Daemon, sh
from tests.names.test_dns import AT_QUESTION, A, ip4, message, rr
from tests.names.test_quic import client_hello, crypto, protect
from tests.names.test_tls import hello, records, sni
from tests.packets import tcp, write_pcap

root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: network namespaces")
CLIENT_IP, SERVER_IP = "203.0.113.1", "203.0.113.2"  # documentation range, in the namespaces only
UPLOAD = 200_000


@dataclass
class Pair:
    """Two namespaces joined by a veth pair; egresswatch captures on the client's end."""

    client_ns: str
    server_ns: str
    veth: str
    peer: str

    def client(self, *args: str) -> list[str]:
        return ["ip", "netns", "exec", self.client_ns, *args]

    def server(self, *args: str) -> list[str]:
        return ["ip", "netns", "exec", self.server_ns, *args]


@pytest.fixture
def pair() -> Iterator[Pair]:
    tag = f"{os.getpid() % 100_000}"
    p = Pair(f"ewkc{tag}", f"ewks{tag}", veth=f"ewkc{tag}", peer=f"ewks{tag}")
    try:
        sh("ip", "netns", "add", p.client_ns)
        sh("ip", "netns", "add", p.server_ns)
        # Created inside the client's namespace, its peer straight into the server's.
        sh(*p.client("ip", "link", "add", p.veth, "type", "veth", "peer", "name", p.peer,
                     "netns", p.server_ns))  # fmt: skip
        for run, dev, ip in ((p.client, p.veth, CLIENT_IP), (p.server, p.peer, SERVER_IP)):
            sh(*run("ip", "addr", "add", f"{ip}/24", "dev", dev))
            sh(*run("ip", "link", "set", dev, "up"))
            sh(*run("ip", "link", "set", "lo", "up"))
        # The safety rule: each end reaches the other over the test's own veth, nowhere else.
        assert f"dev {p.veth} " in sh(*p.client("ip", "route", "get", SERVER_IP))
        assert f"dev {p.peer} " in sh(*p.server("ip", "route", "get", CLIENT_IP))
        yield p
    finally:
        sh("ip", "netns", "del", p.client_ns, check=False)
        sh("ip", "netns", "del", p.server_ns, check=False)


SERVER = r"""
import socket, sys, threading
ip, answer = sys.argv[1], bytes.fromhex(sys.argv[2])
dns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
dns.bind((ip, 53))
tls = socket.socket()
tls.bind((ip, 443))
tls.listen()
def resolve():
    query, client = dns.recvfrom(512)
    dns.sendto(query[:2] + answer[2:], client)
threading.Thread(target=resolve, daemon=True).start()
print("ready", flush=True)
conn, _ = tls.accept()
got = 0
while chunk := conn.recv(65536):
    got += len(chunk)
conn.close()
print(got, flush=True)
"""

CLIENT = r"""
import socket, sys, time
server = sys.argv[1]
query, hello, initial = (bytes.fromhex(a) for a in sys.argv[2:5])
dns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
dns.settimeout(5)
dns.sendto(query, (server, 53))
dns.recv(512)
tls = socket.create_connection((server, 443), timeout=5)
tls.sendall(hello)
time.sleep(0.1)  # the hello in a segment of its own
tls.sendall(b"u" * int(sys.argv[5]))
time.sleep(0.3)  # the data acknowledged, so the FIN carries none
tls.shutdown(socket.SHUT_WR)
tls.recv(1)
quic = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
quic.sendto(initial, (server, 443))
quic.sendto(b"\x43" + bytes(1200), (server, 443))  # a short-header packet: not captured
print(tls.getsockname()[1], quic.getsockname()[1])
tls.close()
"""


def exchange(p: Pair) -> tuple[int, int]:
    """DNS, a TLS connection uploading UPLOAD bytes and a QUIC Initial, from the client to the
    server; the client's TCP and QUIC ports."""
    answer = message("api.example", [rr(AT_QUESTION, A, ip4(SERVER_IP))])
    query = message("api.example", flags=0x0100)
    server = subprocess.Popen(
        p.server(sys.executable, "-c", SERVER, SERVER_IP, answer.hex()),
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None and server.stdout.readline() == "ready\n"
        the_hello = records(hello(extensions=[sni(b"api.example")]))
        initial = protect(crypto(0, client_hello("quic.example")).ljust(1150, b"\x00"))
        done = subprocess.run(
            p.client(sys.executable, "-c", CLIENT, SERVER_IP, query.hex(), the_hello.hex(),
                     initial.hex(), str(UPLOAD)),
            capture_output=True, text=True, timeout=30, check=True,
        )  # fmt: skip
        assert server.stdout.readline() == f"{len(the_hello) + UPLOAD}\n"
    finally:
        server.kill()
        server.wait()
    tcp_port, quic_port = done.stdout.split()
    return int(tcp_port), int(quic_port)


@root
def test_boundaries_and_names_are_captured_and_the_data_is_not(pair: Pair, tmp_path: Path) -> None:
    daemon = Daemon(tmp_path, "--engine", "tshark", "-i", pair.veth, prefix=pair.client())
    try:
        daemon.wait_for(f"capturing on {pair.veth}")
        tcp_port, quic_port = exchange(pair)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:  # a closed TCP flow reaches the database meanwhile
            tls = [f for f in daemon.flows() if f["dst_port"] == 443 and f["protocol"] == "tcp"]
            if tls and tls[0]["state"] == "SF":
                break
            time.sleep(0.1)
        assert tls and tls[0]["state"] == "SF", daemon.flows()
    finally:
        assert daemon.stop() == 0, daemon.log.read_text()
    log = daemon.log.read_text()
    assert re.search(r"WARNING .*byte and packet counts are not available", log), log

    flows = {(f["protocol"], f["dst_port"]): f for f in daemon.flows()}
    tls = flows["tcp", 443]
    assert (tls["src_ip"], tls["src_port"], tls["dst_ip"]) == (CLIENT_IP, tcp_port, SERVER_IP)
    # SYN, hello, FIN out; SYN-ACK, FIN in. The 200 kB between them (and every plain ACK) were
    # not captured: the filter passed only the boundaries and the hello.
    assert (tls["packets_out"], tls["packets_in"]) == (3, 2)
    assert tls["bytes_out"] < 1500
    # Zeek's state machine needs only SYN/FIN/RST: the state is the ring engine's (SF). The
    # history has no plain-ACK letters: a full capture of this exchange (tcpdump, then
    # `egresswatch replay`) reads ShADaFf, with 200,840 bytes out.
    assert (tls["state"], tls["history"], tls["closed"]) == ("SF", "ShDFf", 1)
    assert (tls["server_name"], tls["name_source"], tls["dns_name"]) == (
        "api.example", "sni", "api.example",
    )  # fmt: skip
    quic = flows["udp", 443]
    assert (quic["src_ip"], quic["src_port"], quic["packets_out"]) == (CLIENT_IP, quic_port, 1)
    assert (quic["server_name"], quic["name_source"]) == ("quic.example", "quic")
    assert (flows["udp", 53]["packets_out"], flows["udp", 53]["packets_in"]) == (1, 1)
    [answer] = daemon.rows("dns")
    assert (answer["query"], answer["client"], answer["resolver"]) == (
        "api.example", CLIENT_IP, SERVER_IP,
    )  # fmt: skip
    assert SERVER_IP in str(answer["answers"])
    # stats(): dumpcap's own count of what the filter passed is what reached the flow table.
    stopped = re.search(
        rf"stopped: (\d+) packets.*{pair.veth}: kernel (\d+) packets, 0 dropped", log
    )
    assert stopped and stopped[1] == stopped[2] == "8", log


@root
def test_interfaces_found_later_are_captured_then_released(pair: Pair, tmp_path: Path) -> None:
    """Discovery with the engine set in the config: bridges come and go in the namespace."""
    first, late = f"br-ewka{os.getpid() % 1000}", f"br-ewkb{os.getpid() % 1000}"
    sh(*pair.client("ip", "link", "add", first, "up", "type", "bridge"))
    config = (
        '[capture]\nengine = "tshark"\nrediscover_interval = 1.0\n'
        f'docker_socket = "{tmp_path}/no-docker.sock"\n'
    )
    daemon = Daemon(tmp_path, prefix=pair.client(), config=config)
    try:
        daemon.wait_for(f"capturing on {first}")
        assert late not in daemon.log.read_text()
        sh(*pair.client("ip", "link", "add", late, "up", "type", "bridge"))
        daemon.wait_for(f"capturing on {late}", timeout=5)
        sh(*pair.client("ip", "link", "del", late))
        daemon.wait_for(f"released {late}", timeout=5)
    finally:
        assert daemon.stop() == 0, daemon.log.read_text()
    assert f"released {first}" in daemon.log.read_text()
    leftover = subprocess.run(["pgrep", "-f", f"dumpcap .*-i ({first}|{late}) "], check=False)
    assert leftover.returncode == 1  # no dumpcap left running


@root
def test_without_tshark_it_says_so_in_one_line(pair: Pair, tmp_path: Path) -> None:
    done = subprocess.run(
        [shutil.which("ip") or "ip", "netns", "exec", pair.client_ns, sys.executable, "-m",
         "egresswatch", "run", "--engine", "tshark", "-i", pair.veth,
         "--db", f"sqlite:///{tmp_path}/x.db"],
        env={**os.environ, "PATH": str(tmp_path)}, capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "tshark not found" in lines[0], lines
    assert "apt-get install tshark" in lines[0]
    assert not (tmp_path / "x.db").exists()  # nothing started before the check


@root
def test_dumpcap_without_the_privilege_says_how_to_grant_it(pair: Pair, tmp_path: Path) -> None:
    command = (
        f"{sys.executable} -m egresswatch run --engine tshark -i {pair.veth} "
        f"--db sqlite:///{tmp_path}/x.db"
    )
    done = subprocess.run(
        pair.client("capsh", "--drop=cap_net_raw,cap_net_admin", "--", "-c", command),
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert f"dumpcap may not capture on {pair.veth}" in lines[0]
    assert "wireshark group" in lines[0] and "setcap cap_net_raw,cap_net_admin=eip" in lines[0]
    assert not (tmp_path / "x.db").exists()


@pytest.mark.tshark
def test_each_packet_is_taken_as_soon_as_tshark_has_written_it(tmp_path: Path) -> None:
    """pyshark's own JSON parser holds the latest packet until the next one begins."""
    packets = [tcp("S", sport=p) for p in (1000, 1001, 1002)]
    pcap = write_pcap(tmp_path / "three.pcap", packets)
    done = subprocess.run(
        ["tshark", "-r", str(pcap), "-T", "json", "-x", "--no-duplicate-keys", *TSHARK_ARGUMENTS],
        capture_output=True, check=True,
    )  # fmt: skip
    output = done.stdout
    ends = [m.end() for m in re.finditer(rb"\n  }", output)]
    assert len(ends) == 3
    parser = _PromptJsonParser(get_tshark_version())
    for n, end in enumerate(ends):
        pending, taken = output[:end], []  # the output so far: up to the end of packet n
        while (found := parser._extract_packet_from_data(pending))[0] is not None:
            taken.append(parser._parse_single_packet(found[0]))
            pending = found[1]
        assert len(taken) == n + 1
        last = taken[-1]
        assert bytes.fromhex(last.frame_raw.value) == bytes(packets[n])
        assert int(last.length) == len(packets[n])


def test_link_types_and_dumpcap_figures() -> None:
    assert link_type(1) is LinkType.ETHERNET
    assert link_type(12) is LinkType.RAW  # DLT_RAW on Linux is LINKTYPE_RAW (101) in files
    assert link_type(276) is LinkType.LINUX_SLL2
    assert link_type(127) is None  # 802.11 radiotap: not decoded
    line = "Packets received/dropped on interface 'br-x': 120/3 (pcap:3/dumpcap:0/flushed:0)"
    assert dumpcap_summary(line) == (120, 3)
    assert dumpcap_summary("Packets captured: 120") is None
