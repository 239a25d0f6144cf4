"""Docker's MASQUERADE shows a container's connection twice: on docker0 with the container's
address, on the uplink with the host's. egresswatch writes it once, as docker0 saw it (to the
byte of tcpdump's capture of docker0); the host's own connections on the uplink are kept."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.capture.netlab import Daemon
from tests.docker.conftest import HOST_SIDE, SERVER, SERVER_NAME, Uplink, route_is_local, sh

KEYS = ("src_port", "packets_out", "bytes_out", "packets_in", "bytes_in", "state")


def container_traffic(image: str, resolver: str, name: str) -> str:
    """A container looks SERVER_NAME up, downloads 70 kB from it and uploads 300 kB; returns
    the container's address."""
    route_is_local(resolver)
    sh("docker", "run", "-d", "--name", name, "--dns", resolver, image, "sh", "-c",
       f"sleep 1; wget -q -O /dev/null http://{SERVER_NAME}/model.bin"
       f" && yes prompt | head -c 300000 > /tmp/prompt"
       f" && wget -q -O /dev/null --post-file /tmp/prompt http://{SERVER_NAME}/upload")  # fmt: skip
    try:
        address = sh("docker", "inspect", "-f", "{{.NetworkSettings.IPAddress}}", name).strip()
        assert sh("docker", "wait", name).strip() == "0", sh("docker", "logs", name)
    finally:
        sh("docker", "rm", "-f", name, check=False)
    return address


def host_traffic() -> None:
    """The host's own connection to the same server, through the same uplink."""
    code = f"import urllib.request as u; u.urlopen('http://{SERVER}/own', timeout=10).read()"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)


class Tcpdump:
    """tcpdump writing one interface's packets to a pcap, from the moment it is listening."""

    def __init__(self, interface: str, tmp_path: Path) -> None:
        self.pcap = tmp_path / f"{interface}.pcap"
        self._process = subprocess.Popen(
            ["tcpdump", "-i", interface, "-w", str(self.pcap), "-U", "--immediate-mode"],
            stderr=subprocess.PIPE,
        )
        assert self._process.stderr is not None
        self._process.stderr.readline()  # "listening on ..."

    def stop(self) -> None:
        self._process.send_signal(signal.SIGINT)
        self._process.wait(timeout=10)

    def replayed(self) -> Path:
        """The capture replayed into a database of its own: the oracle's flows."""
        db = self.pcap.with_suffix(".db")
        subprocess.run(
            [sys.executable, "-m", "egresswatch", "replay", str(self.pcap), "--db",
             f"sqlite:///{db}", "--flows-only", "--quiet"],
            check=True,
        )  # fmt: skip
        return db


def flows(db: Path, where: str = "1") -> list[sqlite3.Row]:
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        return list(conn.execute(f"SELECT * FROM flows WHERE {where}"))


@pytest.mark.parametrize("mode", ["auto", "ports", "off"])
def test_a_natted_container_flow_is_one_flow_on_the_container_side(
    mode: str,
    image: str,
    resolver: str,
    uplink: Uplink,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EGRESSWATCH_CAPTURE__NAT_TWINS", mode)
    daemon = Daemon(tmp_path, "-i", "docker0", "-i", uplink.interface)
    daemon.wait_for("capturing on")
    dumps = [Tcpdump(name, tmp_path) for name in ("docker0", uplink.interface)]
    try:
        container = container_traffic(image, resolver, f"ewt-nat-{mode}")
        host_traffic()
    finally:
        assert daemon.stop() == 0, daemon.log.read_text()
        for dump in dumps:
            dump.stop()
    log = daemon.log.read_text()
    if mode == "auto":  # and conntrack did tell, not the ports
        assert "2 NAT'd flows written once (2 known from conntrack)" in log, log
    elif mode == "ports":
        assert "by destination, ports and time" in log, log

    # What tcpdump saw: the container's two flows on docker0; those two and the host's own,
    # all from the host's address, on the uplink.
    on_bridge, on_uplink = (
        flows(dump.replayed(), f"dst_ip = '{SERVER}' AND dst_port = 80") for dump in dumps
    )
    assert len(on_uplink) == 3 and {f["src_ip"] for f in on_uplink} == {HOST_SIDE}
    assert len(on_bridge) == 2 and {f["src_ip"] for f in on_bridge} == {container}

    live = flows(daemon.db, f"dst_ip = '{SERVER}' AND dst_port = 80")
    from_container = [f for f in live if f["src_ip"] == container]
    assert len(from_container) == 2
    assert {f["interface"] for f in from_container} == {"docker0"}
    assert {(f["container_name"], f["image"]) for f in from_container} == {
        (f"ewt-nat-{mode}", image)
    }
    assert {f["server_name"] for f in from_container} == {SERVER_NAME}
    assert max(f["bytes_out"] for f in from_container) > 300_000
    # The container's flows are, to the byte, what docker0 carried. The uplink carried the same
    # connections from the host's address and port-for-port (MASQUERADE kept the ports), but not
    # always packet-for-packet: once in CI the uplink's NAT'd view had one 52-byte packet fewer
    # each way than docker0 (most likely late ACKs that conntrack judged out of window: those
    # are not NAT'd).
    bridge_by_port = {f["src_port"]: f for f in on_bridge}
    uplink_by_port = {f["src_port"]: f for f in on_uplink}
    for f in from_container:
        twin = bridge_by_port[f["src_port"]]
        assert tuple(f[k] for k in KEYS) == tuple(twin[k] for k in KEYS)
        assert f["history"] == twin["history"]
        natted = uplink_by_port[f["src_port"]]
        assert abs(natted["bytes_out"] - f["bytes_out"]) <= 2 * 1500
        assert abs(natted["bytes_in"] - f["bytes_in"]) <= 2 * 1500

    uplink_records = [f for f in live if f["interface"] == uplink.interface]
    if mode == "off":  # both sightings written: what the other modes prevent
        assert len(uplink_records) == 3, (
            "\n".join(
                str({k: f[k] for k in ("interface", "src_ip", "src_port", "first_seen", "state")})
                for f in live
            )
            + "\n"
            + log.splitlines()[-1]
        )
    else:
        [own] = uplink_records  # the host's own connection only
        assert own["container_id"] is None  # the host's own: no container, never a guess
        assert own["src_ip"] == HOST_SIDE and own["src_port"] not in {
            f["src_port"] for f in from_container
        }
