"""Vectorised decoding of a FrameBatch: the common packets decoded with numpy, column by column.

The per-packet decoder (``packet.decode``) costs microseconds a packet in Python; here the
common shapes (Ethernet with up to two VLAN tags, SLL, SLL2 or raw IP; IPv4 without fragmentation,
IPv6 without extension headers; TCP, UDP, ICMP) are decoded for a whole batch at once. Every other
frame (malformed, fragmented, tunnelled, exotic) is listed in ``slow`` and goes through the
per-packet decoder, so both paths give the same facts (tests/decode/test_batch.py holds them to it).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from egresswatch.capture.frames import FrameBatch, Int64Array
from egresswatch.decode.linktypes import ETH_IPV4, ETH_IPV6, LinkType
from egresswatch.decode.packet import _ICMP4_PAIRS, _ICMP6_PAIRS, ICMP, ICMP6, TCP, UDP

BoolArray = npt.NDArray[np.bool_]
Column = npt.NDArray[Any]
"""An integer column, as narrow as its values allow."""
AddressColumn = npt.NDArray[np.uint64]
"""Addresses as 128-bit numbers, one row of (high 64 bits, low 64 bits) each; IPv4 is (0, addr)."""

# Transport protocols the bulk path decodes, as lookup tables indexed by protocol number.
_FAST_V4_NEXT = np.zeros(256, bool)
_FAST_V4_NEXT[[TCP, UDP, ICMP, ICMP6]] = True
_FAST_V6_NEXT = np.zeros(256, bool)
_FAST_V6_NEXT[[TCP, UDP, ICMP6]] = True  # anything else may be an extension header
_RAW_LINKS = {int(LinkType.RAW), 12, 14, int(LinkType.IPV4), int(LinkType.IPV6)}


def _pairs_table(pairs: dict[int, int]) -> Int64Array:
    table = np.full(256, -1, np.int64)
    for kind, counterpart in pairs.items():
        table[kind] = counterpart
    return table


_ICMP4_TABLE = _pairs_table(_ICMP4_PAIRS)
_ICMP6_TABLE = _pairs_table(_ICMP6_PAIRS)


@dataclass(frozen=True, slots=True)
class DecodedBatch:
    """Columns of the packets decoded in bulk; ``row`` points back into the FrameBatch."""

    buf: bytes
    """The FrameBatch's buffer, which ``payload_offset`` points into."""
    row: Column
    ts: npt.NDArray[np.float64]
    v6: BoolArray
    src: AddressColumn
    """Source addresses (see ``address_bytes``)."""
    dst: AddressColumn
    proto: Column
    sport: Column
    dport: Column
    flags: Column
    ip_bytes: Column
    payload_len: Column
    payload_offset: Column
    """Offset of the transport payload in the FrameBatch's buffer."""
    seq: Column
    slow: Int64Array
    """Rows left to the per-packet decoder."""

    def __len__(self) -> int:
        return len(self.row)

    def for_accounting(self) -> DecodedBatch:
        """The columns the flow table reads once the batch is grouped (time, flags, sizes,
        sequence numbers), the rest emptied: what crosses to the accounting process. Addresses
        and ports come from each group's key there; payloads stayed on the decoding side."""
        return dataclasses.replace(
            self, buf=b"", v6=_NONE_BOOL, src=_NO_ADDRESS, dst=_NO_ADDRESS, proto=_NONE,
            sport=_NONE, dport=_NONE, payload_offset=_NONE,
        )  # fmt: skip


_NONE: Column = np.zeros(0, np.int32)
_NONE_BOOL: BoolArray = np.zeros(0, bool)
_NO_ADDRESS: AddressColumn = np.zeros((0, 2), np.uint64)


