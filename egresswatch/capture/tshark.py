"""The tshark engine: dumpcap and tshark (driven by pyshark) capture only the packets that open,
close or name a flow, for boxes that grant capture privileges to dumpcap alone.

Per interface::

    dumpcap -i IF -f BOUNDARY_FILTER -w -  |  tshark -r - -T json -x   (pyshark.PipeCapture)

dumpcap attaches the filter to its socket, so the kernel hands over nothing else. tshark reads the
pipe as a file (``-r -``): pyshark's LiveCapture has it read the pipe as an interface (``-i -``),
which makes tshark keep every packet in a temporary file for as long as it runs. No dissector
above the frame runs (``--disable-protocol``; ``-j frame``): tshark only takes the pcapng stream
apart and gives each frame's raw bytes (``frame_raw``), capture time and wire length. They go into
FrameBatches, decoded by our own decoder as the ring engine's are, through a bounded queue: when
it is full the batch is dropped and counted, the reading thread never waits.

What the engine cannot tell: the packets and bytes in between. A flow's counts are the sum of
its captured packets, not its volume. One thread runs an asyncio loop holding every interface's
pair of processes; interfaces come and go through ``watch()``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import queue
import re
import shutil
import signal
import threading
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pyshark.capture.pipe_capture import PipeCapture
from pyshark.tshark.output_parser.tshark_json import TsharkJsonParser

from egresswatch.capture.boundary_filter import BOUNDARY_FILTER
from egresswatch.capture.frames import FrameBatch
from egresswatch.decode.linktypes import LinkType
from egresswatch.errors import CaptureError

_log = logging.getLogger(__name__)
_T = TypeVar("_T")

NOT_COUNTED = (
    "tshark engine: only packets that open, close or name a flow are captured (SYN/FIN/RST, DNS, "
    "TLS ClientHello, HTTP request, QUIC Initial); byte and packet counts are not available "
    "(a flow's counts are those of its captured packets, not its volume)"
)
"""Logged as a warning when the engine starts."""

_UNDISSECTED = ("eth", "sll", "raw", "null", "loop", "ip", "ipv6")  # every link layer we read
TSHARK_ARGUMENTS = [
    *("-j", "frame"),  # the JSON holds the frame and its raw bytes, nothing else
    *(arg for proto in _UNDISSECTED for arg in ("--disable-protocol", proto)),
]
"""No dissector above the frame runs on captured traffic: less work, and no attack surface."""

_DLT_RAW = (12, 14)  # DLT_RAW (14 on OpenBSD); every other link type egresswatch reads has
# the same number as a DLT and as a LINKTYPE
_SUMMARY = re.compile(r"Packets received/dropped on interface '.*': (\d+)/(\d+)")
_BATCH = 512  # frames handed on at once when they come faster than the flush interval
_START_TIMEOUT = 15.0
_STOP_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class Tools:
    tshark: str
    dumpcap: str


def find_tools() -> Tools:
    """tshark and dumpcap on PATH, or the one-line start-up error saying how to install them."""
    found = {name: shutil.which(name) for name in ("tshark", "dumpcap")}
    for name, path in found.items():
        if path is None:
            raise CaptureError(
                f"{name} not found on PATH (the tshark engine runs tshark and dumpcap): "
                "apt-get install tshark"
            )
    return Tools(tshark=str(found["tshark"]), dumpcap=str(found["dumpcap"]))


def refused(interface: str, message: str, dumpcap: str) -> CaptureError:
    """The one-line error for dumpcap's ``message`` about ``interface``."""
    if "permission" in message.lower() or "not permitted" in message.lower():
        return CaptureError(
            f"dumpcap may not capture on {interface}: {message.rstrip('.')}. Add the user running "
            "egresswatch to the wireshark group (dpkg-reconfigure wireshark-common, then "
            f"usermod -aG wireshark USER), or `setcap cap_net_raw,cap_net_admin=eip {dumpcap}`"
        )
    return CaptureError(f"cannot capture on {interface}: {message}")


def link_type(dlt: int) -> LinkType | None:
    """The LINKTYPE_* of libpcap's DLT_* number, if egresswatch decodes it."""
    if dlt in _DLT_RAW:
        return LinkType.RAW
    try:
        return LinkType(dlt)
    except ValueError:
        return None


def dumpcap_summary(line: str) -> tuple[int, int] | None:
    """(received, dropped) from dumpcap's exit line for an interface."""
    match = _SUMMARY.search(line)
    return (int(match[1]), int(match[2])) if match else None


