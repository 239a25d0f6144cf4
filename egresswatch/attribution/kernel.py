"""The eBPF connect-time probe, loaded through the system libbpf (``libbpf.so.1``) with ctypes.

``bpf/connect.bpf.c`` (built by ``python -m egresswatch.attribution.build``) is attached to the
cgroup v2 root: every connect and UDP send on the host and in every container reports its
process (pid, comm, uid, cgroup) with the connection's addresses, into a ring buffer read here.
The links close with the process, so nothing stays attached after egresswatch exits.
"""

from __future__ import annotations

import ctypes
import os
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from egresswatch.errors import EgressWatchError

OBJECT = Path(__file__).with_name("bpf") / "connect.bpf.o"
PROGRAMS = ("ew_connect4", "ew_connect6", "ew_sendmsg4", "ew_sendmsg6", "ew_sockops")
_EVENT = struct.Struct("<QQQIIII16sBBHHH16s16s")
_V4_MAPPED = bytes(10) + b"\xff\xff"
_RING_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)


class ProbeError(EgressWatchError):
    """The eBPF probe could not be loaded or attached (the reason says why)."""


@dataclass(frozen=True, slots=True)
class Connect:
    """A process opening a connection (TCP) or sending a datagram (UDP), as the kernel saw it."""

    time: float
    """Wall-clock time of the connect or send."""
    proto: int
    src: str | None
    """Local address the socket used; None when not known yet (a UDP connect)."""
    sport: int
    """Local port; 0 when not bound yet (a UDP connect)."""
    dst: str
    dport: int
    pid: int
    """Process id (the thread group id: what ps shows)."""
    tid: int
    uid: int
    gid: int
    comm: str
    """The process name as the kernel keeps it (15 characters at most)."""
    cgroup: int
    """cgroup v2 id: which container (or systemd unit) the process runs in."""
    cookie: int
    """The socket's cookie: the same for every event of one socket."""


def _text(family: int, raw: bytes) -> str | None:
    import socket  # noqa: PLC0415 - only here

    if family == 2:
        return None if raw[:4] == bytes(4) else socket.inet_ntop(socket.AF_INET, raw[:4])
    if raw[:12] == _V4_MAPPED:  # a dual-stack socket reaching IPv4: the packets are IPv4
        return socket.inet_ntop(socket.AF_INET, raw[12:16])
    return None if raw == bytes(16) else socket.inet_ntop(socket.AF_INET6, raw)


def parse_event(data: bytes, boot: float) -> Connect:
    """One ring-buffer record (``struct event`` in connect.bpf.c); ``boot``: wall-clock time of
    CLOCK_MONOTONIC's zero."""
    ts, cookie, cgroup, tgid, pid, uid, gid, comm, family, proto, sport, dport, _, saddr, daddr = (
        _EVENT.unpack_from(data)
    )
    return Connect(
        time=boot + ts / 1e9,
        proto=proto,
        src=_text(family, saddr),
        sport=sport,
        dst=_text(family, daddr) or "",
        dport=dport,
        pid=tgid,
        tid=pid,
        uid=uid,
        gid=gid,
        comm=comm.split(b"\0", 1)[0].decode("utf-8", "replace"),
        cgroup=cgroup,
        cookie=cookie,
    )


