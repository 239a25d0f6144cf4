"""Live capture: one TPACKET_V3 ring per watched interface, read by one thread into a bounded queue.

The thread only moves blocks out of the rings. When the queue is full (decoding is behind), the
batch is dropped and counted rather than letting the rings fill: the kernel would then drop
instead, silently for everything behind it. Interfaces come and go through ``watch()``.
"""

from __future__ import annotations

import logging
import queue
import select
import threading
import time
from collections import Counter

from egresswatch.capture.frames import FrameBatch
from egresswatch.capture.ring import PacketRing, RingGeometry
from egresswatch.errors import CaptureError

_log = logging.getLogger(__name__)


class LiveCapture:
    """Rings on a changing set of interfaces, feeding ``self.frames``."""

    def __init__(self, geometry: RingGeometry, *, queue_batches: int = 256) -> None:
        self._geometry = geometry
        self.frames: queue.Queue[FrameBatch] = queue.Queue(maxsize=queue_batches)
        self._rings: dict[str, PacketRing] = {}
        self._names: dict[int, str] = {}
        self._wanted: dict[str, bool] = {}
        self._open: frozenset[str] = frozenset()
        """Names with a ring, as the reading thread last left them."""
        self._changed = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.dropped: Counter[str] = Counter()
        """Packets dropped because the queue was full, by interface."""
        self._kernel: dict[str, tuple[int, int]] = {}

    def open(self, interfaces: dict[str, bool]) -> None:
        """Open the first rings (name -> promiscuous) in the caller's thread, so a missing
        capability or interface fails the start-up with one clear error; then start reading."""
        for name, promiscuous in interfaces.items():
            self._rings[name] = PacketRing(name, self._geometry, promiscuous=promiscuous)
            self._names[self._rings[name].ifindex] = name
        self._wanted = dict(interfaces)
        self._open = frozenset(self._rings)
        self._thread = threading.Thread(target=self._run, name="capture", daemon=True)
        self._thread.start()

    def watch(self, interfaces: dict[str, bool]) -> None:
        """Capture on these interfaces from now on (opened and released by the reading thread;
        one that failed to open is tried again at the next call)."""
        if interfaces != self._wanted or set(interfaces) != self._open:
            self._wanted = dict(interfaces)
            self._changed.set()

    def interface_name(self, ifindex: int) -> str:
        return self._names.get(ifindex, f"if{ifindex}")

    @property
    def interfaces(self) -> list[str]:
        """Interfaces with a ring now (safe to read from any thread)."""
        return sorted(self._open)

    def stats(self) -> dict[str, tuple[int, int]]:
        """Per interface: (packets the kernel queued, packets the kernel dropped), since opened;
        kept for interfaces already released."""
        for ring in list(self._rings.values()):
            self._read_stats(ring)
        return dict(self._kernel)

    def _read_stats(self, ring: PacketRing) -> None:
        try:
            s = ring.stats()
        except OSError:  # closed meanwhile by the reading thread: its last figures are kept
            return
        self._kernel[ring.interface] = (s.packets, s.drops)

    def close(self) -> None:
        """Stop reading (after one last block timeout: see ``_run``) and release the rings.
        Batches already in ``frames`` stay there for the caller to take."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.stats()
        for ring in self._rings.values():
            ring.close()
        self._rings.clear()

    def _run(self) -> None:
        poller = self._poller()
        while not self._stop.is_set():
            poller = self._read(poller, 200)
        # The kernel hands over a block that is not full only after its timeout: wait that
        # long once more, so the packets of the last moments before a stop are not lost.
        last = time.monotonic() + self._geometry.block_timeout_ms / 1000 + 0.05
        while (left := last - time.monotonic()) > 0:
            poller = self._read(poller, int(left * 1000) + 1)

    def _read(self, poller: select.poll, timeout_ms: int) -> select.poll:
        """One poll of every ring, each ready one drained; the poller to use next."""
        if self._changed.is_set():
            self._changed.clear()
            self._apply()
            poller = self._poller()
        for fd, event in poller.poll(timeout_ms):
            ring = self._by_fd.get(fd)
            if ring is None:
                continue
            self._drain(ring)
            if event & select.POLLNVAL or (event & select.POLLERR and not ring.still_there()):
                self._release(ring.interface)  # its interface went away
                poller = self._poller()
        return poller

    def _drain(self, ring: PacketRing) -> None:
        for batch in ring.batches():
            try:
                self.frames.put_nowait(batch)
            except queue.Full:
                self.dropped[ring.interface] += len(batch)

    def _poller(self) -> select.poll:
        poller = select.poll()
        self._by_fd = {ring.fileno(): ring for ring in self._rings.values()}
        for fd in self._by_fd:
            poller.register(fd, select.POLLIN | select.POLLERR)
        return poller

    def _apply(self) -> None:
        wanted = self._wanted
        for name in [n for n in self._rings if n not in wanted]:
            self._release(name)
        for name, promiscuous in wanted.items():
            if name in self._rings:
                continue
            try:
                ring = PacketRing(name, self._geometry, promiscuous=promiscuous)
            except CaptureError as exc:
                _log.warning("%s (will retry)", exc)
                continue
            self._rings[name] = ring
            self._names[ring.ifindex] = name
            _log.info("capturing on %s", name)
        self._open = frozenset(self._rings)

    def _release(self, name: str) -> None:
        ring = self._rings.pop(name)
        self._drain(ring)
        self._read_stats(ring)
        ring.close()
        self._open = frozenset(self._rings)
        _log.info("released %s", name)
