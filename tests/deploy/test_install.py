"""deploy/install.sh in a fresh Debian root (debootstrap's minimal bookworm, chrooted, in a
network namespace of its own: nothing it does reaches any network): it lays down the program,
the probe, the config, the policy, the user, the state directory with a migrated database and
the units; a second run keeps the owner's edits; --uninstall removes the program and keeps
config and data; --purge removes everything.

What the root would otherwise download is prepared once and cached in
/var/cache/egresswatch-tests, as tests/run.sh installs the test tools: the root, by debootstrap
with the Debian packages install.sh asks for (a few minutes the first time), and a wheelhouse of
egresswatch's Python dependencies (pip download, again when pyproject.toml changes). Each run
unpacks a fresh copy of the root and installs from the wheelhouse alone."""

from __future__ import annotations

import filecmp
import os
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy.debian import REPO, cached_root, wheelhouse
from tests.packets import SERVER, handshake_and_close, write_pcap

pytestmark = pytest.mark.root


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    """A fresh Debian root with /proc, /sys, /dev, the wheelhouse and the repository."""
    root = tmp_path / "root"
    root.mkdir()
    subprocess.run(["tar", "-xf", str(cached_root()), "-C", str(root)], check=True)
    mounts = [("/proc", "proc"), ("/sys", "sys"), ("/dev", "dev"), (str(wheelhouse()), "wheels")]
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True,
                           check=True).stdout.split()  # fmt: skip
    for name in files:
        (root / "src" / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, root / "src" / name)
    mounted = []
    try:
        for source, target in mounts:
            (root / target).mkdir(parents=True, exist_ok=True)
            subprocess.run(["mount", "--bind", source, str(root / target)], check=True)
            mounted.append(root / target)
        yield root
    finally:
        for path in reversed(mounted):
            subprocess.run(["umount", "--lazy", str(path)], check=False)
        shutil.rmtree(root, ignore_errors=True)


ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
       "HOME": "/root", "LANG": "C.UTF-8", "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": "/wheels",
       "PIP_DISABLE_PIP_VERSION_CHECK": "1"}  # fmt: skip
"""The environment in the root: pip from the wheelhouse alone."""


def chroot(root: Path, *command: str) -> subprocess.CompletedProcess[str]:
    """``command`` in the root, in a new network namespace: no network at all."""
    return subprocess.run(["unshare", "--net", "chroot", str(root), *command],
                          capture_output=True, text=True, env=ENV, timeout=900,
                          check=False)  # fmt: skip


def owner(path: Path, root: Path, table: str = "passwd") -> str:
    """The user (``table="group"``: the group) owning ``path``, by the chroot's own names."""
    number = path.stat().st_uid if table == "passwd" else path.stat().st_gid
    for line in (root / "etc" / table).read_text().splitlines():
        if line.split(":")[2] == str(number):
            return line.split(":")[0]
    return str(number)


