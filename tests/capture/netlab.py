"""What the live-capture tests share: running commands, and `egresswatch run` in a subprocess."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path


def sh(*args: str, check: bool = True) -> str:
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if check and done.returncode:
        raise AssertionError(f"{' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


class Daemon:
    """`egresswatch run` in a subprocess, with its log. ``prefix`` runs it through another
    command (``ip netns exec NS``); ``config`` is the config file's text."""

    def __init__(
        self,
        tmp: Path,
        *args: str,
        prefix: Sequence[str] = (),
        config: str = "[geoip]\npaths = []\n",
    ) -> None:
        self.db = tmp / "live.db"
        self.log = tmp / "run.log"
        self._out = self.log.open("w")
        (tmp / "none.toml").write_text(config)
        self.proc = subprocess.Popen(
            [*prefix, sys.executable, "-m", "egresswatch", "run", "--db", f"sqlite:///{self.db}",
             "--config", str(tmp / "none.toml"), *args],
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
