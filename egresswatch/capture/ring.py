"""One interface's AF_PACKET socket with a TPACKET_V3 receive ring: live frames as FrameBatches.

The kernel fills whole blocks of the mmap'd ring with frames and hands a block over when it is
full or after ``block_timeout`` ms. Each block is copied out once (a memcpy of at most
``block_size``) and handed straight back, so the ring never waits on decoding; the frames are then
found by walking the block's header chain and gathering their fields with numpy.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import socket
import struct
from dataclasses import dataclass

import numpy as np

from egresswatch.capture.frames import FrameBatch
from egresswatch.decode.linktypes import LinkType
from egresswatch.errors import CaptureError

# <linux/if_packet.h>, <linux/if_ether.h>, <linux/filter.h>
SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_RX_RING = 5
PACKET_STATISTICS = 6
PACKET_VERSION = 10
PACKET_MR_PROMISC = 1
TPACKET_V3 = 2
ETH_P_ALL = 0x0003
SO_ATTACH_FILTER = 26
TP_STATUS_USER = 1
PACKET_OUTGOING = 4
ARPHRD_ETHER = 1
ARPHRD_LOOPBACK = 772

# tpacket_hdr_v1 (at 8 in the block): block_status, num_pkts, offset_to_first_pkt, blk_len
_BLOCK_HEADER = struct.Struct("<IIII")
# tpacket3_hdr: next_offset, sec, nsec, snaplen, len (u32 at 0-16); mac, net (u16 at 24, 26)
_U32_FIELDS = np.array([1, 2, 3, 4], np.int64)  # sec, nsec, snaplen, len: in 4-byte words
_U16_FIELDS = np.array([12, 13], np.int64)  # mac, net: in 2-byte words
_PKTTYPE_AT = 48 + 10  # sockaddr_ll.sll_pkttype, after the 48-byte tpacket3_hdr
_STATS = struct.Struct("<III")  # tpacket_stats_v3: packets, drops, freeze_q_cnt


def need_capture_privilege(exc: OSError) -> CaptureError:
    """The one-line startup error for a missing capability."""
    return CaptureError(
        f"capturing needs CAP_NET_RAW (and CAP_NET_ADMIN): {exc.strerror}. Run as root, or grant "
        "them: the systemd unit's AmbientCapabilities=CAP_NET_RAW CAP_NET_ADMIN, or "
        "`setcap cap_net_raw,cap_net_admin=eip` on the Python interpreter"
    )


@dataclass(frozen=True, slots=True)
class RingGeometry:
    """How big an interface's ring is, and how long a block may wait before it is handed over."""

    block_size: int = 1 << 20
    block_count: int = 32
    block_timeout_ms: int = 100
    snaplen: int = 4096
    """Bytes kept of each frame: headers and a ClientHello, not whole 64 KB GRO super-frames."""


@dataclass(frozen=True, slots=True)
class RingStats:
    """What the kernel counted since the socket opened (PACKET_STATISTICS, accumulated)."""

    packets: int
    drops: int