def test_install_upgrade_uninstall_and_purge_in_a_fresh_debian(root: Path) -> None:
    done = chroot(root, "bash", "/src/deploy/install.sh")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "systemd is not running here" in done.stdout

    assert (root / "opt/egresswatch/bin/egresswatch").exists()
    assert os.readlink(root / "usr/local/bin/egresswatch") == "/opt/egresswatch/bin/egresswatch"
    assert list((root / "opt/egresswatch/lib").glob("python3*/site-packages/egresswatch/"
                                                    "attribution/bpf/connect.bpf.o"))  # fmt: skip
    assert (root / "opt/egresswatch/share/egresswatch/docs/deploy.md").exists()
    for installed, source in [
        ("etc/egresswatch/egresswatch.toml", "deploy/egresswatch.toml"),
        ("etc/egresswatch/policy.yaml", "egresswatch/policy/default.yaml"),
        ("etc/systemd/system/egresswatch.service", "deploy/systemd/egresswatch.service"),
        ("etc/systemd/system/egresswatch-api.service", "deploy/systemd/egresswatch-api.service"),
    ]:
        assert filecmp.cmp(root / installed, REPO / source, shallow=False), installed
    settings = root / "etc/egresswatch/egresswatch.toml"  # may hold webhook URLs: not for all
    assert settings.stat().st_mode & 0o777 == 0o640
    assert owner(settings, root, "group") == "egresswatch"
    [entry] = [e for e in (root / "etc/passwd").read_text().splitlines()
               if e.startswith("egresswatch:")]  # fmt: skip
    assert entry.endswith(":/var/lib/egresswatch:/usr/sbin/nologin")
    state = root / "var/lib/egresswatch"
    assert owner(state, root) == "egresswatch" and state.stat().st_mode & 0o777 == 0o750
    assert owner(state / "egresswatch.db", root) == "egresswatch"
    revision = chroot(root, "runuser", "-u", "egresswatch", "--", "egresswatch", "db", "revision")
    assert revision.returncode == 0 and revision.stdout.strip().isdigit(), revision

    # Again, after the owner edited the config: kept, and nothing else changes.
    config = root / "etc/egresswatch/egresswatch.toml"
    config.write_text(config.read_text() + "# edited\n")
    again = chroot(root, "bash", "/src/deploy/install.sh")
    assert again.returncode == 0, again.stdout + again.stderr
    assert config.read_text().endswith("# edited\n")

    gone = chroot(root, "bash", "/src/deploy/install.sh", "--uninstall")
    assert gone.returncode == 0, gone.stdout + gone.stderr
    assert not (root / "opt/egresswatch").exists()
    assert not (root / "usr/local/bin/egresswatch").is_symlink()
    assert not (root / "etc/systemd/system/egresswatch.service").exists()
    assert config.exists() and (state / "egresswatch.db").exists()

    purged = chroot(root, "bash", "/src/deploy/install.sh", "--uninstall", "--purge")
    assert purged.returncode == 0, purged.stdout + purged.stderr
    assert not (root / "etc/egresswatch").exists() and not state.exists()
    assert "egresswatch:" not in (root / "etc/passwd").read_text()


PROBE = """
import time, urllib.error, urllib.request
for _ in range(200):
    try:
        with urllib.request.urlopen("http://127.0.0.1:8787/healthz", timeout=2) as r:
            print("healthz", r.status)
        break
    except OSError:
        time.sleep(0.3)
try:
    urllib.request.urlopen("http://127.0.0.1:8787/readyz", timeout=5)
except urllib.error.HTTPError as e:  # 503 with its reasons: no Docker here
    print("readyz", e.code, e.read().decode())
"""


def test_the_readmes_quickstart_replays_then_runs_live_in_a_fresh_debian(root: Path) -> None:
    """The README's first command, as written, on a fresh Debian: with a capture file it
    installs, replays and lists the flows; without, it captures live and serves the API until
    Ctrl-C. (A network namespace whose uplink is one end of a veth pair: nothing can leave it.)"""
    write_pcap(root / "tmp/capture.pcap", handshake_and_close())
    replayed = chroot(root, "bash", "/src/deploy/quickstart.sh", "/tmp/capture.pcap")
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert f"{SERVER}:443" in replayed.stdout.replace(" ", ""), replayed.stdout
    assert (root / "var/lib/egresswatch/egresswatch.db").exists()

    (root / "tmp/probe.py").write_text(PROBE)
    live = (
        "bash /src/deploy/quickstart.sh > /tmp/live.log 2>&1 & pid=$!; "
        "python3 /tmp/probe.py; kill -INT $pid; wait $pid; echo exit=$?"
    )
    uplink = (  # the host's ip, in the new namespace, before the chroot
        "ip link set lo up && ip link add uplink0 type veth peer name uplink1 && "
        "ip addr add 198.51.100.2/24 dev uplink0 && ip link set uplink0 up && "
        "ip link set uplink1 up && "
        "ip route add default via 198.51.100.1 && "
        f"mount -t sysfs sysfs {root}/sys && "  # this namespace's interfaces, not the host's
        f"exec chroot {root} bash -c {shlex.quote(live)}"
    )
    done = subprocess.run(["unshare", "--net", "--mount", "sh", "-c", uplink],
                          capture_output=True, text=True, env=ENV, timeout=300,
                          check=False)  # fmt: skip
    logged = root / "tmp/live.log"
    log = logged.read_text() if logged.exists() else "(no log)"
    assert "healthz 200" in done.stdout, done.stdout + done.stderr + log
    assert "exit=0" in done.stdout, done.stdout + log
    assert "uplink0" in log, log  # it captured on the uplink (the one with the default route)
