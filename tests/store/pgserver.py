"""A real, throwaway PostgreSQL server for the store tests (Debian's postgresql binaries).

Run as root: initdb and the server run as the ``postgres`` OS user in a fresh temporary directory,
listening only on a unix socket inside it (no TCP port), with trust authentication.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

OS_USER = "postgres"
DATABASE = "egresswatch_test"
PORT = 5432
"""Only names the socket file (``.s.PGSQL.5432``); the server opens no TCP port."""


def pg_bin_dir() -> Path:
    """The newest ``/usr/lib/postgresql/<version>/bin`` holding initdb; AssertionError if none."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if not candidates:
        raise AssertionError(
            "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin: "
            "install them with `apt-get install postgresql` (tests/run.sh does)"
        )
    return candidates[-1].parent


def _as_postgres(*argv: str | Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["runuser", "-u", OS_USER, "--", *map(str, argv)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        raise AssertionError(
            f"{' '.join(map(str, argv))} failed ({result.returncode}):\n"
            f"{result.stdout}\n{result.stderr}"
        )
    return result


@contextmanager
def postgres_server() -> Iterator[str]:
    """Start a server and create a database; yield its ``postgresql+psycopg://`` URL; tear down."""
    if os.geteuid() != 0:
        raise AssertionError("the PostgreSQL tests run as root (they start the server as postgres)")
    bindir = pg_bin_dir()
    try:
        owner = pwd.getpwnam(OS_USER)
    except KeyError as exc:
        raise AssertionError(f"no {OS_USER!r} OS user: install Debian's postgresql") from exc
    # Short path under /tmp: a unix socket path must fit in 107 bytes.
    root = Path(tempfile.mkdtemp(prefix="egw-pg-", dir="/tmp"))
    os.chown(root, owner.pw_uid, owner.pw_gid)
    data, log = root / "data", root / "server.log"
    try:
        _as_postgres(
            bindir / "initdb", "-D", data, "-U", OS_USER, "--auth=trust", "-E", "UTF8", "--no-sync"
        )
        options = f"-k {root} -p {PORT} -c listen_addresses='' -c fsync=off"
        try:
            _as_postgres(bindir / "pg_ctl", "-D", data, "-l", log, "-o", options, "-w", "start")
        except AssertionError as exc:
            server_log = log.read_text(errors="replace") if log.exists() else ""
            raise AssertionError(f"{exc}\nserver log:\n{server_log}") from exc
        try:
            _as_postgres(bindir / "createdb", "-h", root, "-p", str(PORT), "-U", OS_USER, DATABASE)
            yield f"postgresql+psycopg://{OS_USER}@/{DATABASE}?host={root}&port={PORT}"
        finally:
            _as_postgres(bindir / "pg_ctl", "-D", data, "-m", "immediate", "-w", "stop")
    finally:
        shutil.rmtree(root, ignore_errors=True)
