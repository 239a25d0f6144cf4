"""Bridges found through Docker's Engine API: a network whose bridge has a name of its own
(`com.docker.network.bridge.name`) is found, which sysfs naming alone cannot do, and one created
while the daemon runs is captured within the rediscovery interval, then released."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from egresswatch.capture.interfaces import InterfaceFinder
from tests.capture.netlab import Daemon
from tests.docker.conftest import sh


@pytest.fixture
def networks(dockerd: None) -> Iterator[list[str]]:
    """Names of the Docker networks a test creates (removed afterwards)."""
    created: list[str] = []
    yield created
    for name in created:
        sh("docker", "network", "rm", name, check=False)


def create_network(networks: list[str], name: str, bridge: str) -> None:
    sh("docker", "network", "create", "-o", f"com.docker.network.bridge.name={bridge}", name)
    networks.append(name)


def test_bridges_come_from_the_docker_api(networks: list[str], tmp_path: Path) -> None:
    bridge = f"ewtb{os.getpid() % 10000}"
    create_network(networks, f"ewt-net-{bridge}", bridge)
    assert {"docker0", bridge} <= InterfaceFinder().bridges()
    without_api = InterfaceFinder(docker_socket=tmp_path / "absent.sock").bridges()
    assert "docker0" in without_api and bridge not in without_api


def test_a_network_created_while_running_is_captured_then_released(
    networks: list[str], tmp_path: Path
) -> None:
    late = f"ewtl{os.getpid() % 10000}"
    daemon = Daemon(tmp_path)
    try:
        daemon.wait_for("capturing on")
        create_network(networks, f"ewt-net-{late}", late)
        started = time.monotonic()
        daemon.wait_for(f"capturing on {late}", timeout=8)
        assert time.monotonic() - started < 6.5  # within the 5 s rediscovery interval
        sh("docker", "network", "rm", networks.pop())
        daemon.wait_for(f"released {late}", timeout=8)
    finally:
        assert daemon.stop() == 0, daemon.log.read_text()
