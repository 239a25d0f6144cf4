"""deploy/install.sh in a fresh Debian root (debootstrap's minimal bookworm, chrooted): it lays
down the program, the probe, the config, the policy, the user, the state directory with a
migrated database and the units; a second run keeps the owner's edits; --uninstall removes the
program and keeps config and data; --purge removes everything.

The base root is made once by debootstrap and cached in /var/cache/egresswatch-tests (about a
minute the first time); each run unpacks a fresh copy. The chroot reaches the same package
sources this machine uses (its apt and pip configuration are copied in)."""

from __future__ import annotations

import filecmp
import os
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.root

REPO = Path(__file__).resolve().parents[2]
CACHE = Path("/var/cache/egresswatch-tests")
BASE = CACHE / "bookworm-minbase.tar"
MIRROR = "http://deb.debian.org/debian"
# This machine's package sources, as a fresh machine would have its own.
HOST_FILES = ["etc/resolv.conf", "etc/xdg/pip", "etc/pip.conf"]
HOST_CA = "usr/local/share/host-ca.crt"
"""This machine's CA bundle, where Debian's ca-certificates (installed in the root) won't
overwrite it: the package proxy here presents its own certificate."""
HOST_DIRS = ["opt/wheels", "opt/pypi", "opt/pypi-more"]  # pip's local indexes here


def base_tarball() -> Path:
    if BASE.exists():
        return BASE
    if shutil.which("debootstrap") is None:
        subprocess.run(["apt-get", "install", "-y", "-qq", "debootstrap"], check=True)
    build = CACHE / "build"
    shutil.rmtree(build, ignore_errors=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    subprocess.run(["debootstrap", "--variant=minbase", "bookworm", str(build), MIRROR],
                   check=True, capture_output=True)  # fmt: skip
    with tarfile.open(BASE.with_suffix(".part"), "w") as tar:
        tar.add(build, arcname=".")
    BASE.with_suffix(".part").rename(BASE)
    shutil.rmtree(build)
    return BASE


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    """A fresh Debian root with /proc, /sys and /dev, the package sources and the repository."""
    root = tmp_path / "root"
    root.mkdir()
    subprocess.run(["tar", "-xf", str(base_tarball()), "-C", str(root)], check=True)
    for name in HOST_FILES:
        source, target = Path("/") / name, root / name
        if source.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, target, symlinks=True, dirs_exist_ok=True)
            else:
                shutil.copy2(source, target, follow_symlinks=True)
    shutil.copy2("/etc/ssl/certs/ca-certificates.crt", root / HOST_CA)
    archives = CACHE / "apt-archives"  # downloaded .debs, kept between runs
    (archives / "partial").mkdir(parents=True, exist_ok=True)
    mounts = [("/proc", "proc"), ("/sys", "sys"), ("/dev", "dev"),
              (str(archives), "var/cache/apt/archives")]  # fmt: skip
    mounts += [(f"/{d}", d) for d in HOST_DIRS if Path(f"/{d}").is_dir()]
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


def chroot(root: Path, *command: str) -> subprocess.CompletedProcess[str]:
    # This machine's pip and TLS settings (its package proxy), as a fresh machine has its own.
    env = {k: v for k, v in os.environ.items() if k.startswith("PIP_")}
    ca = f"/{HOST_CA}"
    env |= {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": "/root", "LANG": "C.UTF-8", "PIP_CERT": ca, "SSL_CERT_FILE": ca,
            "REQUESTS_CA_BUNDLE": ca}  # fmt: skip
    return subprocess.run(["chroot", str(root), *command], capture_output=True, text=True,
                          env=env, timeout=900, check=False)  # fmt: skip


def owner(path: Path, root: Path) -> str:
    uid = path.stat().st_uid
    for line in (root / "etc/passwd").read_text().splitlines():
        if line.split(":")[2] == str(uid):
            return line.split(":")[0]
    return str(uid)


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
