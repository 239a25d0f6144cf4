"""SIGHUP: the config file is read again while capturing; a broken one is reported and the
daemon goes on with the old settings."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.capture.netlab import Daemon, Lab, sh

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: namespaces, AF_PACKET")


def test_sighup_takes_new_interfaces_and_reports_a_broken_config(lab: Lab, tmp_path: Path) -> None:
    second = f"ewh{os.getpid() % 10000}"
    sh("ip", "link", "add", second, "type", "bridge")
    daemon = Daemon(tmp_path, config=f'[capture]\ninterfaces = ["{lab.bridge}"]\n')
    try:
        daemon.wait_for(f"capturing on {lab.bridge};")
        daemon.config.write_text(
            f'[geoip]\npaths = []\n[capture]\ninterfaces = ["{lab.bridge}", "{second}"]\n'
        )
        daemon.proc.send_signal(signal.SIGHUP)
        daemon.wait_for(f"capturing on {second}", timeout=5)
        assert "SIGHUP: config reloaded" in daemon.log.read_text()
        assert "SIGHUP: policy" in daemon.log.read_text()  # read again too

        daemon.config.write_text('[capture]\nrediscover_interval = "soon"\n')
        daemon.proc.send_signal(signal.SIGHUP)
        daemon.wait_for("SIGHUP: config not reloaded", timeout=5)
        assert "capture.rediscover_interval" in daemon.log.read_text()
        assert daemon.proc.poll() is None  # still capturing, on both
        assert f"released {second}" not in daemon.log.read_text()
    finally:
        assert daemon.stop() == 0, daemon.log.read_text()
        sh("ip", "link", "del", second, check=False)


def test_a_broken_policy_fails_the_start_naming_its_line(tmp_path: Path) -> None:
    bad = tmp_path / "policy.yaml"
    bad.write_text("version: 1\nscopes:\n  - name: x\n    defualt: deny\n")
    daemon = Daemon(tmp_path, "-i", "lo", config=f'[policy]\npath = "{bad}"\n')
    assert daemon.proc.wait(timeout=30) == 2
    assert f"{bad}:4: scopes.0.defualt: unknown key" in daemon.log.read_text()
    assert "Traceback" not in daemon.log.read_text()


def test_a_changed_policy_file_is_read_again(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("version: 1\nscopes: []\n")
    daemon = Daemon(tmp_path, "-i", "lo", config=f'[policy]\npath = "{policy}"\n')
    try:
        daemon.wait_for("policy.yaml: 0 scopes")
        policy.write_text("version: 1\nscopes:\n  - name: all\n    default: deny\n")
        daemon.wait_for("changed: policy", timeout=8)  # looked at every 5 s
        assert "1 scopes" in daemon.log.read_text()
    finally:
        assert daemon.stop() == 0, daemon.log.read_text()
