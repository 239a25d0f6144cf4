"""deploy/systemd/egresswatch.service's capabilities, proved: the daemon started the way the
unit starts it (its user, in the docker group, with exactly the unit's ambient capabilities and
bounding set, through setpriv) captures, attributes flows to containers and processes, and the
API (egresswatch-api.service: no capabilities at all) serves it. Then each capability is
dropped in turn, and what it was for stops working."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.test_api import free_port
from tests.capture.netlab import sh
from tests.docker.conftest import PORT, route_is_local

UNITS = Path(__file__).resolve().parents[2] / "deploy" / "systemd"
USER = "ewt-service"


def unit_capabilities(unit: str) -> list[str]:
    text = (UNITS / unit).read_text()
    [ambient] = re.findall(r"^AmbientCapabilities=(.*)$", text, re.M)
    [bounding] = re.findall(r"^CapabilityBoundingSet=(.*)$", text, re.M)
    assert ambient.split() == bounding.split(), unit  # nothing held back for later
    return [c.removeprefix("CAP_").lower() for c in ambient.split()]


CAPTURE_CAPS = unit_capabilities("egresswatch.service")


@pytest.fixture(scope="module")
def service_user(dockerd: None) -> Iterator[str]:
    """A system user in the docker group, as deploy/install.sh creates ``egresswatch``."""
    sh("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
       "--groups", "docker", USER, check=False)  # fmt: skip
    yield USER
    sh("userdel", USER, check=False)


@pytest.fixture
def state(service_user: str) -> Iterator[Path]:
    """The StateDirectory: the user's own (pytest's tmp is root's alone)."""
    directory = Path(sh("mktemp", "-d", "/tmp/ewt-state-XXXXXX").strip())
    sh("chown", f"{service_user}:{service_user}", str(directory))
    directory.chmod(0o750)
    (directory / "egresswatch.toml").write_text("[geoip]\npaths = []\n")
    yield directory
    shutil.rmtree(directory)


def as_service(caps: list[str], *args: str, log: Path) -> subprocess.Popen[bytes]:
    """``egresswatch ARGS`` as the service user with exactly ``caps`` (ambient and bounding)."""
    wanted = ",".join(f"+{c}" for c in caps)
    sets = [f"--inh-caps=-all{',' + wanted if caps else ''}",
            f"--ambient-caps=-all{',' + wanted if caps else ''}",
            f"--bounding-set=-all{',' + wanted if caps else ''}"]  # fmt: skip
    return subprocess.Popen(
        ["setpriv", f"--reuid={USER}", f"--regid={USER}", "--init-groups", "--no-new-privs",
         *sets, sys.executable, "-m", "egresswatch", *args],
        stdout=log.open("w"), stderr=subprocess.STDOUT,
    )  # fmt: skip


def run_daemon(state: Path, caps: list[str], *interfaces: str) -> subprocess.Popen[bytes]:
    args = [a for i in interfaces for a in ("-i", i)]
    return as_service(caps, "run", *args, "--db", f"sqlite:///{state / 'ew.db'}", "--config",
                      str(state / "egresswatch.toml"), log=state / "run.log")  # fmt: skip


def wait_for(log: Path, text: str, proc: subprocess.Popen[bytes], timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while text not in log.read_text():
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)
    return log.read_text()


def stop(proc: subprocess.Popen[bytes], log: Path) -> None:
    proc.terminate()
    assert proc.wait(timeout=30) == 0, log.read_text()


def get(url: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_the_units_capabilities_are_enough_for_capture_attribution_and_the_api(
    state: Path, image: str, server: str, resolver: str
) -> None:
    route_is_local(resolver)
    daemon = run_daemon(state, CAPTURE_CAPS, "docker0", "lo")
    port = free_port()
    api = as_service(unit_capabilities("egresswatch-api.service"), "serve", "--listen",
                     f"127.0.0.1:{port}", "--db", f"sqlite:///{state / 'ew.db'}", "--config",
                     str(state / "egresswatch.toml"), log=state / "serve.log")  # fmt: skip
    try:
        log = wait_for(state / "run.log", "capturing on", daemon)
        assert "processes from the kernel at connect time (eBPF)" in log
        assert "containers from the Docker API" in log
        # nc holds its connection 2 s: its /proc is read while it runs (as root, in a container).
        name = "ewt-caps"
        sh("docker", "rm", "-f", name, check=False)
        sh("docker", "run", "--name", name, image, "sh", "-c",
           f"sleep 2 | nc {resolver} {PORT} >/dev/null")  # fmt: skip
        sh("docker", "rm", "-f", name)
        deadline = time.monotonic() + 20
        while True:
            status, ready = (
                get(f"http://127.0.0.1:{port}/readyz") if api.poll() is None else (0, {})
            )
            if status == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert status == 200, (ready, (state / "serve.log").read_text())
        [host] = ready["hosts"]  # type: ignore[misc]
        assert host["attribution"] == "ebpf" and host["docker"]["reachable"] is True
        deadline = time.monotonic() + 15
        while not (
            found := get(f"http://127.0.0.1:{port}/api/v1/flows?container={name}")[1]["items"]
        ):
            assert time.monotonic() < deadline, "the container's flow never reached the API"
            time.sleep(0.5)
        [flow] = found  # type: ignore[misc]
        assert (flow["dst_ip"], flow["dst_port"], flow["process"]) == (resolver, PORT, "nc")
        assert flow["exe"] == "/bin/busybox" and flow["user_id"] == 0  # another user's process
    finally:
        api.terminate()
        api.wait(timeout=30)
        stop(daemon, state / "run.log")


WITHOUT = {
    "net_raw": "CAP_NET_RAW",  # no capture at all: the one-line error, exit 2
    "net_admin": "eBPF probe not loaded",  # attaching to the cgroup hierarchy
    "bpf": "eBPF probe not loaded",
    "perfmon": "eBPF probe not loaded",  # the verifier refuses the probe (EINVAL)
    "sys_ptrace": "processes from the kernel at connect time (eBPF)",  # loads; exe unreadable
}


@pytest.mark.parametrize("dropped", CAPTURE_CAPS)
def test_each_capability_of_the_unit_is_needed(
    dropped: str, state: Path, server: str, resolver: str
) -> None:
    assert set(WITHOUT) == set(CAPTURE_CAPS)  # a capability added to the unit is proved here
    daemon = run_daemon(state, [c for c in CAPTURE_CAPS if c != dropped], "lo")
    log = state / "run.log"
    if dropped == "net_raw":
        assert daemon.wait(timeout=30) == 2
        assert WITHOUT[dropped] in log.read_text()
        return
    try:
        assert WITHOUT[dropped] in wait_for(log, "capturing on", daemon)
        route_is_local(resolver)
        sh("sh", "-c", f"sleep 1 | busybox nc {resolver} {PORT} >/dev/null")  # root's process
    finally:
        stop(daemon, log)
    with sqlite3.connect(state / "ew.db") as conn:
        rows = conn.execute("SELECT process, exe FROM flows WHERE dst_port = ?", (PORT,)).fetchall()
    if dropped == "sys_ptrace":  # the kernel named the process; /proc/PID/exe stayed closed
        assert rows == [("busybox", None)]
    else:  # without the probe, capture itself goes on
        assert len(rows) == 1
