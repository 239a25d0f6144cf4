"""`egresswatch run --listen`: capture and the REST API in one process. /readyz and /metrics
report the capture as it runs (from the status the daemon publishes in the database), and
say so once it has stopped, from a separate `egresswatch serve`."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.api.test_api import free_port, serve
from tests.capture.netlab import Daemon, sh

pytestmark = pytest.mark.root


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except urllib.error.URLError:
        return 0, b""  # not listening (yet, or any more)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample, parsed by Prometheus's own client: a malformed exposition raises."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def until(check: Any, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.2)


def test_readyz_and_metrics_follow_the_capture(tmp_path: Path) -> None:
    assert "local" in sh("ip", "route", "get", "127.0.0.1")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    daemon = Daemon(tmp_path, "-i", "lo", "--listen", f"127.0.0.1:{port}")
    try:
        daemon.wait_for("REST API on")  # logged once it listens
        assert get(base + "/healthz")[0] == 200
        assert until(lambda: get(base + "/readyz")[0] == 200), get(base + "/readyz")
        for _ in range(20):  # traffic on lo: the API's own requests
            get(base + "/api/v1/flows")

        def lo_packets() -> float:
            found = samples(get(base + "/metrics")[1].decode())
            return next(
                (v for (name, labels), v in found.items()
                 if name == "egresswatch_packets_total" and ("interface", "lo") in labels),
                0.0,
            )  # fmt: skip

        assert until(lambda: lo_packets() > 40)  # published every 5 s
        status, body = get(base + "/readyz")
        ready = json.loads(body)
        [host] = ready["hosts"]
        assert ready["ready"] and host["running"] and "lo" in host["interfaces"]
        assert host["interfaces"]["lo"]["last_packet"].endswith("Z")
        assert "no GeoIP database: no countries" in host["warnings"]
        metrics = samples(get(base + "/metrics")[1].decode())
        assert metrics[("egresswatch_up", (("host", host["host"]),))] == 1
        assert metrics[("egresswatch_outbox_pending", ())] == 0
    finally:
        assert daemon.stop() == 0, daemon.log.read_text()

    for api in serve(tmp_path, daemon.db):
        status, body, _ = api.get("/readyz")
        assert status == 503 and body["ready"] is False
        assert body["hosts"][0]["problems"] == ["the capture daemon has stopped"]
        up = samples(get(api.url + "/metrics")[1].decode())
        assert up[("egresswatch_up", (("host", body["hosts"][0]["host"]),))] == 0


def test_a_public_listen_address_without_tokens_stops_run_before_capture(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "egresswatch", "run", "-i", "lo", "--listen", "0.0.0.0:8787",
         "--db", f"sqlite:///{tmp_path / 'never.db'}"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 2 and "add a token" in done.stderr
    assert not (tmp_path / "never.db").exists()


def test_systemd_hears_ready_watchdog_pings_and_stopping(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Type=notify and WatchdogSec= in deploy/systemd/egresswatch.service rely on this."""
    path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as systemd:
        systemd.bind(path)
        systemd.settimeout(20)
        monkeypatch.setenv("NOTIFY_SOCKET", path)
        monkeypatch.setenv("WATCHDOG_USEC", "10000000")
        daemon = Daemon(tmp_path, "-i", "lo")
        try:
            heard = [systemd.recv(4096).decode()]
            assert heard[0].startswith("READY=1\nSTATUS=capturing on lo"), heard
            heard += [systemd.recv(4096).decode() for _ in range(2)]
            assert heard[1:] == ["WATCHDOG=1", "WATCHDOG=1"]
        finally:
            assert daemon.stop() == 0, daemon.log.read_text()
        while (message := systemd.recv(4096).decode()) == "WATCHDOG=1":
            pass
        assert message == "STOPPING=1"


def test_an_address_in_use_stops_run_with_the_reason(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        daemon = Daemon(tmp_path, "-i", "lo", "--listen", f"127.0.0.1:{port}")
        code = daemon.proc.wait(timeout=30)
    daemon.stop()
    assert code == 2, daemon.log.read_text()
    assert f"cannot serve the REST API on 127.0.0.1:{port}" in daemon.log.read_text()
