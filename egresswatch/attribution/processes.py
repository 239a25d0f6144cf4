"""Which process opened a flow: the kernel's connect-time reports, matched to flows.

The probe (``kernel.py``) reports each TCP connect with its 4-tuple, each unconnected UDP send
with its 4-tuple, and each UDP connect with its destination only (its port is not chosen yet).
A flow takes the latest report for its own local port and destination made before it started
(a little clock slack allowed); a UDP flow with no such report takes the latest UDP connect to
its destination from its own address's host or container, within a few seconds. No report, no
process: never a guess from a later /proc lookup.
"""

from __future__ import annotations

import os
import re
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from egresswatch.attribution.kernel import Connect, ProbeError, cgroup2_root

_CONTAINER_ID = re.compile(r"[/-]([0-9a-f]{64})(?:\.scope)?$")
_MAX_REPORTS = 500_000
_SLACK = 0.5  # seconds: a report is stamped by another clock than the packets
_UDP_CONNECT_WINDOW = 5.0  # seconds between a UDP connect and its first datagram, at most


@dataclass(frozen=True, slots=True)
class Process:
    """What a flow's record says about the process that opened it."""

    pid: int
    comm: str
    uid: int
    exe: str | None
    cmdline: str | None
    cgroup: int
    container_id: str | None
    """The container the process runs in, from its cgroup (``/docker/<id>``,
    ``docker-<id>.scope``, ``libpod-<id>.scope``, ...): known without Docker's API, and for
    containers on the host's network, whose addresses are the host's."""
    place_known: bool = True
    """False when the process was gone before its cgroup could be read: then neither the
    host nor any container can be ruled out."""


class ProcessMap:
    """Connect reports by (protocol, local port, destination, destination port). Thread-safe:
    the probe's thread adds while the pipeline's looks up."""

    def __init__(
        self, *, keep: float = 600.0, proc: Path = Path("/proc"), cgroups: Path | None = None
    ) -> None:
        self._keep = keep
        self._proc = proc
        self._cgroup_root = cgroups
        if cgroups is None:
            try:
                self._cgroup_root = cgroup2_root()
            except ProbeError:
                self._cgroup_root = None  # no cgroup2, no probe: no reports to resolve either
        self._by_key: dict[tuple[int, int, str, int], list[tuple[Connect, Process]]] = {}
        self._order: deque[tuple[float, tuple[int, int, str, int]]] = deque()
        self._lock = threading.Lock()
        self._cgroups: dict[int, str | None] = {}
        """cgroup id -> container id (None: not a container's); ids are never reused."""
        self._gone_cgroups: set[int] = set()
        self.reports = 0

    def add(self, c: Connect) -> None:
        """A report from the probe (called in its thread: reads /proc while the process is
        most likely still there, for the executable and command line)."""
        exe, cmdline = self._details(c.pid)
        container_id, place_known = self._container(c)
        process = Process(c.pid, c.comm, c.uid, exe, cmdline, c.cgroup, container_id,
                          place_known=place_known)  # fmt: skip
        key = (c.proto, c.sport, c.dst, c.dport)
        with self._lock:
            self._by_key.setdefault(key, []).append((c, process))
            self._order.append((c.time, key))
            self.reports += 1
            if len(self._order) > _MAX_REPORTS:  # a flood of sockets: the oldest go first
                self._drop_oldest()

    def owner(
        self, proto: int, src: str, sport: int, dst: str, dport: int, at: float
    ) -> Process | None:
        """The process that opened the flow from ``src:sport`` to ``dst:dport`` starting ``at``."""
        with self._lock:
            found = self._latest(self._by_key.get((proto, sport, dst, dport), ()), src, at, None)
            if found is None and proto == 17:
                found = self._latest(
                    self._by_key.get((proto, 0, dst, dport), ()), src, at, _UDP_CONNECT_WINDOW
                )
        return found

    def forget(self, now: float) -> None:
        """Drop reports older than ``keep``."""
        with self._lock:
            while self._order and now - self._order[0][0] > self._keep:
                self._drop_oldest()

    def _drop_oldest(self) -> None:
        ts, key = self._order.popleft()
        reports = [r for r in self._by_key.get(key, ()) if r[0].time > ts]
        if reports:
            self._by_key[key] = reports
        else:
            self._by_key.pop(key, None)

    @staticmethod
    def _latest(
        reports: Sequence[tuple[Connect, Process]], src: str, at: float, window: float | None
    ) -> Process | None:
        best: tuple[Connect, Process] | None = None
        for report in reports:
            c = report[0]
            if c.time > at + _SLACK or (c.src is not None and c.src != src):
                continue
            if window is not None and at - c.time > window:
                continue
            if best is None or c.time > best[0].time:
                best = report
        return None if best is None else best[1]

    def _container(self, c: Connect) -> tuple[str | None, bool]:
        """The container id in the reporting process's cgroup path (None: the host's), and
        whether that could be told at all. Cached by cgroup id (0: not known, never cached)."""
        if c.cgroup and c.cgroup in self._cgroups:
            return self._cgroups[c.cgroup], True
        try:
            text = (self._proc / str(c.pid) / "cgroup").read_text()
        except OSError:
            return self._container_by_cgroup_id(c.cgroup)
        path = next((line[3:] for line in text.splitlines() if line.startswith("0::")), "")
        container_id = _container_in(path)
        if c.cgroup:
            self._cgroups[c.cgroup] = container_id
        return container_id, True

    def _container_by_cgroup_id(self, cgroup: int) -> tuple[str | None, bool]:
        """A process that lived a millisecond is gone before its /proc is read, but its cgroup
        is a directory that outlives it, whose inode number is the id the kernel reported."""
        if not cgroup or self._cgroup_root is None or cgroup in self._gone_cgroups:
            return None, False
        for inode, path in _cgroup_directories(self._cgroup_root):
            self._cgroups.setdefault(inode, _container_in(path))
        if cgroup in self._cgroups:
            return self._cgroups[cgroup], True
        self._gone_cgroups.add(cgroup)  # removed already: walking again would not find it
        return None, False

    def _details(self, pid: int) -> tuple[str | None, str | None]:
        """Executable and command line, while the process is there."""
        base = self._proc / str(pid)
        try:
            exe: str | None = str((base / "exe").readlink())
        except OSError:
            exe = None
        try:
            raw = (base / "cmdline").read_bytes()
            cmdline = raw.rstrip(b"\0").replace(b"\0", b" ").decode("utf-8", "replace") or None
        except OSError:
            cmdline = None
        return exe, cmdline


def _container_in(cgroup_path: str) -> str | None:
    found = _CONTAINER_ID.search(cgroup_path)
    return found.group(1) if found else None


def _cgroup_directories(root: Path) -> list[tuple[int, str]]:
    """(inode, path below the root) of every cgroup: a few hundred on a busy host."""
    found: list[tuple[int, str]] = []
    pending = [(str(root), "")]
    while pending:
        directory, relative = pending.pop()
        try:
            entries = list(os.scandir(directory))
        except OSError:
            continue  # removed while walking
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                path = f"{relative}/{entry.name}"
                found.append((entry.inode(), path))
                pending.append((entry.path, path))
    return found
