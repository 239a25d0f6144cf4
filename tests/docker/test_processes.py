"""Every flow attributed to the process that opened it, short-lived ones included: the kernel
reports each connect (eBPF) and the flows take the report for their own ports. A workload of
short-lived processes on the host, in containers (one as a non-root user) and through
`docker exec`, all to a server on an address on lo; the rates are printed and must be 100%
(containers) and at least 99% (processes)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from egresswatch.attribution.build import build
from egresswatch.attribution.kernel import Connect, ConnectProbe
from egresswatch.attribution.processes import ProcessMap
from tests.capture.netlab import Daemon, sh
from tests.docker.conftest import PORT, USER_ID


@pytest.fixture(scope="module", autouse=True)
def probe_built() -> None:
    build()


def workload(url: str, host: str, n: int, tool: str, busybox: str = "") -> str:
    """A shell loop of ``n`` short-lived processes, each one HTTP exchange with the server
    (``busybox``: "busybox " where the applets are not commands of their own, on the host)."""
    one = {
        "wget": f"{busybox}wget -q -O /dev/null {url}",
        "nc": f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | {busybox}nc {host} {PORT} >/dev/null",
        "python": f"python3 -c 'import urllib.request as u; u.urlopen(\"{url}\").read()'",
    }[tool]
    return f"for i in $(seq {n}); do {one} || exit 1; done"


def test_short_lived_processes_on_the_host_and_in_containers_are_attributed(
    image: str, server: str, resolver: str, tmp_path: Path
) -> None:
    """The workload of the attribution issue: 150 short-lived host processes (wget, nc,
    python), 150 in three containers (one as a non-root user), 30 `docker exec` processes and
    two long-lived connections (written first as interim records, active_timeout 1 s)."""
    names = [f"ewt-proc-{i}" for i in range(3)]
    daemon = Daemon(tmp_path, "-i", "lo", "-i", "docker0", config="[flows]\nactive_timeout = 1.0\n")
    try:
        daemon.wait_for("capturing on")
        assert "processes from the kernel at connect time" in daemon.log.read_text()
        hold = f"sleep 3 | busybox nc {resolver} {PORT}"
        held = subprocess.Popen(["sh", "-c", hold])
        for tool in ("wget", "nc", "python"):
            sh("sh", "-c", workload(server, resolver, 50, tool, busybox="busybox "))
        for i, name in enumerate(names):
            user = ["--user", str(USER_ID)] if i == 2 else []
            sh("docker", "rm", "-f", name, check=False)
            loops = (
                f"{workload(server, resolver, 25, 'wget')}; {workload(server, resolver, 25, 'nc')}"
            )
            sh("docker", "run", "-d", "--name", name, *user, image, "sh", "-c",
               f"{loops}; sleep 60")  # fmt: skip
        sh("docker", "exec", "-d", names[0], "sh", "-c", hold.replace("busybox ", ""))
        for _ in range(10):
            for name in names:
                sh("docker", "exec", name, "wget", "-q", "-O", "/dev/null", server)
        held.wait(timeout=30)
        time.sleep(3.5)  # the containers' long-lived connection ends too
    finally:
        for name in names:
            sh("docker", "rm", "-f", name, check=False)
        assert daemon.stop() == 0, daemon.log.read_text()

    flows = [f for f in daemon.flows() if f["dst_port"] == PORT]
    in_containers = [f for f in flows if f["interface"] == "docker0"]
    on_host = [f for f in flows if f["interface"] == "lo"]
    assert len(on_host) == 150 + 1 and len(in_containers) == 150 + 30 + 1
    long_lived = [f for f in flows if f["last_seen"] - f["first_seen"] > 2.5]
    assert len(long_lived) == 2

    named = sum(f["container_name"] in names for f in in_containers)
    right = sum(
        f["process"] in ("busybox", "python3") and bool(f["pid"]) and f["user_id"] == 0
        for f in on_host  # `busybox wget` is named busybox by the kernel
    )
    for f in in_containers:
        uid = USER_ID if f["container_name"] == names[2] else 0
        right += f["process"] in ("wget", "nc") and bool(f["pid"]) and f["user_id"] == uid
    with_exe = sum(bool(f["exe"]) for f in flows)
    print(
        f"\ncontainer attribution: {named}/{len(in_containers)}; "
        f"process attribution: {right}/{len(flows)} ({100 * right / len(flows):.1f}%); "
        f"executable path read from /proc in time: {with_exe}/{len(flows)}"
    )
    assert named == len(in_containers)
    assert right >= 0.99 * len(flows)


def test_a_host_network_container_is_known_by_its_processes_cgroup(
    image: str, server: str, tmp_path: Path
) -> None:
    """--network host: the container has the host's addresses, so only the process's cgroup
    says which container opened the flow."""
    name = "ewt-hostnet"
    daemon = Daemon(tmp_path, "-i", "lo")
    try:
        daemon.wait_for("capturing on")
        sh("docker", "rm", "-f", name, check=False)
        cid = sh("docker", "run", "-d", "--name", name, "--network", "host", "--cap-add",
                 "NET_ADMIN", "-v", "/var/run/docker.sock:/var/run/docker.sock:ro", image, "sh",
                 "-c", f"wget -q -O /dev/null {server}; sleep 60").strip()  # fmt: skip
        sh("docker", "exec", name, "wget", "-q", "-O", "/dev/null", server)
        sh("busybox", "wget", "-q", "-O", "/dev/null", server)  # the host's own, beside it
    finally:
        sh("docker", "rm", "-f", name, check=False)
        assert daemon.stop() == 0, daemon.log.read_text()
    flows = sorted(
        (f for f in daemon.flows() if f["dst_port"] == PORT), key=lambda f: f["first_seen"]
    )
    assert [(f["container_id"], f["container_name"], f["process"]) for f in flows] == [
        (cid, name, "wget"),
        (cid, name, "wget"),
        (None, None, "busybox"),
    ]
    # Docker's description is stored too, with what lets it slip past monitoring (/containers).
    [row] = [r for r in daemon.rows("containers") if r["container_id"] == cid]
    assert (row["name"], row["network_mode"], row["docker_socket"], row["privileged"]) == (
        name, "host", 1, 0,
    )  # fmt: skip
    assert row["cap_add"] == '["NET_ADMIN"]' and row["last_seen"] > row["first_seen"]


def test_without_the_probe_open_sockets_are_found_through_sock_diag(
    server: str, resolver: str, tmp_path: Path
) -> None:
    """The fallback, and what it cannot do: a connection still open when its flow is seen is
    attributed; the log says that short-lived ones are missed."""
    daemon = Daemon(tmp_path, "-i", "lo", config="[attribution]\nprobe = false\n")
    try:
        daemon.wait_for("capturing on")
        assert "sock_diag as flows start, instead" in daemon.log.read_text()
        sh("sh", "-c", f"sleep 2 | busybox nc {resolver} {PORT}")
    finally:
        assert daemon.stop() == 0, daemon.log.read_text()
    [flow] = [f for f in daemon.flows() if f["dst_port"] == PORT]
    assert (flow["process"], flow["user_id"], flow["user"]) == ("busybox", 0, "root")
    assert flow["exe"] and flow["exe"].endswith("busybox")


def test_without_docker_the_cgroup_still_names_the_container(
    image: str, server: str, tmp_path: Path
) -> None:
    """No Docker API (Podman, containerd, no access to the socket): the container id comes
    from the process's cgroup; its name and image are not knowable, so they stay empty."""
    config = f'[capture]\ndocker_socket = "{tmp_path / "absent.sock"}"\n'
    daemon = Daemon(tmp_path, "-i", "docker0", config=config)
    try:
        daemon.wait_for("capturing on")
        assert "no Docker socket" in daemon.log.read_text()
        sh("docker", "rm", "-f", "ewt-nodocker", check=False)
        cid = sh("docker", "run", "-d", "--name", "ewt-nodocker", image, "sh", "-c",
                 f"wget -q -O /dev/null {server}; sleep 30").strip()  # fmt: skip
        time.sleep(1.5)
    finally:
        sh("docker", "rm", "-f", "ewt-nodocker", check=False)
        assert daemon.stop() == 0, daemon.log.read_text()
    [flow] = [f for f in daemon.flows() if f["dst_port"] == PORT]
    assert (flow["container_id"], flow["container_name"], flow["image"]) == (cid, None, None)
    assert flow["process"] == "wget"


