"""deploy/Dockerfile and deploy/compose.yaml, with a real dockerd: the image is built from the
repository with Docker's legacy builder and no network at all (its bases are the cached Debian
root of tests/deploy/debian.py imported into Docker, one as it is and one stripped to what the
Dockerfile's last stage asks for; pip installs from the cached wheelhouse), then run as
compose.yaml says (host network and pid, every capability dropped but the ones it adds,
no-new-privileges, a read-only root, the Docker socket read-only, the config and state volumes)
while a container of the test's own connects to the test's server. The flow is read back from
the REST API on the host's 127.0.0.1:8787, attributed to that container and its process.
The test turns compose.yaml into that ``docker run`` itself (failing on a key it does not know),
and the same command must be the one docs/deploy.md shows; docker compose or docker-compose,
when installed (tests/run.sh installs docker-compose), must read the file too.

Docker 20.10 (Debian 12's docker.io) refuses CAP_BPF and CAP_PERFMON as unknown: on it, the
test shows the refusal, then runs the container with CAP_SYS_ADMIN in their place, as
docs/deploy.md says to on that version. On Docker 23 or later the file runs as written.

The built image is kept, tagged by a digest of everything that went into it, so that a second
run does not build it again; a stale one is removed once a new one is built. The two base
images are kept too (``egresswatch-test/bookworm-*``).

Network safety: as in tests/docker, the client container reaches only the resolver's address on
``lo`` (``ip route get`` must say local first), and the build runs with ``--network none``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.capture.netlab import sh
from tests.deploy.debian import PACKAGES, REPO, cached_root, wheelhouse
from tests.docker.conftest import PORT, route_is_local
from tests.docker.test_service_capabilities import get, unit_capabilities

pytestmark = pytest.mark.root

DOCKERFILE = REPO / "deploy" / "Dockerfile"
COMPOSE = REPO / "deploy" / "compose.yaml"
DOCS = REPO / "docs" / "deploy.md"
BUILT = "egresswatch-test/egresswatch"
API = "http://127.0.0.1:8787"
DAEMON, CLIENT = "ewt-image", "ewt-image-client"
CAP_NUMBERS = {"NET_ADMIN": 12, "NET_RAW": 13, "SYS_PTRACE": 19, "SYS_ADMIN": 21,
               "PERFMON": 38, "BPF": 39}  # fmt: skip


def service() -> dict[str, Any]:
    [svc] = yaml.safe_load(COMPOSE.read_text())["services"].values()
    return dict(svc)


def run_args(
    svc: dict[str, Any], *, sources: dict[str, Path] | None = None, **replace: Any
) -> list[str]:
    """The ``docker run`` options that say what compose.yaml's service says. ``sources``: host
    directories in place of the file's, by the path they are mounted on; ``replace``: values in
    place of the file's (``container_name``, ``cap_add``, ``restart``)."""
    svc = {**svc, **replace}
    args: list[str] = []
    for key, value in svc.items():
        if key in ("build", "image"):  # how the image is made and named: the test builds its own
            continue
        if key in _ONE:
            args += [_ONE[key], str(value)]
        elif key in _EACH:
            values = [_volume(v, sources or {}) for v in value] if key == "volumes" else value
            args += [a for v in values for a in (_EACH[key], v)]
        elif key == "read_only":
            args += ["--read-only"] if value else []
        elif key == "stop_grace_period":
            args += ["--stop-timeout", str(value).removesuffix("s")]
        else:
            pytest.fail(f"compose.yaml: the test does not know how to run {key!r}")
    return args


_ONE = {"container_name": "--name", "restart": "--restart", "network_mode": "--network",
        "pid": "--pid"}  # fmt: skip
_EACH = {"cap_drop": "--cap-drop", "cap_add": "--cap-add", "security_opt": "--security-opt",
         "tmpfs": "--tmpfs", "volumes": "-v"}  # fmt: skip


def _volume(value: str, sources: dict[str, Path]) -> str:
    rest = value.partition(":")[2]
    target = rest.partition(":")[0]
    return f"{sources[target]}:{rest}" if target in sources else value


def docker_major() -> int:
    return int(sh("docker", "version", "-f", "{{.Server.Version}}").split(".")[0])


def capabilities() -> list[str]:
    """compose.yaml's capabilities, or on Docker 20.10 what docs/deploy.md says to grant there."""
    caps = list(service()["cap_add"])
    if docker_major() < 23:
        caps = [c for c in caps if c not in ("BPF", "PERFMON")] + ["SYS_ADMIN"]
    return caps