class _Gather:
    """Reads big-endian fields at per-row offsets, only where a row has the bytes."""

    def __init__(self, buf: bytes) -> None:
        # Rows without the bytes read offset 0 instead, and their result is discarded.
        self.b = np.frombuffer(buf or b"\x00", np.uint8)

    def u8(self, at: Int64Array, ok: BoolArray) -> Int64Array:
        # mode="clip": a row without the bytes reads some other byte, and ``ok`` discards it.
        return np.take(self.b, at, mode="clip").astype(np.int64)

    def u16(self, at: Int64Array, ok: BoolArray) -> Int64Array:
        return (self.u8(at, ok) << 8) | self.u8(at + 1, ok)

    def u32(self, at: Int64Array, ok: BoolArray) -> Int64Array:
        return (self.u16(at, ok) << 16) | self.u16(at + 2, ok)

    def word(self, at: Int64Array, n: int) -> npt.NDArray[np.uint64]:
        """``n`` big-endian bytes at each offset as one unsigned number (n <= 8)."""
        out = np.zeros(len(at), np.uint64)
        for k in range(n):
            out = (out << np.uint64(8)) | np.take(self.b, at + k, mode="clip").astype(np.uint64)
        return out


def address_bytes(row: Sequence[int], v6: bool) -> bytes:
    """An address column's row (high, low) as the 4 or 16 raw bytes PacketFacts carry."""
    high, low = row
    return ((high << 64) | low).to_bytes(16, "big") if v6 else low.to_bytes(4, "big")


def decode_batch(batch: FrameBatch) -> DecodedBatch:
    """Decode what can be decoded in bulk; the rest is listed in ``slow``."""
    g = _Gather(batch.buf)
    start, cap = batch.start, batch.caplen
    l3, ethertype, ok = _link(g, batch)

    head = l3 - start  # link header length
    avail = cap - head  # captured bytes from the IP header on
    wire_avail = batch.wirelen - head
    is4 = ok & (ethertype == ETH_IPV4) & (avail >= 20)
    is6 = ok & (ethertype == ETH_IPV6) & (avail >= 40)

    vihl = g.u8(l3, is4)
    ihl = (vihl & 0x0F) << 2
    total4 = g.u16(l3 + 2, is4)
    frag = g.u16(l3 + 6, is4)
    proto4 = g.u8(l3 + 9, is4)
    fast4 = (
        is4
        & (vihl >> 4 == 4)
        & (ihl >= 20)
        & (total4 >= ihl)
        & (total4 <= wire_avail)
        & (avail >= ihl)
        & ((frag & 0x3FFF) == 0)
        & _FAST_V4_NEXT[proto4]
    )

    plen6 = g.u16(l3 + 4, is6)
    next6 = g.u8(l3 + 6, is6)
    total6 = 40 + plen6
    fast6 = (
        is6
        & (g.u8(l3, is6) >> 4 == 6)
        & (plen6 > 0)
        & (total6 <= wire_avail)
        & _FAST_V6_NEXT[next6]
    )

    fast = fast4 | fast6
    proto = np.where(fast4, proto4, next6)
    total = np.where(fast4, total4, total6)
    l4 = np.where(fast4, l3 + ihl, l3 + 40)
    end = l3 + total
    captured = np.minimum(end, start + cap) - l4

    tcp = fast & (proto == TCP) & (captured >= 20)
    udp = fast & (proto == UDP) & (captured >= 8)
    icmp = fast & ((proto == ICMP) | (proto == ICMP6)) & (captured >= 4)
    ports_ok = tcp | udp
    sport = g.u16(l4, ports_ok)
    dport = g.u16(l4 + 2, ports_ok)
    tcp_header = (g.u8(l4 + 12, tcp) >> 4) << 2
    tcp &= (tcp_header >= 20) & (l4 + tcp_header <= end)
    payload_offset = np.where(tcp, l4 + tcp_header, l4 + 8)

    kind = g.u8(l4, icmp)
    code = g.u8(l4 + 1, icmp)
    counterpart = np.where(proto == ICMP, _ICMP4_TABLE[kind], _ICMP6_TABLE[kind])
    sport = np.where(icmp, kind, sport)
    dport = np.where(icmp, np.where(counterpart >= 0, counterpart, code), dport)

    done = tcp | udp | icmp
    done &= ~(udp & _maybe_teredo(g, payload_offset, end - payload_offset, start + cap, udp))
    rows = np.flatnonzero(done)
    v6 = fast6[rows]
    at3 = l3[rows]
    src = np.zeros((len(rows), 2), np.uint64)
    dst = np.zeros((len(rows), 2), np.uint64)
    for column, v6_at, v4_at in ((src, 8, 12), (dst, 24, 16)):
        column[~v6, 1] = g.word(at3[~v6] + v4_at, 4)
        if v6.any():
            column[v6, 0] = g.word(at3[v6] + v6_at, 8)
            column[v6, 1] = g.word(at3[v6] + v6_at + 8, 8)
    is_tcp = tcp[rows]
    return DecodedBatch(
        buf=batch.buf,
        # Narrow types: a decoded batch crosses a process boundary, and half its cost is size.
        row=rows.astype(np.int32),
        ts=batch.ts[rows],
        v6=v6,
        src=src,
        dst=dst,
        proto=proto[rows].astype(np.uint8),
        sport=sport[rows].astype(np.int32),
        dport=dport[rows].astype(np.int32),
        flags=np.where(is_tcp, g.u8(l4[rows] + 13, is_tcp), 0).astype(np.uint8),
        ip_bytes=total[rows].astype(np.int32),
        payload_len=(end[rows] - payload_offset[rows]).astype(np.int32),
        payload_offset=payload_offset[rows].astype(np.int32),
        seq=np.where(is_tcp, g.u32(l4[rows] + 4, is_tcp), 0).astype(np.uint32),
        slow=np.flatnonzero(~done),
    )


