"""A batch of captured frames in one buffer: what capture hands to decode.

Frames are not copied out one by one: ``start[i]`` is where frame ``i`` begins in ``buf``. A pcap
chunk, a TPACKET_V3 ring block or a list of frames all become one of these.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Int64Array = npt.NDArray[np.int64]
Float64Array = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class FrameBatch:
    """Frames of one link type captured on one interface, in capture order."""

    buf: bytes
    """The bytes every frame lives in."""
    start: Int64Array
    """Offset of each frame in ``buf``."""
    caplen: Int64Array
    """Captured length of each frame."""
    wirelen: Int64Array
    """Length of each frame on the wire (larger than caplen when the snap length cut it)."""
    ts: Float64Array
    """Capture time of each frame, seconds since the epoch."""
    linktype: int
    iface: int
    """Index of the interface within its source (pcapng IDB, capture socket)."""

    def __len__(self) -> int:
        return len(self.start)

    @classmethod
    def from_frames(
        cls, frames: Sequence[tuple[float, bytes, int]], linktype: int, iface: int = 0
    ) -> FrameBatch:
        """Pack ``(timestamp, frame, wire_len)`` tuples into one batch."""
        caplen = np.fromiter((len(f) for _, f, _ in frames), np.int64, len(frames))
        start = np.zeros(len(frames), np.int64)
        if len(frames) > 1:
            np.cumsum(caplen[:-1], out=start[1:])
        return cls(
            buf=b"".join(f for _, f, _ in frames),
            start=start,
            caplen=caplen,
            wirelen=np.maximum(
                np.fromiter((w for _, _, w in frames), np.int64, len(frames)), caplen
            ),
            ts=np.fromiter((t for t, _, _ in frames), np.float64, len(frames)),
            linktype=linktype,
            iface=iface,
        )
