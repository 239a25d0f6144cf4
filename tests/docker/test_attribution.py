"""Flows attributed to their containers with a real dockerd: short-lived containers (known from
Docker's event stream, not a later lookup), on a user-defined network, one address reused by a
second container (each flow names its own), and the NAT'd flows of tests/docker/test_nat.py."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.capture.netlab import Daemon
from tests.docker.conftest import route_is_local, run_to_end, sh

SUBNET, REUSED = "203.0.113.192/26", "203.0.113.200"  # a Docker network of the test's own


@dataclass
class Network:
    name: str
    bridge: str


@pytest.fixture
def network(dockerd: None) -> Iterator[Network]:
    """A user-defined bridge network with a device name of the test's own."""
    tag = os.getpid() % 10000
    name, bridge = f"ewt-attr-{tag}", f"ewta{tag}"
    sh("docker", "network", "create", "--subnet", SUBNET,
       "-o", f"com.docker.network.bridge.name={bridge}", name)  # fmt: skip
    try:
        yield Network(name, bridge)
    finally:
        sh("docker", "network", "rm", name, check=False)


def lookup(image: str, resolver: str, network: Network, name: str) -> str:
    """A short-lived container on ``network`` at REUSED asks the resolver one question; returns
    its id."""
    route_is_local(resolver)
    return run_to_end(name, "--network", network.name, "--ip", REUSED, "--dns", resolver, image,
                      "nslookup", "-type=A", "upload.example")  # fmt: skip


def test_each_short_lived_container_is_named_on_its_flows(
    image: str, resolver: str, network: Network, tmp_path: Path
) -> None:
    daemon = Daemon(tmp_path, "-i", network.bridge)
    try:
        daemon.wait_for("capturing on")
        first = lookup(image, resolver, network, "ewt-first")
        second = lookup(image, resolver, network, "ewt-second")
    finally:
        assert daemon.stop() == 0, daemon.log.read_text()
    assert "containers from the Docker API" in daemon.log.read_text()
    dns = sorted(
        (f for f in daemon.flows() if f["dst_port"] == 53 and f["src_ip"] == REUSED),
        key=lambda f: f["first_seen"],
    )
    assert [(f["container_id"], f["container_name"]) for f in dns] == [
        (first, "ewt-first"),
        (second, "ewt-second"),
    ]
    assert {f["image"] for f in dns} == {image}
    # The resolver's side of the same exchange is not a container.
    assert all(f["container_id"] is None for f in daemon.flows() if f["src_ip"] != REUSED)
