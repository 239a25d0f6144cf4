"""pcap and pcapng files, plain or gzip-compressed, read in large chunks.

``batches()`` is the replay hot path: classic pcap records are located in the read buffer and handed
on as a FrameBatch without copying a single frame. Iterating a PcapFile yields plain tuples
``(timestamp, linktype, frame, wire_len, interface_index)`` for everything else.
"""

from __future__ import annotations

import gzip
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from egresswatch.capture.frames import FrameBatch
from egresswatch.errors import CaptureError

Frame = tuple[float, int, bytes, int, int]

_CHUNK = 1 << 24
BATCH_PACKETS = 1 << 15
_PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6),
    b"\xa1\xb2\xc3\xd4": (">", 1e-6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9),
    b"\xa1\xb2\x3c\x4d": (">", 1e-9),
}
_PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"
_MAX_RECORD = 1 << 24  # no frame or pcapng block is this large; a bigger length means corruption


@dataclass(frozen=True, slots=True)
class CaptureInterface:
    """An interface a capture file describes (pcap has one, pcapng one per IDB)."""

    linktype: int
    name: str
    """The interface name recorded in the file (pcapng if_name), or ""."""


class PcapFile:
    """Iterate the frames of a pcap or pcapng file (optionally .gz)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.interfaces: list[CaptureInterface] = []
        self.size = path.stat().st_size if path.exists() else 0
        self._raw: BinaryIO | None = None

    @property
    def position(self) -> int:
        """Bytes of the file (compressed, for .gz) consumed so far: for progress display."""
        return self._raw.tell() if self._raw is not None and not self._raw.closed else self.size

    def __iter__(self) -> Iterator[Frame]:
        return self._read(batched=False)  # type: ignore[return-value]

    def batches(self) -> Iterator[FrameBatch]:
        """The file as FrameBatches of up to BATCH_PACKETS frames (one link type each)."""
        return self._read(batched=True)  # type: ignore[return-value]

    def _read(self, *, batched: bool) -> Iterator[Frame | FrameBatch]:
        try:
            raw = self._raw = self.path.open("rb")
        except OSError as exc:
            raise CaptureError(f"cannot open capture file {self.path}: {exc.strerror}") from exc
        with raw:
            stream: BinaryIO = raw
            if raw.read(2) == b"\x1f\x8b":
                stream = gzip.GzipFile(fileobj=raw)  # type: ignore[assignment]
            raw.seek(0)
            reader = _ChunkReader(stream)
            try:
                magic = reader.peek(4)
                if magic in _PCAP_MAGICS:
                    endian, resolution = _PCAP_MAGICS[magic]
                    if batched:
                        yield from self._pcap_batches(reader, endian, resolution)
                    else:
                        yield from self._pcap(reader, endian, resolution)
                elif magic == _PCAPNG_SHB:
                    frames = self._pcapng(reader)
                    yield from _batched(frames) if batched else frames
                else:
                    raise CaptureError(f"{self.path} is not a pcap or pcapng file")
            except (OSError, EOFError, gzip.BadGzipFile) as exc:
                raise CaptureError(f"cannot read {self.path}: {exc}") from exc

    def _pcap_header(self, reader: _ChunkReader, endian: str) -> int:
        header = reader.take(24)
        if len(header) < 24:
            raise CaptureError(f"{self.path}: truncated pcap file header")
        linktype: int = struct.unpack_from(endian + "I", header, 20)[0] & 0x0FFFFFFF
        self.interfaces.append(CaptureInterface(linktype=linktype, name=""))
        return linktype

    def _pcap_batches(
        self, reader: _ChunkReader, endian: str, resolution: float
    ) -> Iterator[FrameBatch]:
        linktype = self._pcap_header(reader, endian)
        incl_at = struct.Struct(endian + "I").unpack_from
        fields = np.dtype(endian + "u4")
        while True:
            buf, pos = reader.window(16)
            size = len(buf)
            starts: list[int] = []
            add = starts.append
            p = pos
            last_header = size - 16
            # The one per-record Python loop: find where each record starts.
            for _ in range(BATCH_PACKETS):
                if p > last_header:
                    break
                end = p + 16 + incl_at(buf, p + 8)[0]
                if end > size:
                    break
                add(p)
                p = end
            if not starts:
                incl = incl_at(buf, pos + 8)[0] if size - pos >= 16 else 0
                if incl > _MAX_RECORD:
                    raise CaptureError(f"{self.path}: corrupt record (length {incl})")
                buf, pos = reader.window(16 + incl)
                if len(buf) - pos < 16 + incl:
                    return  # a partial record at the end of a cut file
                continue
            reader.seek(p)
            at = np.array(starts, np.int64)
            raw = np.frombuffer(buf, np.uint8)
            header = raw[at[:, None] + np.arange(16)].copy().view(fields).astype(np.int64)
            yield FrameBatch(
                buf=buf,
                start=at + 16,
                caplen=header[:, 2],
                wirelen=np.maximum(header[:, 3], header[:, 2]),
                ts=header[:, 0] + header[:, 1] * resolution,
                linktype=linktype,
                iface=0,
            )

    def _pcap(self, reader: _ChunkReader, endian: str, resolution: float) -> Iterator[Frame]:
        linktype = self._pcap_header(reader, endian)
        record = struct.Struct(endian + "IIII").unpack_from
        buf, pos = reader.window(16)
        size = len(buf)
        while True:  # the hot loop: records are sliced straight out of the chunk
            if size - pos < 16:
                reader.seek(pos)
                buf, pos = reader.window(16)
                size = len(buf)
                if size - pos < 16:
                    return  # clean end, or a partial record header at a cut file's end
            sec, frac, incl, orig = record(buf, pos)
            end = pos + 16 + incl
            if end > size:
                if incl > _MAX_RECORD:
                    raise CaptureError(f"{self.path}: corrupt record (length {incl})")
                reader.seek(pos)
                buf, pos = reader.window(16 + incl)
                size = len(buf)
                end = pos + 16 + incl
                if end > size:
                    return  # the file was cut in the middle of a frame
            yield (sec + frac * resolution, linktype, buf[pos + 16 : end], orig, 0)
            pos = end

    def _pcapng(self, reader: _ChunkReader) -> Iterator[Frame]:
        endian = "<"
        resolutions: list[float] = []
        while True:
            head = reader.peek(12)
            if len(head) < 12:
                return
            if head[:4] == _PCAPNG_SHB:
                endian = "<" if head[8:12] == b"\x4d\x3c\x2b\x1a" else ">"
            btype, blen = struct.unpack_from(endian + "II", head)
            if blen < 12 or blen % 4 or blen > _MAX_RECORD:
                raise CaptureError(f"{self.path}: corrupt pcapng block (length {blen})")
            block = reader.take(blen)
            if len(block) < blen:
                return
            if btype == 1:  # Interface Description Block
                linktype = struct.unpack_from(endian + "H", block, 8)[0]
                name, resolution = _idb_options(block, endian)
                self.interfaces.append(CaptureInterface(linktype=linktype, name=name))
                resolutions.append(resolution)
            elif btype in (6, 2):  # Enhanced Packet Block, obsolete Packet Block
                iface, hi, lo, incl, orig = struct.unpack_from(endian + "IIIII", block, 8)
                if btype == 2:
                    iface &= 0xFFFF
                if iface >= len(self.interfaces):
                    continue
                ts = ((hi << 32) | lo) * resolutions[iface]
                yield (ts, self.interfaces[iface].linktype, block[28 : 28 + incl], orig, iface)
            elif btype == 3 and self.interfaces:  # Simple Packet Block: no timestamp
                orig = struct.unpack_from(endian + "I", block, 8)[0]
                yield (0.0, self.interfaces[0].linktype, block[12 : 12 + orig], orig, 0)


def _batched(frames: Iterator[Frame]) -> Iterator[FrameBatch]:
    """Group frames into batches of one link type and interface."""
    pending: list[tuple[float, bytes, int]] = []
    current = (-1, -1)
    for ts, linktype, frame, wire_len, iface in frames:
        if (linktype, iface) != current or len(pending) >= BATCH_PACKETS:
            if pending:
                yield FrameBatch.from_frames(pending, *current)
            pending, current = [], (linktype, iface)
        pending.append((ts, frame, wire_len))
    if pending:
        yield FrameBatch.from_frames(pending, *current)


def _idb_options(block: bytes, endian: str) -> tuple[str, float]:
    """The if_name and timestamp resolution options of an Interface Description Block."""
    name, resolution = "", 1e-6
    pos, end = 16, len(block) - 4
    while pos + 4 <= end:
        code, length = struct.unpack_from(endian + "HH", block, pos)
        value = block[pos + 4 : pos + 4 + length]
        if code == 0:
            break
        if code == 2:
            name = value.decode("utf-8", "replace")
        elif code == 9 and value:
            exp = value[0]
            resolution = 2.0 ** -(exp & 0x7F) if exp & 0x80 else 10.0**-exp
        pos += 4 + ((length + 3) & ~3)
    return name, resolution


class _ChunkReader:
    """A read buffer over a stream, so records are sliced from memory, not read one by one."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._buf = b""
        self._pos = 0

    def _fill(self, need: int) -> None:
        if len(self._buf) - self._pos >= need:
            return
        chunk = self._stream.read(max(_CHUNK, need))
        self._buf = self._buf[self._pos :] + chunk
        self._pos = 0

    def window(self, need: int) -> tuple[bytes, int]:
        """The buffer and position, with at least ``need`` bytes available unless at EOF."""
        self._fill(need)
        return self._buf, self._pos

    def peek(self, n: int) -> bytes:
        self._fill(n)
        return self._buf[self._pos : self._pos + n]

    def take(self, n: int) -> bytes:
        self._fill(n)
        data = self._buf[self._pos : self._pos + n]
        self._pos += len(data)
        return data

    def seek(self, pos: int) -> None:
        """Record that the caller consumed the buffer up to ``pos``."""
        self._pos = pos
