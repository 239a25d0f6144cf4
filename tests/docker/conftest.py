"""A real dockerd with containers built by `docker import` from a busybox-static rootfs, a
resolver (dnsmasq) on an address on `lo`, and an "uplink": a veth into a network namespace that
holds the test's destination. Needs root.

Network safety: containers resolve through the test's dnsmasq only (`--dns`), and every address
they reach is on `lo` or inside the test's namespace; `ip route get` must say so before any
container runs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.capture.netlab import sh

IMAGE = "egresswatch-test/busybox:1"
RESOLVER = "198.51.100.53"  # on lo
SERVER = "203.0.113.80"  # inside the uplink namespace
SERVER_NAME = "upload.example"
HOST_SIDE, NS_SIDE = "198.51.100.129", "198.51.100.130"  # the veth pair, a /30
USER_ID = 1000  # a non-root user in the image
PORT = 18080  # the HTTP server on the resolver's address


def run_to_end(name: str, *args: str) -> str:
    """``docker run -d --name NAME ARGS...``, waited for (it must exit 0) and removed; returns
    the container's id."""
    sh("docker", "rm", "-f", name, check=False)
    cid = sh("docker", "run", "-d", "--name", name, *args).strip()
    try:
        assert sh("docker", "wait", cid).strip() == "0", sh("docker", "logs", name)
    finally:
        sh("docker", "rm", "-f", name, check=False)
    return cid


def route_is_local(address: str) -> None:
    route = sh("ip", "route", "get", address)
    if not route.startswith("local "):
        pytest.fail(f"{address} would leave this machine: {route.strip()}")


@pytest.fixture(scope="session", autouse=True)
def _root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: dockerd, namespaces, AF_PACKET")


@pytest.fixture(scope="session")
def dockerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The machine's dockerd, started for the session when it is not running."""
    if shutil.which("dockerd") is None:
        pytest.fail("dockerd is missing: tests/run.sh installs docker.io")
    if subprocess.run(["docker", "info"], capture_output=True, check=False).returncode == 0:
        yield
        return
    log = tmp_path_factory.mktemp("dockerd") / "dockerd.log"
    with log.open("w") as out:
        proc = subprocess.Popen(["dockerd"], stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while subprocess.run(["docker", "info"], capture_output=True, check=False).returncode:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"dockerd did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture(scope="session")
def image(dockerd: None, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A busybox-static image: sh, wget, nc, nslookup, ... and a non-root user ``app``."""
    busybox = Path("/bin/busybox")
    ldd = subprocess.run(["ldd", str(busybox)], capture_output=True, text=True, check=False)
    if "not a dynamic executable" not in ldd.stdout + ldd.stderr:
        pytest.fail("/bin/busybox is not static: tests/run.sh installs busybox-static")
    root = tmp_path_factory.mktemp("rootfs")
    (root / "bin").mkdir()
    shutil.copy2(busybox, root / "bin" / "busybox")
    for applet in sh(str(busybox), "--list").split():
        if applet != "busybox":
            (root / "bin" / applet).symlink_to("busybox")
    (root / "etc").mkdir()
    (root / "etc" / "passwd").write_text(
        f"root:x:0:0:root:/root:/bin/sh\napp:x:{USER_ID}:{USER_ID}:app:/tmp:/bin/sh\n"
    )
    (root / "etc" / "group").write_text(f"root:x:0:\napp:x:{USER_ID}:\n")
    (root / "tmp").mkdir(mode=0o1777)
    tarball = root.parent / "rootfs.tar"
    with tarfile.open(tarball, "w") as tar:
        for path in sorted(root.iterdir()):
            tar.add(path, arcname=path.name)
    sh("docker", "import", str(tarball), IMAGE)
    return IMAGE


@pytest.fixture(scope="session")
def resolver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """dnsmasq on an address on lo, answering SERVER_NAME with SERVER and nothing else (no
    upstream: a name it does not hold is never asked of anyone)."""
    added = RESOLVER not in sh("ip", "-4", "addr", "show", "dev", "lo")
    if added:
        sh("ip", "addr", "add", f"{RESOLVER}/32", "dev", "lo")
    log = tmp_path_factory.mktemp("dnsmasq") / "dnsmasq.log"
    proc = None
    try:
        route_is_local(RESOLVER)
        proc = subprocess.Popen(
            ["dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv",
             "--no-hosts", "--no-poll", "--bind-interfaces", f"--listen-address={RESOLVER}",
             "--user=root", "--pid-file", f"--address=/{SERVER_NAME}/{SERVER}",
             "--log-queries", f"--log-facility={log}"],
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while SERVER not in sh("busybox", "nslookup", SERVER_NAME, RESOLVER, check=False):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"dnsmasq did not answer on {RESOLVER}")
            time.sleep(0.2)
        yield RESOLVER
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=10)
        if added:
            sh("ip", "addr", "del", f"{RESOLVER}/32", "dev", "lo", check=False)


@dataclass
class Uplink:
    """A veth from the host into a namespace holding SERVER: to Docker's MASQUERADE it is an
    uplink like any other."""

    interface: str
    netns: str

    def in_ns(self, *args: str) -> list[str]:
        return ["ip", "netns", "exec", self.netns, *args]


@pytest.fixture
def uplink(tmp_path: Path) -> Iterator[Uplink]:
    tag = os.getpid() % 10000
    up = Uplink(interface=f"ewnu{tag}", netns=f"ewn{tag}")
    server = None
    sh("ip", "netns", "add", up.netns)
    try:
        sh("ip", "link", "add", up.interface, "type", "veth", "peer", "name", "ewpeer",
           "netns", up.netns)  # fmt: skip
        sh("ip", "addr", "add", f"{HOST_SIDE}/30", "dev", up.interface)
        sh("ip", "link", "set", up.interface, "up")
        sh(*up.in_ns("ip", "addr", "add", f"{NS_SIDE}/30", "dev", "ewpeer"))
        sh(*up.in_ns("ip", "link", "set", "ewpeer", "up"))
        sh(*up.in_ns("ip", "link", "set", "lo", "up"))
        sh(*up.in_ns("ip", "addr", "add", f"{SERVER}/32", "dev", "lo"))
        sh("ip", "route", "add", f"{SERVER}/32", "via", NS_SIDE, "dev", up.interface)
        # The safety rule: SERVER is reached through the test's veth, into its namespace, and
        # the namespace has no way out (it knows no route but its own /30).
        route = sh("ip", "route", "get", SERVER)
        if f"dev {up.interface}" not in route:
            pytest.fail(f"{SERVER} is not routed into the test's namespace: {route.strip()}")
        if "default" in sh(*up.in_ns("ip", "route", "show")):
            pytest.fail(f"{up.netns} has a default route")
        server = subprocess.Popen(
            up.in_ns(sys.executable, str(Path(__file__).with_name("server.py")), SERVER, "80"),
            stdout=subprocess.PIPE,
            text=True,
        )
        assert server.stdout is not None and server.stdout.readline().startswith("listening")
        yield up
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=10)
        sh("ip", "route", "del", f"{SERVER}/32", check=False)
        sh("ip", "netns", "del", up.netns, check=False)
        sh("ip", "link", "del", up.interface, check=False)


class _Quiet(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server(resolver: str) -> Iterator[str]:
    """An HTTP server on the resolver's address (on lo): every workload's destination."""
    route_is_local(resolver)
    httpd = ThreadingHTTPServer((resolver, PORT), _Quiet)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://{resolver}:{PORT}/"
    httpd.shutdown()
    httpd.server_close()
