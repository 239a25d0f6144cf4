"""What the daemon captures from: either engine, behind one small interface.

``ring`` (LiveCapture): egresswatch's own TPACKET_V3 rings, every packet, exact counts; needs
CAP_NET_RAW itself. ``tshark`` (TsharkCapture): dumpcap and tshark capture only the packets that
open, close or name a flow; capture privileges stay with dumpcap.
"""

from __future__ import annotations

import queue
from collections import Counter
from typing import TYPE_CHECKING, Protocol

from egresswatch.capture.frames import FrameBatch
from egresswatch.capture.live import LiveCapture
from egresswatch.capture.ring import RingGeometry

if TYPE_CHECKING:
    from egresswatch.config import CaptureSettings


class CaptureSource(Protocol):
    """Live frames from a changing set of interfaces, through a bounded queue."""

    frames: queue.Queue[FrameBatch]
    dropped: Counter[str]
    """Packets dropped because ``frames`` was full, by interface."""

    def open(self, interfaces: dict[str, bool]) -> None:
        """Start on these interfaces (name -> promiscuous), or raise one clear CaptureError."""

    def watch(self, interfaces: dict[str, bool]) -> None:
        """Capture on these interfaces from now on."""

    def interface_name(self, ifindex: int) -> str:
        """The name of a FrameBatch's ``iface``."""

    @property
    def interfaces(self) -> list[str]:
        """The interfaces captured on now."""

    def stats(self) -> dict[str, tuple[int, int]]:
        """Per interface: (packets captured, packets dropped before egresswatch saw them)."""

    def close(self) -> None:
        """Stop capturing (again: does nothing). Batches already in ``frames`` stay there."""


def capture_source(settings: CaptureSettings) -> CaptureSource:
    """The engine ``settings.engine`` names, not yet opened."""
    if settings.engine == "tshark":
        # pyshark is imported only when this engine is asked for
        from egresswatch.capture.tshark import TsharkCapture  # noqa: PLC0415

        return TsharkCapture(
            snaplen=settings.snaplen,
            buffer_mib=settings.ring_blocks,
            flush_interval=settings.block_timeout_ms / 1000,
            queue_batches=settings.queue_batches,
        )
    geometry = RingGeometry(
        block_count=settings.ring_blocks,
        block_timeout_ms=settings.block_timeout_ms,
        snaplen=settings.snaplen,
    )
    return LiveCapture(geometry, queue_batches=settings.queue_batches)
