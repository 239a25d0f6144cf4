"""The policy end to end with a real dockerd: a container labelled egresswatch.policy=offline
makes one connection and exactly one alert is stored, naming it; an unlabelled container doing
the same raises none. (The built-in default policy: no configuration.)"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tests.capture.netlab import Daemon, sh
from tests.docker.conftest import run_to_end
from tests.notify.receiver import receiving


def run_container(image: str, server: str, name: str, *labels: str) -> str:
    return run_to_end(name, *labels, image, "wget", "-q", "-O", "/dev/null", server)


def test_an_offline_container_talking_out_raises_exactly_one_alert(
    image: str, server: str, tmp_path: Path
) -> None:
    missing = tmp_path / "no-policy.yaml"  # the built-in default policy is in force
    daemon = Daemon(tmp_path, "-i", "docker0", config=f'[policy]\npath = "{missing}"\n')
    try:
        daemon.wait_for("capturing on")
        assert "default.yaml: 2 scopes" in daemon.log.read_text()
        offline = run_container(image, server, "ewt-offline", "--label",
                                "egresswatch.policy=offline")  # fmt: skip
        run_container(image, server, "ewt-online")
    finally:
        assert daemon.stop() == 0, daemon.log.read_text()
    [alert] = daemon.rows("alerts")
    flow = json.loads(str(alert["flow"]))
    assert (alert["rule"], alert["severity"], alert["count"]) == ("offline: not allowed", "high", 1)
    assert (flow["container_id"], flow["container_name"], flow["process"]) == (
        offline, "ewt-offline", "wget",
    )  # fmt: skip
    assert "container ewt-offline (wget" in str(alert["summary"])
    listed = subprocess.run(
        [sys.executable, "-m", "egresswatch", "alerts", "--db", f"sqlite:///{daemon.db}", "--json"],
        capture_output=True, text=True, check=True,
    ).stdout.splitlines()  # fmt: skip
    assert [json.loads(line)["uid"] for line in listed] == [alert["uid"]]
    db = ["--db", f"sqlite:///{daemon.db}"]
    assert egresswatch("alerts", "--ack", str(alert["uid"]), *db).returncode == 0
    assert egresswatch("alerts", "--open", "--json", *db).stdout == ""
    unknown = egresswatch("alerts", "--ack", "Anosuchalert", *db)
    assert unknown.returncode == 2 and "no such alert: Anosuchalert" in unknown.stderr
    # The evidence: the flow's first packets as a pcap that tshark reads.
    pcap = tmp_path / "evidence.pcap"
    assert (
        egresswatch("alerts", "--evidence", str(alert["uid"]), "-o", str(pcap), *db).returncode == 0
    )
    fields = subprocess.run(
        ["tshark", "-r", str(pcap), "-T", "fields", "-e", "ip.src", "-e", "tcp.dstport",
         "-e", "tcp.flags.syn", "-e", "http.request.method"],
        capture_output=True, text=True, check=True,
    ).stdout.splitlines()  # fmt: skip
    container_ip = flow["src_ip"]
    assert fields[0].split("\t")[:3] == [container_ip, str(flow["dst_port"]), "1"]  # its SYN
    assert any(line.endswith("\tGET") for line in fields)  # and its request


def egresswatch(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "egresswatch", *args], capture_output=True,
                          text=True, check=False)  # fmt: skip


def test_a_slack_outage_and_a_sigkill_delay_the_alert_and_it_arrives_once(
    image: str, server: str, tmp_path: Path
) -> None:
    """The receiver answers 503 (an outage); the daemon is killed with SIGKILL mid-outage and
    started again; the receiver then answers 429 with Retry-After, then 200: the alert arrives
    exactly once, Slack-shaped."""
    with receiving() as (receiver, url):
        receiver.script = [(503, {})] * 10_000
        config = (f'slack_webhook_url = "{url}"\n[policy]\npath = "{tmp_path / "none.yaml"}"\n'
                  "[notify]\nmax_backoff = 0.5\n")  # fmt: skip
        first = Daemon(tmp_path, "-i", "docker0", config=config)
        try:
            first.wait_for("capturing on")
            assert "alerts to 1 webhook(s)" in first.log.read_text()
            assert url not in first.log.read_text()  # a secret: never logged
            run_container(image, server, "ewt-offline", "--label", "egresswatch.policy=offline")
            wait(lambda: receiver.attempts >= 2, "deliveries attempted during the outage")
        finally:
            first.proc.kill()  # SIGKILL: no flush, no goodbye
            first.proc.wait(timeout=10)
        [alert] = first.rows("alerts")
        assert receiver.accepted == []
        receiver.script = [(429, {"Retry-After": "1"})]
        second = Daemon(tmp_path, "-i", "docker0", "-i", "lo", config=config)
        try:
            second.wait_for("1 deliveries waiting from before")
            wait(lambda: len(receiver.accepted) == 1, "the alert delivered after the restart")
            time.sleep(2.0)  # and not again
        finally:
            assert second.stop() == 0, second.log.read_text()
    [posted] = receiver.accepted
    assert alert["uid"] in json.dumps(posted) and "ewt-offline" in posted["text"]
    assert receiver.refused_as_invalid == []
    # Its own posts are flows like any other, attributed to egresswatch itself.
    port = int(url.split(":")[2].split("/")[0])
    own = [f for f in second.flows() if f["dst_port"] == port]
    assert own and {f["pid"] for f in own} == {second.proc.pid}


def wait(condition: Callable[[], bool], what: str, limit: float = 20.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_a_container_recreated_from_another_image_raises_an_alert(
    image: str, tmp_path: Path
) -> None:
    """docker compose pull && up, in short: the same name, a new image."""
    rootfs = tmp_path / "rootfs.tar"
    sh("sh", "-c", f"c=$(docker create {image} true); docker export $c > {rootfs}; docker rm $c")
    updated = f"{image}-updated"
    sh("sh", "-c", f"docker import -c 'LABEL version=2' {rootfs} {updated}")
    daemon = Daemon(tmp_path, "-i", "docker0", config=f'[policy]\npath = "{tmp_path / "x"}"\n')
    try:
        daemon.wait_for("capturing on")
        run_to_end("ewt-app", image, "true")
        run_to_end("ewt-app", updated, "true")
        wait(lambda: "image changed" in str(daemon.rows("alerts")), "the image-change alert", 10)
    finally:
        assert daemon.stop() == 0, daemon.log.read_text()
        sh("docker", "rmi", "-f", updated, check=False)
    [alert] = daemon.rows("alerts")
    assert alert["rule"] == "image changed" and "container ewt-app" in str(alert["summary"])
    assert alert["container"] == "ewt-app"  # found by /alerts?container=ewt-app too