def _link(g: _Gather, batch: FrameBatch) -> tuple[Int64Array, Int64Array, BoolArray]:
    """Where the IP header starts, its ethertype, and which rows the bulk path can take."""
    start, cap = batch.start, batch.caplen
    n = len(start)
    if batch.linktype == LinkType.ETHERNET:
        ok = cap >= 14
        ethertype = g.u16(start + 12, ok)
        l3 = start + 14
        for _ in range(2):  # 802.1Q and QinQ; deeper stacks go the slow way
            vlan = (ethertype == 0x8100) | (ethertype == 0x88A8) | (ethertype == 0x9100)
            tagged = ok & vlan & (cap >= l3 - start + 4)
            ethertype = np.where(tagged, g.u16(l3 + 2, tagged), ethertype)
            l3 = np.where(tagged, l3 + 4, l3)
        return l3, ethertype, ok
    if batch.linktype == LinkType.LINUX_SLL:
        ok = cap >= 16
        return start + 16, g.u16(start + 14, ok), ok
    if batch.linktype == LinkType.LINUX_SLL2:
        ok = cap >= 20
        return start + 20, g.u16(start, ok), ok
    if batch.linktype in _RAW_LINKS:
        ok = cap >= 1
        version = g.u8(start, ok) >> 4
        ethertype = np.where(version == 4, ETH_IPV4, np.where(version == 6, ETH_IPV6, 0))
        return start, ethertype, ok
    return start, np.zeros(n, np.int64), np.zeros(n, bool)  # BSD loopback etc.: per packet


def _maybe_teredo(
    g: _Gather, at: Int64Array, size: Int64Array, cap_end: Int64Array, udp: BoolArray
) -> BoolArray:
    """UDP payloads that could carry a Teredo packet: the per-packet path looks inside them."""
    room = udp & (size >= 40) & (at + 6 <= cap_end)
    first = g.u8(at, room)
    inner_len = g.u16(at + 4, room) + 40
    candidate: BoolArray = room & ((first == 0) | ((first >> 4 == 6) & (inner_len == size)))
    return candidate