class ConnectProbe:
    """Loads and attaches the probe; ``start(handler)`` reads its events in a thread."""

    def __init__(self, obj: Path = OBJECT, cgroup_root: Path | None = None) -> None:
        if not obj.exists():
            raise ProbeError(
                f"{obj} is not built (python -m egresswatch.attribution.build: needs clang, "
                "libbpf-dev and bpftool)"
            )
        root = cgroup_root or cgroup2_root()
        try:  # 1.x only: 0.x returns error pointers where 1.x returns NULL
            self._lib = ctypes.CDLL("libbpf.so.1", use_errno=True)
        except OSError as exc:
            raise ProbeError(f"libbpf not found ({exc}): apt-get install libbpf1") from exc
        self._declare()
        self._links: list[int] = []
        self._obj = self._lib.bpf_object__open_file(str(obj).encode(), None)
        if not self._obj:
            raise ProbeError(f"{obj}: cannot open: {os.strerror(ctypes.get_errno())}")
        if self._lib.bpf_object__load(self._obj):
            self.close()
            raise ProbeError(f"{obj}: the kernel refused it: {os.strerror(ctypes.get_errno())} "
                             "(needs CAP_BPF and CAP_NET_ADMIN, or root, and BTF)")  # fmt: skip
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            for program in PROGRAMS:
                prog = self._lib.bpf_object__find_program_by_name(self._obj, program.encode())
                link = self._lib.bpf_program__attach_cgroup(prog, fd) if prog else None
                if not link:
                    self.close()
                    raise ProbeError(f"{program}: cannot attach to {root}: "
                                     f"{os.strerror(ctypes.get_errno())}")  # fmt: skip
                self._links.append(link)
        finally:
            os.close(fd)
        self._ring_fd = self._lib.bpf_object__find_map_fd_by_name(self._obj, b"events")
        self._boot = time.time() - time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lost = 0
        """Events that could not be read (never expected: counted if it happens)."""

    def start(self, handler: Callable[[Connect], None]) -> None:
        """Call ``handler`` for every event, from a reading thread, until ``close``."""
        boot = self._boot

        def on_event(_ctx: int | None, data: int, size: int) -> int:
            try:
                handler(parse_event(ctypes.string_at(data, size), boot))
            except Exception:  # a handler bug must not stop the reading
                self.lost += 1
            return 0

        self._callback = _RING_CALLBACK(on_event)  # kept: libbpf holds the pointer
        ring = self._lib.ring_buffer__new(self._ring_fd, self._callback, None, None)
        if not ring:
            raise ProbeError(f"ring buffer: {os.strerror(ctypes.get_errno())}")
        self._ring = ring

        def read() -> None:
            while not self._stop.is_set():
                self._lib.ring_buffer__poll(ring, 200)  # ctypes lets the GIL go while it waits

        self._thread = threading.Thread(target=read, name="bpf", daemon=True)
        self._thread.start()

    def close(self) -> None:
        if getattr(self, "_thread", None) is not None:
            self._stop.set()
            assert self._thread is not None
            self._thread.join(timeout=2)
            self._lib.ring_buffer__free(self._ring)
            self._thread = None
        for link in self._links:
            self._lib.bpf_link__destroy(link)
        self._links = []
        if self._obj:
            self._lib.bpf_object__close(self._obj)
            self._obj = None

    def _declare(self) -> None:
        lib, p, c_int = self._lib, ctypes.c_void_p, ctypes.c_int
        signatures = {
            "bpf_object__open_file": (p, [ctypes.c_char_p, p]),
            "bpf_object__load": (c_int, [p]),
            "bpf_object__close": (None, [p]),
            "bpf_object__find_program_by_name": (p, [p, ctypes.c_char_p]),
            "bpf_object__find_map_fd_by_name": (c_int, [p, ctypes.c_char_p]),
            "bpf_program__attach_cgroup": (p, [p, c_int]),
            "bpf_link__destroy": (c_int, [p]),
            "ring_buffer__new": (p, [c_int, _RING_CALLBACK, p, p]),
            "ring_buffer__poll": (c_int, [p, c_int]),
            "ring_buffer__free": (None, [p]),
        }
        for name, (restype, argtypes) in signatures.items():
            fn = getattr(lib, name)
            fn.restype, fn.argtypes = restype, argtypes


def cgroup2_root(mounts: Path = Path("/proc/self/mounts")) -> Path:
    """Where cgroup v2 is mounted: /sys/fs/cgroup/unified beside v1, /sys/fs/cgroup alone."""
    for line in mounts.read_text().splitlines():
        fields = line.split()
        if len(fields) > 2 and fields[2] == "cgroup2":
            return Path(fields[1])
    raise ProbeError("no cgroup v2 hierarchy is mounted: the probe attaches to its root")
