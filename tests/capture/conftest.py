"""The ``lab`` fixture: a bridge the test creates and a veth pair into a network namespace."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.capture.netlab import HOST_IP, NS_IP, Lab, sh


@pytest.fixture
def lab() -> Iterator[Lab]:
    tag = f"{os.getpid() % 10000}"
    lab = Lab(bridge=f"br-ewt{tag}", netns=f"ewt{tag}", veth=f"ewv{tag}")
    sh("ip", "link", "add", lab.bridge, "type", "bridge")
    try:
        sh("ip", "addr", "add", f"{HOST_IP}/24", "dev", lab.bridge)
        sh("ip", "link", "set", lab.bridge, "up")
        sh("ip", "netns", "add", lab.netns)
        sh("ip", "link", "add", lab.veth, "type", "veth", "peer", "name", "ewpeer", "netns",
           lab.netns)  # fmt: skip
        sh("ip", "link", "set", lab.veth, "master", lab.bridge, "up")
        sh(*lab.in_ns("ip", "addr", "add", f"{NS_IP}/24", "dev", "ewpeer"))
        sh(*lab.in_ns("ip", "link", "set", "ewpeer", "up"))
        sh(*lab.in_ns("ip", "link", "set", "lo", "up"))
        # The safety rule: both ends stay on this machine, over the test's own link.
        assert sh("ip", "route", "get", HOST_IP).startswith("local ")
        assert f"dev {lab.bridge}" in sh("ip", "route", "get", NS_IP)
        assert "dev ewpeer" in sh(*lab.in_ns("ip", "route", "get", HOST_IP))
        yield lab
    finally:
        sh("ip", "netns", "del", lab.netns, check=False)
        sh("ip", "link", "del", lab.bridge, check=False)
