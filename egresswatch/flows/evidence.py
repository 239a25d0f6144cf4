"""Evidence: the first packets of recent flows, kept so an alert can carry them as a pcap.

Bounded on every side: the first ``packets`` frames of each flow, ``snaplen`` bytes of each, for
the ``flows`` most recently started (older ones are forgotten first). An alert raised on a flow
whose packets were forgotten carries none. The owner opens the pcap in Wireshark.
"""

from __future__ import annotations

import struct
from collections import OrderedDict

from egresswatch.capture.frames import FrameBatch
from egresswatch.decode.batch import DecodedBatch
from egresswatch.flows.grouping import Grouping

_PCAP_HEADER = struct.Struct("<IHHiIII")
_RECORD = struct.Struct("<IIII")
_PCAP_MAGIC_NS = 0xA1B23C4D  # nanosecond timestamps


class Evidence:
    """Frames by direction-free flow id (the grouping's), first ``packets`` of each."""

    def __init__(self, *, flows: int = 4096, packets: int = 8, snaplen: int = 384) -> None:
        self._max_flows = flows
        self._packets = packets
        self._snaplen = snaplen
        self._frames: OrderedDict[object, tuple[int, list[tuple[float, bytes, int]]]] = (
            OrderedDict()
        )

    def add(self, batch: FrameBatch, decoded: DecodedBatch, grouping: Grouping) -> None:
        """Keep the first frames of each flow in a batch (flows already full cost one lookup)."""
        if grouping is None:
            return
        frames = self._frames
        rows = decoded.row
        for g in grouping[0]:
            entry = frames.get(g[1])
            if entry is None:
                if len(frames) >= self._max_flows:
                    frames.popitem(last=False)
                entry = frames[g[1]] = (batch.linktype, [])
            kept = entry[1]
            room = self._packets - len(kept)
            if room <= 0:
                continue
            for i in g[0][:room]:
                row = int(rows[i])
                start = int(batch.start[row])
                cap = min(int(batch.caplen[row]), self._snaplen)
                kept.append((float(batch.ts[row]), batch.buf[start : start + cap],
                             int(batch.wirelen[row])))  # fmt: skip

    def pcap(self, flow_id: object) -> bytes | None:
        """The flow's kept frames as a classic pcap file; None if none are kept."""
        entry = self._frames.get(flow_id)
        if entry is None or not entry[1]:
            return None
        linktype, kept = entry
        out = [_PCAP_HEADER.pack(_PCAP_MAGIC_NS, 2, 4, 0, 0, self._snaplen, linktype)]
        for ts, frame, wirelen in sorted(kept, key=lambda k: k[0]):
            seconds = int(ts)
            nanos = min(round((ts - seconds) * 1e9), 999_999_999)
            out.append(_RECORD.pack(seconds, nanos, len(frame), wirelen))
            out.append(frame)
        return b"".join(out)
