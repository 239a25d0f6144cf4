"""Shared fixtures: the peer conformance captures and the repository layout."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def peers() -> Path:
    """../shared/peers: real captures with Zeek's and Suricata's expected outputs."""
    path = SHARED / "peers"
    if not (path / "index.json").exists():
        pytest.fail(f"the peer conformance set is missing: expected {path}/index.json")
    return path


# scapy warns about every Ether() without a destination MAC; test frames never leave the process.
logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
