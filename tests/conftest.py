"""Shared fixtures: the peer conformance captures and the repository layout."""

from __future__ import annotations

from pathlib import Path

import pytest
import scapy.layers.inet
import scapy.layers.l2

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def peers() -> Path:
    """../shared/peers: real captures with Zeek's and Suricata's expected outputs."""
    path = SHARED / "peers"
    if not (path / "index.json").exists():
        pytest.fail(f"the peer conformance set is missing: expected {path}/index.json")
    return path


def _no_arp(ip: str, *args: object, **kwargs: object) -> str:
    raise AssertionError(
        f"scapy wanted to ARP for {ip} on a real network: give test frames explicit MACs "
        "(tests.packets.MACS)"
    )


# Crafting Ether() without a destination MAC makes scapy send ARP requests on the host's real
# network to fill it in: test traffic must never leave this machine, so refuse outright.
scapy.layers.l2.getmacbyip = _no_arp
scapy.layers.inet.getmacbyip = _no_arp  # type: ignore[attr-defined]
