"""A one-line progress bar on a terminal (stderr), silent everywhere else."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class ProgressBar:
    """Redraws ``[#####.....] 45%  1,234,567 packets  412,000 packets/s`` in place."""

    def __init__(self, total: int, stream: TextIO = sys.stderr) -> None:
        self._total = max(total, 1)
        self._stream = stream
        self._start = time.monotonic()
        self._drawn = False

    @classmethod
    def wanted(cls, stream: TextIO = sys.stderr) -> bool:
        return stream.isatty()

    def update(self, packets: int, position: int) -> None:
        """``position``: how many of the total bytes have been read."""
        fraction = min(position / self._total, 1.0)
        rate = packets / max(time.monotonic() - self._start, 1e-9)
        filled = int(fraction * 30)
        self._stream.write(
            f"\r[{'#' * filled}{'.' * (30 - filled)}] {fraction:4.0%}  {packets:,} packets"
            f"  {rate:,.0f} packets/s"
        )
        self._stream.flush()
        self._drawn = True

    def close(self) -> None:
        if self._drawn:
            self._stream.write("\r\033[K")
            self._stream.flush()