def test_a_process_gone_before_its_proc_is_read_is_placed_by_the_kernels_cgroup_id(
    image: str, server: str, tmp_path: Path
) -> None:
    """The race the host-network test above can lose: a process that lives a millisecond is
    gone before /proc/PID/cgroup is read. The kernel's cgroup id still names the container's
    cgroup directory (an empty /proc here forces that path)."""
    name = "ewt-gone"
    reports: list[Connect] = []
    probe = ConnectProbe()
    try:
        probe.start(reports.append)
        sh("docker", "rm", "-f", name, check=False)
        cid = sh("docker", "run", "-d", "--name", name, "--network", "host", image, "sh", "-c",
                 f"wget -q -O /dev/null {server}; sleep 60").strip()  # fmt: skip
        deadline = time.monotonic() + 10
        while not any(r.comm == "wget" for r in reports) and time.monotonic() < deadline:
            time.sleep(0.05)
        processes = ProcessMap(proc=tmp_path)
        for r in [r for r in reports if r.comm == "wget"]:
            processes.add(r)
            found = processes.owner(r.proto, r.src or "", r.sport, r.dst, r.dport, at=r.time)
            assert found is not None and found.container_id == cid
        assert any(r.comm == "wget" for r in reports)
    finally:
        sh("docker", "rm", "-f", name, check=False)
        probe.close()