class _PromptJsonParser(TsharkJsonParser):  # type: ignore[misc]
    """pyshark's JSON parser takes a packet when it sees the separator after it, which tshark
    writes only when the next packet begins: the latest packet waits for the next one, on a
    quiet link for good (a connection's last FIN would never close its flow). A packet's object
    ends at the first line that is exactly two spaces and ``}`` (tshark's top level; a raw
    newline never occurs inside a JSON string), so it is taken at once."""

    def _extract_packet_from_data(
        self, data: bytes, got_first_packet: bool = True
    ) -> tuple[bytes | None, bytes]:
        start = data.find(b"{")  # after the "[" that opens the output, or a "," between packets
        end = data.find(b"\n  }", start) if start != -1 else -1
        if end == -1:
            return None, data
        return data[start : end + 4], data[end + 4 :]


class _PipeCapture(PipeCapture):  # type: ignore[misc]
    """pyshark's PipeCapture, with the parser above."""

    def _setup_tshark_output_parser(self) -> _PromptJsonParser:
        return _PromptJsonParser(self._get_tshark_version())


@dataclass(slots=True)
class _Counts:
    """One interface's figures, kept across restarts and after release."""

    received: int = 0
    """Packets the filter passed, as dumpcap reported them at the end of each finished run."""
    dropped: int = 0
    """Packets dumpcap reported dropped (kernel buffer full, or its own), likewise."""
    frames: int = 0
    """Frames tshark handed over in the current run (dumpcap reports only when it stops)."""


