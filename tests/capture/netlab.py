"""A test network: a bridge on the host and a veth into a namespace (the ``lab`` fixture in
conftest.py), and `egresswatch run` as a subprocess with its log and database.

Network safety: every address is on the test's own bridge or inside its namespace, and
`ip route get` must say so before a packet is sent.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

HOST_IP, NS_IP = "198.51.100.1", "198.51.100.2"  # documentation range, on the test's bridge only


def sh(*args: str, check: bool = True, timeout: float = 60) -> str:
    done = subprocess.run(args, capture_output=True, text=True, check=False, timeout=timeout)
    if check and done.returncode:
        raise AssertionError(f"{' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


@dataclass
class Lab:
    bridge: str
    netns: str
    veth: str

    def in_ns(self, *args: str) -> list[str]:
        return ["ip", "netns", "exec", self.netns, *args]


class Daemon:
    """`egresswatch run` in a subprocess, with its log."""

    def __init__(self, tmp: Path, *args: str, prefix: Sequence[str] = (), config: str = "") -> None:
        """``prefix`` runs it through another command (``ip netns exec NS``); ``config`` is
        added to a config file that turns GeoIP off."""
        self.db = tmp / "live.db"
        self.log = tmp / "run.log"
        self.config = tmp / "none.toml"
        self._out = self.log.open("w")
        # config first: its top-level keys must come before any [table]
        self.config.write_text(config + "\n[geoip]\npaths = []\n")
        self.proc = subprocess.Popen(
            [*prefix, sys.executable, "-m", "egresswatch", "run", "--db", f"sqlite:///{self.db}",
             "--config", str(self.config), *args],
            stdout=self._out, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def wait_for(self, text: str, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log.read_text():
                return
            assert self.proc.poll() is None, self.log.read_text()
            time.sleep(0.1)
        raise AssertionError(f"no {text!r} in the log:\n{self.log.read_text()}")

    def flows(self) -> list[dict[str, object]]:
        return self.rows("flows")

    def rows(self, table: str) -> list[dict[str, object]]:
        if not self.db.exists():
            return []
        with sqlite3.connect(self.db) as conn:
            conn.row_factory = sqlite3.Row
            return [dict(r) for r in conn.execute(f"SELECT * FROM {table}")]

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=30)
        self._out.close()
        return code