def dockerfile_packages() -> tuple[list[str], list[str]]:
    """The Debian packages of the Dockerfile's build stage and of its last stage."""
    build, run = re.findall(r"for p in ([^;]+); do", DOCKERFILE.read_text())
    return build.split(), run.split()


def exists(ref: str) -> bool:
    return not subprocess.run(
        ["docker", "image", "inspect", ref], capture_output=True, check=False
    ).returncode


def image_id(ref: str) -> str:
    return sh("docker", "image", "inspect", "-f", "{{.Id}}", ref).strip()


def base_images() -> tuple[str, str]:
    """The cached Debian root as an image (it holds the build stage's packages already), and the
    same stripped to the last stage's packages and Debian's required ones: no compiler."""
    root = cached_root()
    tag = root.stem.removeprefix("bookworm-")
    build = f"egresswatch-test/bookworm-build:{tag}"
    if not exists(build):
        sh("docker", "import", str(root), build, timeout=600)
    packages = dockerfile_packages()[1]
    run = f"egresswatch-test/bookworm-run:{tag}-{_digest(' '.join(packages).encode())[:8]}"
    if not exists(run):
        _strip(build, packages, run)
    return build, run


def _strip(base: str, keep: list[str], tag: str) -> None:
    name = f"ewt-image-strip-{os.getpid()}"
    script = (
        "apt-mark auto $(dpkg-query -W -f '${Package}\\n') >/dev/null && "
        f"apt-mark manual {' '.join(keep)} "
        "$(dpkg-query -W -f '${Package} ${Priority}\\n' | awk '$2 == \"required\" {print $1}') "
        ">/dev/null && apt-get autoremove --purge -y -qq >/dev/null && "
        "rm -rf /var/cache/apt/* /var/lib/apt/lists/*"
    )
    sh("docker", "rm", "-f", name, check=False)
    try:
        sh("docker", "run", "--name", name, "--network", "none", base, "sh", "-c", script,
           timeout=600)  # fmt: skip
        export = subprocess.Popen(["docker", "export", name], stdout=subprocess.PIPE)
        done = subprocess.run(["docker", "import", "-", tag], stdin=export.stdout,
                              capture_output=True, text=True, check=False)  # fmt: skip
        assert export.wait() == 0 and done.returncode == 0, done.stderr
    finally:
        sh("docker", "rm", "-f", name, check=False)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def context(into: Path) -> None:
    """The repository as a clone would have it (with files not yet committed, without what git
    ignores), and the wheelhouse as ``wheels/``; .dockerignore picks from it."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           cwd=REPO, capture_output=True, text=True, check=True).stdout  # fmt: skip
    for name in files.split("\0"):
        if name and (REPO / name).is_file():
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, into / name)
    shutil.copytree(wheelhouse(), into / "wheels")


def build(ctx: Path, build_base: str, run_base: str) -> str:
    """deploy/Dockerfile built in ``ctx`` by the legacy builder with no network: the image's
    tag (a digest of the context and the bases), built only if not there already."""
    args = ["--build-arg", f"BASE={run_base}", "--build-arg", f"BUILD_BASE={build_base}",
            "--build-arg", "WHEELS=wheels"]  # fmt: skip
    inputs = hashlib.sha256(" ".join([*args, image_id(build_base), image_id(run_base)]).encode())
    for path in sorted(p for p in ctx.rglob("*") if p.is_file()):
        inputs.update(str(path.relative_to(ctx)).encode() + b"\0" + path.read_bytes())
    tag = inputs.hexdigest()[:12]
    if exists(f"{BUILT}:{tag}") and exists(f"{BUILT}-build:{tag}"):
        return f"{BUILT}:{tag}"
    env = {**os.environ, "DOCKER_BUILDKIT": "0"}
    for target, ref in ((["--target", "build"], f"{BUILT}-build:{tag}"), ([], f"{BUILT}:{tag}")):
        done = subprocess.run(
            ["docker", "build", "--network", "none", "-f", "deploy/Dockerfile", *target, *args,
             "-t", ref, "."],
            cwd=ctx, env=env, capture_output=True, text=True, timeout=900, check=False,
        )  # fmt: skip
        assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    os.sync()  # a gigabyte of layers written back now, not while the next tests capture
    for repo in (BUILT, f"{BUILT}-build"):  # the images an older tree built
        for ref in sh("docker", "images", "--format", "{{.Repository}}:{{.Tag}}", repo).split():
            if not ref.endswith(f":{tag}"):
                sh("docker", "rmi", ref, check=False)
    return f"{BUILT}:{tag}"


def sources(tmp_path: Path) -> dict[str, Path]:
    """Empty directories of the test's in place of the host's /etc/egresswatch and
    /var/lib/egresswatch: the container starts on the image's built-in defaults."""
    found = {"/etc/egresswatch": tmp_path / "etc", "/var/lib/egresswatch": tmp_path / "state"}
    for path in found.values():
        path.mkdir(exist_ok=True)
    return found