@dataclass(slots=True, eq=False)
class _Tap:
    """One interface: its dumpcap, the read end of the pipe to tshark, frames not yet handed on."""

    name: str
    iface: int
    linktype: int
    dumpcap: asyncio.subprocess.Process
    pipe: int
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when dumpcap says it writes: the device is open and the filter attached."""
    error: str = ""
    summary: tuple[int, int] | None = None
    pending: list[tuple[float, bytes, int]] = field(default_factory=list)
    stderr: asyncio.Task[None] | None = None
    capture: _PipeCapture | None = None
    task: asyncio.Task[None] | None = None


class TsharkCapture:
    """dumpcap | tshark on a changing set of interfaces, feeding ``self.frames``.

    ``buffer_mib`` is dumpcap's kernel buffer per interface (``-B``); frames are handed on at
    least every ``flush_interval`` seconds.
    """

    def __init__(
        self,
        *,
        snaplen: int = 4096,
        buffer_mib: int = 32,
        flush_interval: float = 0.1,
        queue_batches: int = 256,
    ) -> None:
        self._snaplen = snaplen
        self._buffer_mib = buffer_mib
        self._flush_interval = flush_interval
        self.frames: queue.Queue[FrameBatch] = queue.Queue(maxsize=queue_batches)
        self.dropped: Counter[str] = Counter()
        """Packets dropped because the queue was full, by interface."""
        self.unreadable = 0
        """Packets tshark handed over without raw bytes, time or length (none expected)."""
        self._tools = Tools(tshark="tshark", dumpcap="dumpcap")
        self._taps: dict[str, _Tap] = {}
        self._counts: dict[str, _Counts] = {}
        self._ids: dict[str, int] = {}
        self._names: dict[int, str] = {}
        self._wanted: dict[str, bool] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._applying = asyncio.Lock()
        self._flusher: asyncio.Task[None] | None = None

    def open(self, interfaces: dict[str, bool]) -> None:
        """Start capturing on these interfaces (name -> promiscuous); returns once dumpcap
        captures on each, or raises the one-line CaptureError for the first that fails."""
        self._tools = find_tools()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="capture", daemon=True)
        self._thread.start()
        try:
            for name, promiscuous in interfaces.items():
                self._call(self._start(name, promiscuous))
            self._call(self._start_flushing())
        except BaseException:
            self.close()
            raise
        self._wanted = dict(interfaces)
        _log.warning("%s", NOT_COUNTED)

    def watch(self, interfaces: dict[str, bool]) -> None:
        """Capture on these interfaces from now on (started and stopped by the loop thread; one
        that failed to start is tried again at the next call)."""
        if self._loop is None or self._loop.is_closed():
            return
        if interfaces != self._wanted or set(interfaces) != set(self._taps):
            self._wanted = dict(interfaces)
            asyncio.run_coroutine_threadsafe(self._apply(dict(interfaces)), self._loop)

    def interface_name(self, ifindex: int) -> str:
        return self._names.get(ifindex, f"if{ifindex}")

    @property
    def interfaces(self) -> list[str]:
        return sorted(self._taps)

    def stats(self) -> dict[str, tuple[int, int]]:
        """Per interface, since opened (kept for interfaces already released): (packets the
        filter passed, packets dropped before tshark). dumpcap reports its figures only when it
        stops: while it runs, the first is the frames tshark has handed over and the second
        stays at what earlier runs reported."""
        return {name: (c.received + c.frames, c.dropped) for name, c in dict(self._counts).items()}

    def close(self) -> None:
        """Stop every dumpcap (each writes out what it holds and its figures), then the loop."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or loop.is_closed():
            return
        try:
            self._call(self._stop_all(), timeout=_STOP_TIMEOUT * 3)
        except TimeoutError:
            _log.error("dumpcap or tshark did not stop within %.0f s", _STOP_TIMEOUT * 3)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=5)
            loop.close()

    def _call(self, coro: Coroutine[Any, Any, _T], timeout: float = _START_TIMEOUT * 2) -> _T:
        """Run ``coro`` on the loop thread and wait for its result (or exception)."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    async def _start_flushing(self) -> None:
        self._flusher = asyncio.ensure_future(self._flush_every())

    async def _flush_every(self) -> None:
        while True:
            await asyncio.sleep(self._flush_interval)
            for tap in list(self._taps.values()):
                self._flush(tap)

    async def _apply(self, wanted: dict[str, bool]) -> None:
        async with self._applying:
            for name in [n for n in self._taps if n not in wanted]:
                await self._stop(name)
            for name, promiscuous in wanted.items():
                if name in self._taps:
                    continue
                try:
                    await self._start(name, promiscuous)
                except CaptureError as exc:
                    _log.warning("%s (will retry)", exc)
                    continue
                _log.info("capturing on %s", name)

    async def _start(self, name: str, promiscuous: bool) -> None:
        """dumpcap on ``name``, and tshark on its output once dumpcap captures."""
        dlt, dlt_name = await self._data_link(name)
        linktype = link_type(dlt)
        if linktype is None:
            raise CaptureError(f"cannot capture on {name}: link type {dlt_name} is not decoded")
        read, write = os.pipe()
        try:
            dumpcap = await asyncio.create_subprocess_exec(
                self._tools.dumpcap,
                *self._dumpcap_arguments(name, dlt_name, promiscuous),
                stdout=write,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError:
            os.close(read)
            raise
        finally:
            os.close(write)
        iface = self._ids.setdefault(name, len(self._ids) + 1)
        self._names[iface] = name
        tap = _Tap(name, iface, int(linktype), dumpcap, read)
        tap.stderr = asyncio.ensure_future(self._read_stderr(tap))
        ready = asyncio.ensure_future(tap.ready.wait())
        await asyncio.wait(
            {tap.stderr, ready}, timeout=_START_TIMEOUT, return_when=asyncio.FIRST_COMPLETED
        )
        if not tap.ready.is_set():
            ready.cancel()
            await self._end_dumpcap(tap)
            os.close(read)
            raise refused(name, tap.error or "dumpcap did not start capturing", self._tools.dumpcap)
        self._taps[name] = tap
        self._counts.setdefault(name, _Counts())
        tap.task = asyncio.ensure_future(self._pump(tap))

    def _dumpcap_arguments(self, name: str, dlt_name: str, promiscuous: bool) -> list[str]:
        per_interface = ["-y", dlt_name, "-f", BOUNDARY_FILTER, "-s", str(self._snaplen)]
        per_interface += ["-B", str(self._buffer_mib), *([] if promiscuous else ["-p"])]
        return ["-q", "-i", name, *per_interface, "-w", "-"]

    async def _data_link(self, name: str) -> tuple[int, str]:
        """The link type dumpcap captures ``name`` with (the first it lists); opening the device
        to list them is also where a missing privilege or interface shows."""
        proc = await asyncio.create_subprocess_exec(
            self._tools.dumpcap, "-L", "-M", "-i", name,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await proc.communicate()
        for line in out.decode(errors="replace").splitlines():
            number, _, rest = line.partition("\t")
            if number.isdigit() and rest:
                return int(number), rest.split("\t")[0]
        raise refused(name, _dumpcap_error(err.decode(errors="replace")), self._tools.dumpcap)

    async def _read_stderr(self, tap: _Tap) -> None:
        assert tap.dumpcap.stderr is not None
        lines: list[str] = []
        async for raw in tap.dumpcap.stderr:
            line = raw.decode(errors="replace").strip()
            lines.append(line)
            if line.startswith("File: "):
                tap.ready.set()
            elif (summary := dumpcap_summary(line)) is not None:
                tap.summary = summary
        tap.error = _dumpcap_error("\n".join(lines))

    async def _pump(self, tap: _Tap) -> None:
        """tshark on the pipe until it ends (dumpcap stopped, or tshark failed)."""
        tap.capture = _PipeCapture(
            tap.pipe,
            use_json=True,
            include_raw=True,
            eventloop=self._loop,
            tshark_path=self._tools.tshark,
            custom_parameters=TSHARK_ARGUMENTS,
        )
        try:
            await tap.capture.packets_from_tshark(functools.partial(self._take, tap))
        except Exception as exc:  # pyshark's TSharkCrashException, an unreadable stream
            _log.error("tshark on %s stopped: %s", tap.name, exc)
        finally:
            await self._finish(tap)

    def _take(self, tap: _Tap, packet: Any) -> None:
        """pyshark's callback, for each packet: its bytes, time and wire length."""
        try:
            raw = bytes.fromhex(packet.frame_raw.value)
            frame = (float(packet.sniff_timestamp), raw, int(packet.length))
        except (AttributeError, TypeError, ValueError):
            if not self.unreadable:
                _log.warning("tshark gave a packet without its bytes on %s (skipped)", tap.name)
            self.unreadable += 1
            return
        tap.pending.append(frame)
        self._counts[tap.name].frames += 1
        if len(tap.pending) >= _BATCH:
            self._flush(tap)

    def _flush(self, tap: _Tap) -> None:
        if not tap.pending:
            return
        batch = FrameBatch.from_frames(tap.pending, tap.linktype, tap.iface)
        tap.pending = []
        try:
            self.frames.put_nowait(batch)
        except queue.Full:
            self.dropped[tap.name] += len(batch)

    async def _finish(self, tap: _Tap) -> None:
        """After tshark: dumpcap stopped, its figures settled, the last frames handed on."""
        await self._end_dumpcap(tap)
        os.close(tap.pipe)
        self._flush(tap)
        counts = self._counts[tap.name]
        if tap.summary is not None:
            counts.received += tap.summary[0]
            counts.dropped += tap.summary[1]
        else:
            counts.received += counts.frames
        counts.frames = 0
        del self._taps[tap.name]
        if tap.dumpcap.returncode not in (0, -signal.SIGTERM) and tap.error:
            _log.warning("dumpcap on %s: %s", tap.name, tap.error)
        _log.info("released %s", tap.name)

    async def _end_dumpcap(self, tap: _Tap) -> None:
        if tap.dumpcap.returncode is None:
            tap.dumpcap.terminate()  # SIGTERM: it writes out what it holds and its figures
            try:
                await asyncio.wait_for(tap.dumpcap.wait(), _STOP_TIMEOUT)
            except TimeoutError:
                tap.dumpcap.kill()
                await tap.dumpcap.wait()
        if tap.stderr is not None:
            await tap.stderr

    async def _stop(self, name: str) -> None:
        tap = self._taps.get(name)
        if tap is None or tap.task is None:
            return
        if tap.dumpcap.returncode is None:
            tap.dumpcap.terminate()  # tshark reads to the end of the pipe, then _pump ends
        try:
            await asyncio.wait_for(asyncio.shield(tap.task), _STOP_TIMEOUT)
        except TimeoutError:  # tshark stuck: pyshark kills it
            if tap.capture is not None:
                await tap.capture.close_async()
            await tap.task

    async def _stop_all(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
        await asyncio.gather(*(self._stop(name) for name in list(self._taps)))


def _dumpcap_error(stderr: str) -> str:
    """dumpcap's error (``dumpcap: ...`` and the line in parentheses after it), in one line."""
    lines = [line.strip() for line in stderr.splitlines()]
    for i, line in enumerate(lines):
        if line.startswith("dumpcap: "):
            message = line.removeprefix("dumpcap: ")
            following = lines[i + 1] if i + 1 < len(lines) else ""
            return f"{message} {following}" if following.startswith("(") else message
    return ""
