"""The policy end to end with a real dockerd: a container labelled egresswatch.policy=offline
makes one connection and exactly one alert is stored, naming it; an unlabelled container doing
the same raises none. (The built-in default policy: no configuration.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.capture.netlab import Daemon, sh


def run_container(image: str, server: str, name: str, *labels: str) -> str:
    sh("docker", "rm", "-f", name, check=False)
    cid = sh("docker", "run", "-d", "--name", name, *labels, image,
             "wget", "-q", "-O", "/dev/null", server).strip()  # fmt: skip
    try:
        assert sh("docker", "wait", cid).strip() == "0", sh("docker", "logs", name)
    finally:
        sh("docker", "rm", "-f", name, check=False)
    return cid


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