def logs(name: str) -> str:
    return subprocess.run(["docker", "logs", name], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, check=False).stdout  # fmt: skip


def wait_for_log(name: str, text: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while text not in (found := logs(name)):
        running = sh("docker", "inspect", "-f", "{{.State.Running}}", name).strip() == "true"
        assert running and time.monotonic() < deadline, found
        time.sleep(0.2)
    return found


def assert_posture(name: str, caps: list[str]) -> None:
    """What Docker made of compose.yaml, and the capabilities the daemon process holds."""
    [info] = json.loads(sh("docker", "inspect", name))
    host = info["HostConfig"]
    assert sorted(c.removeprefix("CAP_") for c in host["CapAdd"]) == sorted(caps)
    assert host["CapDrop"] == ["ALL"] and host["Privileged"] is False
    assert (host["NetworkMode"], host["PidMode"], host["ReadonlyRootfs"]) == ("host", "host", True)
    assert "no-new-privileges:true" in host["SecurityOpt"]  # with label=disable, for --pid host
    mounts = {m["Destination"]: m["RW"] for m in info["Mounts"]}
    assert mounts == {"/etc/egresswatch": False, "/var/lib/egresswatch": True,
                      "/var/run/docker.sock": False, "/sys/fs/cgroup": False}  # fmt: skip
    status = Path(f"/proc/{info['State']['Pid']}/status").read_text()
    fields = dict(line.split(":\t", 1) for line in status.splitlines())
    mask = sum(1 << CAP_NUMBERS[c] for c in caps)
    assert fields["Uid"].split() == ["0"] * 4 and fields["NoNewPrivs"] == "1"
    for held in ("CapEff", "CapPrm", "CapBnd"):
        assert int(fields[held], 16) == mask, (held, fields[held])
    assert int(fields["CapAmb"], 16) == 0 and int(fields["CapInh"], 16) == 0


@pytest.fixture(scope="module")
def built(request: pytest.FixtureRequest) -> str:
    """The image, built from the repository (or the one built before from the same inputs)."""
    if os.geteuid() != 0:
        pytest.skip("needs root: dockerd, AF_PACKET, the eBPF probe")
    request.getfixturevalue("dockerd")
    build_base, run_base = base_images()
    with tempfile.TemporaryDirectory(prefix="ewt-image-") as ctx:
        context(Path(ctx))
        return build(Path(ctx), build_base, run_base)


@pytest.fixture
def daemon(built: str, tmp_path: Path) -> Iterator[str]:
    """egresswatch's container, started as compose.yaml says (under the test's own name, never
    restarted by Docker), and removed afterwards."""
    with socket.socket() as s:
        if not s.connect_ex(("127.0.0.1", 8787)):
            pytest.fail("something listens on 127.0.0.1:8787 already (compose.yaml's API)")
    args = run_args(service(), sources=sources(tmp_path), container_name=DAEMON, restart="no",
                    cap_add=capabilities())  # fmt: skip
    sh("docker", "rm", "-f", DAEMON, CLIENT, check=False)
    sh("docker", "run", "-d", *args, built)
    try:
        yield DAEMON
    finally:
        sh("docker", "rm", "-f", DAEMON, CLIENT, check=False)


def test_the_docs_and_compose_yaml_run_the_same_container() -> None:
    svc = service()
    assert svc["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
    assert svc["cap_add"] == [c.upper() for c in unit_capabilities("egresswatch.service")]
    [block] = re.findall(r"```sh\n(docker run .*?)\n```", DOCS.read_text(), re.S)
    assert shlex.split(block.replace("\\\n", " ")) == [
        "docker", "run", "-d", *run_args(svc), svc["image"]
    ]  # fmt: skip
    # the cached root must hold the build stage's packages: the offline build cannot fetch any
    assert set(dockerfile_packages()[0]) <= set(PACKAGES.split(","))


def test_compose_reads_the_file() -> None:
    if not subprocess.run(
        ["docker", "compose", "version"], capture_output=True, check=False
    ).returncode:
        compose = ["docker", "compose"]
    elif shutil.which("docker-compose"):
        compose = ["docker-compose"]
    else:
        pytest.skip("neither docker compose nor docker-compose is installed")
    done = subprocess.run([*compose, "-f", str(COMPOSE), "config", "-q"], capture_output=True,
                          text=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_the_image_carries_the_probe_and_no_compiler(built: str) -> None:
    [info] = json.loads(sh("docker", "image", "inspect", built))
    config = info["Config"]
    assert config["Entrypoint"] == ["egresswatch"]
    assert config["Cmd"] == ["run", "--listen", "127.0.0.1:8787"]
    assert config["User"] == ""  # root: Docker grants added capabilities to uid 0 only
    assert "/var/lib/egresswatch" in config["Volumes"]
    found = sh("docker", "run", "--rm", "--network", "none", "--entrypoint", "sh", built, "-c",
               "/opt/egresswatch/bin/python -c 'from egresswatch.attribution.kernel import OBJECT;"
               " print(OBJECT.stat().st_size)'; command -v clang gcc bpftool; "
               "egresswatch policy check", check=False)  # fmt: skip
    assert int(found.splitlines()[0]) > 0, found  # the probe's object, built for the image
    assert "/etc/egresswatch/policy.yaml: valid" in found
    assert "clang" not in found and "gcc" not in found and "bpftool" not in found


def test_docker_20_refuses_bpf_and_perfmon(built: str, tmp_path: Path) -> None:
    if docker_major() >= 23:
        pytest.skip("this Docker grants CAP_BPF and CAP_PERFMON")
    name = f"{DAEMON}-refused"
    args = run_args(service(), sources=sources(tmp_path), container_name=name, restart="no")
    done = subprocess.run(["docker", "run", "-d", *args, built], capture_output=True, text=True,
                          check=False)  # fmt: skip
    sh("docker", "rm", "-f", name, check=False)
    assert done.returncode != 0 and 'unknown capability: "CAP_BPF"' in done.stderr, done.stderr


def test_the_container_captures_attributes_and_serves_the_api(
    daemon: str,
    image: str,
    server: str,
    resolver: str,
    tmp_path: Path,
) -> None:
    log = wait_for_log(daemon, "capturing on")
    assert "processes from the kernel at connect time (eBPF)" in log, log
    assert "containers from the Docker API at /var/run/docker.sock" in log, log
    assert_posture(daemon, capabilities())

    route_is_local(resolver)
    # nc holds its connection 2 s, as root in a container on Docker's bridge
    client = sh("docker", "run", "-d", "--name", CLIENT, image, "sh", "-c",
                f"sleep 2 | nc {resolver} {PORT} >/dev/null").strip()  # fmt: skip
    assert sh("docker", "wait", CLIENT).strip() == "0", logs(CLIENT)
    deadline = time.monotonic() + 20
    while not (found := get(f"{API}/api/v1/flows?container={CLIENT}")[1]["items"]):
        assert time.monotonic() < deadline, f"no flow of {CLIENT} in the API:\n{logs(daemon)}"
        time.sleep(0.5)
    [flow] = found  # type: ignore[misc]
    assert (flow["dst_ip"], flow["dst_port"]) == (resolver, PORT)
    assert (flow["container_id"], flow["container_name"], flow["image"]) == (client, CLIENT, image)
    assert (flow["process"], flow["exe"], flow["user_id"]) == ("nc", "/bin/busybox", 0)
    listed = sh("docker", "exec", daemon, "egresswatch", "flows", "--container", CLIENT, "--json")
    assert [json.loads(line)["uid"] for line in listed.splitlines()] == [flow["uid"]]

    status, ready = get(f"{API}/readyz")
    [host] = ready["hosts"]  # type: ignore[misc]
    assert status == 200 and host["attribution"] == "ebpf", ready
    assert host["docker"]["reachable"] is True and "docker0" in host["interfaces"]
    [info] = json.loads(sh("docker", "inspect", daemon))
    check = info["Config"]["Healthcheck"]["Test"]  # the image's HEALTHCHECK, run by hand
    assert check[0] == "CMD" and sh("docker", "exec", daemon, *check[1:]) == ""

    sh("docker", "stop", daemon, timeout=90)  # SIGTERM, with compose.yaml's grace period
    assert sh("docker", "inspect", "-f", "{{.State.ExitCode}}", daemon).strip() == "0"
    assert "stopped:" in logs(daemon)
    assert (tmp_path / "state" / "egresswatch.db").stat().st_size > 0
