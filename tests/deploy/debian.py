"""What the deploy tests install from instead of a network, prepared once and cached in
/var/cache/egresswatch-tests (as tests/run.sh installs the test tools): a Debian bookworm root
made by debootstrap with the Debian packages deploy/install.sh asks for (a few minutes the first
time), and a wheelhouse of egresswatch's Python dependencies (pip download, again when
pyproject.toml changes). tests/deploy/test_install.py chroots into a copy of the root;
tests/docker/test_image.py imports it into Docker as the base of deploy/Dockerfile."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CACHE = Path("/var/cache/egresswatch-tests")
PACKAGES = "python3,python3-venv,clang,libbpf-dev,libbpf1,bpftool"  # what install.sh installs
MIRROR = "http://deb.debian.org/debian"


def cached_root() -> Path:
    tag = hashlib.sha256(PACKAGES.encode()).hexdigest()[:12]
    tarball = CACHE / f"bookworm-{tag}.tar"
    if tarball.exists():
        return tarball
    if shutil.which("debootstrap") is None:
        subprocess.run(["apt-get", "install", "-y", "-qq", "debootstrap"], check=True)
    build = CACHE / f"build-{tag}"
    shutil.rmtree(build, ignore_errors=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    subprocess.run(["debootstrap", "--variant=minbase", f"--include={PACKAGES}", "bookworm",
                    str(build), MIRROR], check=True, capture_output=True)  # fmt: skip
    with tarfile.open(tarball.with_suffix(".part"), "w") as tar:
        tar.add(build, arcname=".")
    tarball.with_suffix(".part").rename(tarball)
    shutil.rmtree(build)
    return tarball


def wheelhouse() -> Path:
    tag = hashlib.sha256((REPO / "pyproject.toml").read_bytes()).hexdigest()[:12]
    wheels = CACHE / f"wheels-{tag}"
    if not wheels.exists():
        part = wheels.with_suffix(".part")
        shutil.rmtree(part, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "-d", str(part), str(REPO),
                        "setuptools>=68", "wheel"], check=True)  # fmt: skip
        part.rename(wheels)
    return wheels
