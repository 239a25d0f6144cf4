"""When the eBPF probe cannot load: the socket behind a flow, looked up as the flow starts.

sock_diag (netlink) finds the socket by its 4-tuple and gives its inode and owner uid; the
process holding that inode is found by reading ``/proc/<pid>/fd``. This only works while the
socket is still open when egresswatch sees the flow's first packets (a tenth of a second or
more later), and only for sockets in egresswatch's own network namespace (the host's): it misses
most short-lived processes and every process inside a container with its own network. The log
and the status line say so; the probe is the real answer.
"""

from __future__ import annotations

import os
import socket
import struct
import time
from pathlib import Path

from egresswatch.attribution.kernel import Connect

_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLMSG_ERROR, _NLMSG_DONE = 2, 3
_HEADER = struct.Struct("=IHHII")
_REQUEST = struct.Struct("=BBBBI")  # family, protocol, ext, pad, states
_SOCKID = struct.Struct("!HH16s16s")  # sport, dport, src, dst (then if, cookie: host order)
_ALL_STATES = 0xFFFFFFFF
_RESCAN = 1.0  # seconds between full /proc fd scans, at most


class SocketOwners:
    """Finds the process behind a host socket, as a Connect report for a ProcessMap."""

    def __init__(self, proc: Path = Path("/proc")) -> None:
        self._proc = proc
        self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, _NETLINK_SOCK_DIAG)
        self._sock.settimeout(1.0)
        self._owners: dict[int, int] = {}  # socket inode -> pid
        self._scanned = 0.0
        self._seq = 0

    def close(self) -> None:
        self._sock.close()

    def lookup(
        self, proto: int, src: str, sport: int, dst: str, dport: int, at: float
    ) -> Connect | None:
        """The process holding the socket ``src:sport -> dst:dport`` now, if it is still open."""
        found = self._diag(proto, src, sport, dst, dport)
        if found is None:
            return None
        inode, uid = found
        pid = self._owner(inode)
        if pid is None:
            return None
        comm = _read(self._proc / str(pid) / "comm").strip()
        return Connect(time=at, proto=proto, src=src, sport=sport, dst=dst, dport=dport, pid=pid,
                       tid=pid, uid=uid, gid=0, comm=comm, cgroup=0, cookie=inode)  # fmt: skip

    def _diag(
        self, proto: int, src: str, sport: int, dst: str, dport: int
    ) -> tuple[int, int] | None:
        family = socket.AF_INET6 if ":" in src else socket.AF_INET
        pad = b"" if family == socket.AF_INET6 else bytes(12)
        if proto == socket.IPPROTO_UDP:  # udp_diag looks UDP sockets up the other way round
            src, sport, dst, dport = dst, dport, src, sport
        sockid = _SOCKID.pack(sport, dport, socket.inet_pton(family, src) + pad,
                              socket.inet_pton(family, dst) + pad)  # fmt: skip
        body = (
            _REQUEST.pack(family, proto, 0, 0, _ALL_STATES)
            + sockid
            + struct.pack("=IQ", 0, 2**64 - 1)
        )
        self._seq += 1
        self._sock.send(
            _HEADER.pack(_HEADER.size + len(body), _SOCK_DIAG_BY_FAMILY, 1, self._seq, 0) + body
        )
        try:
            while True:  # a late answer to an earlier question is not this one's
                reply = self._sock.recv(65536)
                length, kind, _, seq, _ = _HEADER.unpack_from(reply)
                if seq == self._seq:
                    break
        except OSError:
            return None
        if kind in (_NLMSG_ERROR, _NLMSG_DONE) or length < _HEADER.size + 72:
            return None
        uid, inode = struct.unpack_from("=II", reply, _HEADER.size + 64)
        return inode, uid

    def _owner(self, inode: int) -> int | None:
        pid = self._owners.get(inode)
        if pid is None and time.monotonic() - self._scanned >= _RESCAN:
            self._scan()
            pid = self._owners.get(inode)
        return pid

    def _scan(self) -> None:
        self._scanned = time.monotonic()
        owners: dict[int, int] = {}
        for entry in os.scandir(self._proc):
            if not entry.name.isdigit():
                continue
            try:
                fds = os.scandir(f"{entry.path}/fd")
                with fds:
                    for fd in fds:
                        target = os.readlink(fd.path)
                        if target.startswith("socket:["):
                            owners[int(target[8:-1])] = int(entry.name)
            except OSError:
                continue
        self._owners = owners


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""