class PacketRing:
    """An AF_PACKET TPACKET_V3 ring bound to one interface."""

    def __init__(
        self, interface: str, geometry: RingGeometry = RingGeometry(), *, promiscuous: bool = False
    ) -> None:
        self.interface = interface
        self._geometry = geometry
        try:
            self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        except PermissionError as exc:
            raise need_capture_privilege(exc) from exc
        try:
            self.ifindex = socket.if_nametoindex(interface)
            self.linktype, self._loopback = _link_type(interface)
            self._configure(promiscuous)
        except OSError as exc:
            self._sock.close()
            if exc.errno in (errno.EPERM, errno.EACCES):
                raise need_capture_privilege(exc) from exc
            raise CaptureError(f"cannot capture on {interface}: {exc.strerror or exc}") from exc
        self._next_block = 0
        self._kernel_packets = 0
        self._kernel_drops = 0

    def _configure(self, promiscuous: bool) -> None:
        g, sock = self._geometry, self._sock
        _attach_snaplen(sock, g.snaplen)
        sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V3)
        frame_size = 2048  # only sizes tp_frame_nr for V3: frames are packed in the blocks
        request = struct.pack(
            "7I",
            g.block_size,
            g.block_count,
            frame_size,
            g.block_size * g.block_count // frame_size,
            g.block_timeout_ms,
            0,
            0,
        )
        sock.setsockopt(SOL_PACKET, PACKET_RX_RING, request)
        self._ring = mmap.mmap(sock.fileno(), g.block_size * g.block_count)
        sock.bind((self.interface, ETH_P_ALL))
        if promiscuous:  # a bridge passes forwarded frames up only when promiscuous
            mreq = struct.pack("iHH8s", self.ifindex, PACKET_MR_PROMISC, 0, b"")
            sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)

    def fileno(self) -> int:
        return self._sock.fileno()

    def batches(self) -> list[FrameBatch]:
        """Every block the kernel has handed over, as batches, oldest first (may be none)."""
        out: list[FrameBatch] = []
        g = self._geometry
        for _ in range(g.block_count):
            base = self._next_block * g.block_size
            status, count, first, used = _BLOCK_HEADER.unpack_from(self._ring, base + 8)
            if not status & TP_STATUS_USER:
                break
            block = self._ring[base : base + min(used, g.block_size)]
            self._ring[base + 8 : base + 12] = b"\x00\x00\x00\x00"  # TP_STATUS_KERNEL: give back
            self._next_block = (self._next_block + 1) % g.block_count
            batch = self._frames(block, count, first)
            if batch is not None:
                out.append(batch)
        return out

    def _frames(self, block: bytes, count: int, offset: int) -> FrameBatch | None:
        """The block's frames: the headers' chain walked for the offsets (the one per-frame
        loop), every field then gathered at once (a per-frame unpack costs 4x as much)."""
        words = memoryview(block)[: len(block) & ~3].cast("I")
        offsets = [0] * count
        for i in range(count):
            offsets[i] = offset
            step = words[offset >> 2]  # tp_next_offset (frames are 16-byte aligned)
            if not step:
                del offsets[i + 1 :]
                break
            offset += step
        at = np.array(offsets, np.int64)
        if self._loopback:  # on lo every packet passes twice, out and in: keep it once
            pkttype = np.frombuffer(block, np.uint8)[at + _PKTTYPE_AT]
            at = at[pkttype != PACKET_OUTGOING]
        if not len(at):
            return None
        u32 = np.frombuffer(block, np.uint32, len(block) >> 2)[(at >> 2)[:, None] + _U32_FIELDS]
        sec, nsec, snaplen, length = u32.astype(np.int64).T
        u16 = np.frombuffer(block, np.uint16, len(block) >> 1)[(at >> 1)[:, None] + _U16_FIELDS]
        mac, net = u16.astype(np.int64).T
        # No link header we could read (tun, WireGuard): frames start at the IP header.
        head = net - mac if self.linktype == LinkType.RAW else 0
        return FrameBatch(
            buf=block,
            start=at + mac + head,
            caplen=snaplen - head,
            wirelen=length - head,
            ts=sec + nsec * 1e-9,
            linktype=self.linktype,
            iface=self.ifindex,
        )

    def still_there(self) -> bool:
        """After an error on the socket: whether the interface still exists (it went down, or
        was never up: capture resumes when it comes up) rather than being removed. Reading the
        socket's error clears it."""
        self._sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        try:
            return socket.if_nametoindex(self.interface) == self.ifindex
        except OSError:
            return False

    def stats(self) -> RingStats:
        """Packets the kernel queued to this socket and dropped (ring full), since it opened."""
        raw = self._sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, _STATS.size)
        packets, drops, _ = _STATS.unpack(raw)  # the kernel resets them on every read
        self._kernel_packets += packets
        self._kernel_drops += drops
        return RingStats(packets=self._kernel_packets, drops=self._kernel_drops)

    def close(self) -> None:
        self._ring.close()
        self._sock.close()


def _link_type(interface: str) -> tuple[LinkType, bool]:
    """The frames' link type from the interface's ARPHRD type; whether it is a loopback."""
    with open(f"/sys/class/net/{interface}/type", encoding="ascii") as f:
        hardware = int(f.read())
    if hardware in (ARPHRD_ETHER, ARPHRD_LOOPBACK):
        return LinkType.ETHERNET, hardware == ARPHRD_LOOPBACK
    return LinkType.RAW, False  # tun, WireGuard, ...: no link header (frames start at tp_net)


def _attach_snaplen(sock: socket.socket, snaplen: int) -> None:
    """A one-instruction classic BPF program, ``ret #snaplen``: the kernel copies only that much
    of each frame into the ring and still reports its full length."""
    program = (ctypes.c_uint8 * 8).from_buffer_copy(struct.pack("HBBI", 0x06, 0, 0, snaplen))
    fprog = struct.pack("HxxxxxxP", 1, ctypes.addressof(program))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
