"""`egresswatch doctor`: what it finds on this box (as root, with the probe the test script
built), what it says without capabilities, and the webhook test post it sends only when asked."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from egresswatch.store import Database
from tests.notify.receiver import receiving

pytestmark = pytest.mark.root


def doctor(
    tmp_path: Path, *args: str, config: str = "", prefix: tuple[str, ...] = ()
) -> tuple[int, str]:
    (tmp_path / "ew.toml").write_text(config + "\n[geoip]\npaths = []\n")
    done = subprocess.run(
        [*prefix, sys.executable, "-m", "egresswatch", "doctor", "--config",
         str(tmp_path / "ew.toml"), "--db", f"sqlite:///{tmp_path / 'ew.db'}", *args],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    return done.returncode, done.stdout + done.stderr


def test_root_with_a_migrated_database_has_no_problem(tmp_path: Path) -> None:
    code, out = doctor(tmp_path)
    assert code == 1 and "FAIL database: at no schema: run egresswatch db upgrade" in out
    db = Database(f"sqlite:///{tmp_path / 'ew.db'}")
    db.upgrade()
    db.close()
    code, out = doctor(tmp_path)
    assert code == 0, out
    assert "ok   CAP_NET_RAW: held" in out and "ok   eBPF probe:" in out
    assert "WARN GeoIP: no database" in out and "no problems found" in out
    assert "webhook" not in out  # nothing is posted unless asked


def test_without_capabilities_it_says_what_is_missing_and_why() -> None:
    with tempfile.TemporaryDirectory(prefix="ewt-doctor-") as readable:  # nobody reads it
        home = Path(readable)
        home.chmod(0o777)
        drop = ("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                "--inh-caps=-all", "--bounding-set=-all")  # fmt: skip
        code, out = doctor(home, prefix=drop)
    assert code == 1, out
    assert "FAIL CAP_NET_RAW: missing: nothing can be captured" in out
    assert "WARN CAP_BPF: missing: no eBPF probe" in out
    assert "WARN CAP_SYS_PTRACE: missing: no executable paths" in out


def test_webhooks_get_a_test_message_only_when_asked(tmp_path: Path) -> None:
    with receiving() as (receiver, url):
        config = f'slack_webhook_url = "{url}"\n'
        doctor(tmp_path, config=config)
        assert receiver.attempts == 0
        code, out = doctor(tmp_path, "--webhooks", config=config)
        assert "ok   webhook 0 (slack): took the test message" in out, out
        [message] = receiver.accepted
        assert "egresswatch doctor on" in message["text"]
        receiver.script.append((404, {}))
        code, out = doctor(tmp_path, "--webhooks", config=config)
        assert code == 1 and "FAIL webhook 0 (slack): HTTP 404" in out
        assert url not in out  # the URL is a secret
