"""The decoding side of naming: payload bytes in, what each client said and DNS answers out.

It runs where the frame buffers are (the decoding process), once per decoded batch. Per flow it
looks at the first payload only until it knows: a TLS ClientHello (SNI, ALPN, JA4), an HTTP/1.x
request (Host), a QUIC v1/v2 Initial (SNI), DNS over TCP (answers), or none of them. After that
the flow costs one dict lookup per batch. Every DNS response over UDP port 53 is parsed.
"""

from __future__ import annotations

from collections import Counter
from functools import lru_cache
from itertools import islice
from typing import NamedTuple

import numpy as np

from egresswatch.capture.frames import FrameBatch, Int64Array
from egresswatch.decode.batch import DecodedBatch, address_bytes
from egresswatch.decode.packet import TCP, UDP, PacketFacts, address_text
from egresswatch.flows.grouping import Grouping
from egresswatch.flows.key import canonical
from egresswatch.flows.record import ClientNames
from egresswatch.names import dns, http, quic, tls
from egresswatch.names.passive_dns import DnsAnswer

DNS_PORT = 53
_SYN, _ACK = 0x02, 0x10
_DATA_KINDS = 0b1010  # grouping kind bits: payload in either direction
FlowId = tuple[object, ...]
"""The direction-free flow key (``flows.key.canonical``), as the flow table indexes flows."""


class Sniffed(NamedTuple):
    """One batch's findings, handed to the accounting side with the batch."""

    names: list[tuple[FlowId, ClientNames]]
    """(direction-free flow key, names) for flows whose client spoke in this batch."""
    dns: list[DnsAnswer]


NOTHING = Sniffed([], [])


class _Stream:
    """The first bytes one side sent on a TCP connection, in sequence order, bounded."""

    __slots__ = ("data", "kind", "next_seq", "sender")

    def __init__(self, kind: str, sender: tuple[bytes, int], seq: int) -> None:
        self.kind = kind  # "tls" or "http"
        self.sender = sender
        self.next_seq = seq
        self.data = b""


class _Quic:
    __slots__ = ("collector", "sender")

    def __init__(self, sender: tuple[bytes, int], limit: int) -> None:
        self.sender = sender
        self.collector = quic.InitialCollector(limit)


_DONE = None  # a flow with nothing (more) to learn from
_Watch = _Stream | _Quic | dns.DnsTcpStream | None


class NameSniffer:
    """Finds names in payloads, flow by flow. Holds per-flow state for at most ``max_flows``."""

    def __init__(
        self,
        *,
        max_client_bytes: int = 16_384,
        max_flows: int = 131_072,
        max_unsettled: int = 4096,
    ) -> None:
        self._limit = max_client_bytes
        self._max_flows = max_flows
        self._max_unsettled = max_unsettled
        self._watch: dict[FlowId, _Watch] = {}
        # Flows still buffering (a hello not yet complete, DNS over TCP): at most max_unsettled
        # of them, so their buffers stay within max_unsettled * max_client_bytes in all.
        self._unsettled: dict[FlowId, None] = {}
        self.errors: Counter[str] = Counter()
        """Payloads that looked like a protocol but did not parse, by reason."""

    @property
    def unsettled(self) -> int:
        """Flows whose first bytes are still being buffered (a metric)."""
        return len(self._unsettled)

    def sniff(
        self,
        frames: FrameBatch,
        d: DecodedBatch,
        grouping: Grouping,
        extra: list[tuple[int, float, PacketFacts]],
    ) -> Sniffed:
        """Names and DNS answers in a batch (``extra``: the per-packet decoder's rows)."""
        out = Sniffed([], [])
        if len(d):
            ends = frames.start + frames.caplen  # payloads end where their frame's bytes do
            self._udp_dns(d, ends, out)
            self._payloads(d, ends, grouping, out)
        for _, ts, p in extra:
            if p.proto in (TCP, UDP):
                data = p.data[p.payload_offset : p.payload_offset + p.payload_len]
                fid = canonical(p.src, p.sport, p.dst, p.dport, p.proto)
                seg = _Segment(
                    fid, p.proto, p.src, p.sport, p.dst, p.dport, p.tcp_flags, p.seq, data, ts
                )
                if p.proto == UDP and p.sport == DNS_PORT and data:
                    self._dns(dns.parse_message(data), seg, out)
                self._inspect(seg, out)
        if len(self._watch) > self._max_flows:
            # Forget the oldest half: a flow still running comes back as new, and its mid-stream
            # bytes rarely look like a hello, so it soon settles again.
            for key in list(islice(self._watch, len(self._watch) // 2)):
                del self._watch[key]
                self._unsettled.pop(key, None)
        return out if (out.names or out.dns) else NOTHING

    def _udp_dns(self, d: DecodedBatch, ends: Int64Array, out: Sniffed) -> None:
        """Every DNS response over UDP (source port 53)."""
        rows = np.flatnonzero((d.proto == UDP) & (d.sport == DNS_PORT) & (d.payload_len > 0))
        if not len(rows):
            return
        starts = d.payload_offset[rows].astype(np.int64)
        stops = np.minimum(starts + d.payload_len[rows], ends[d.row[rows]])
        buf, errors = d.buf, self.errors
        for start, stop, ts, v6, src, dst in zip(
            starts.tolist(), stops.tolist(), d.ts[rows].tolist(), d.v6[rows].tolist(),
            d.src[rows].tolist(), d.dst[rows].tolist(), strict=True,
        ):  # fmt: skip
            message = dns.parse_message(buf[start:stop])
            if isinstance(message, str):
                errors[message] += 1
            elif message.response:
                client, resolver = _address_text(*dst, v6), _address_text(*src, v6)
                out.dns.append(DnsAnswer.of(message, ts, client=client, resolver=resolver))

    def _payloads(
        self, d: DecodedBatch, ends: Int64Array, grouping: Grouping, out: Sniffed
    ) -> None:
        """Flow by flow, the payload rows of flows still being watched."""
        if grouping is None:  # hash collision: no groups, so every row on its own
            for i in np.flatnonzero((d.payload_len > 0) | (d.flags & _SYN)).tolist():
                self._inspect(_segment(d, ends, i, None), out)
            return
        watch = self._watch
        payload_len, flags = d.payload_len, d.flags
        for g in grouping[0]:
            fid, control = g[1], g[4]
            settled = watch.get(fid, 0) is _DONE
            if not g[8] & _DATA_KINDS or (settled and not control):
                continue  # no payload, or nothing more to learn (and no SYN that could reuse it)
            for i in g[0]:
                if flags[i] & _SYN:
                    if not flags[i] & _ACK:  # a new connection on this 5-tuple: start over
                        watch.pop(fid, None)
                        self._unsettled.pop(fid, None)
                        settled = False
                elif payload_len[i] and not settled:
                    self._inspect(_segment(d, ends, i, fid), out)
                    settled = watch.get(fid, 0) is _DONE

    def _inspect(self, seg: _Segment, out: Sniffed) -> None:
        watch = self._watch
        if seg.proto == TCP and seg.flags & _SYN and not seg.flags & _ACK:
            watch.pop(seg.fid, None)  # a new connection on this 5-tuple: start over
            self._unsettled.pop(seg.fid, None)
            return
        if not seg.data:
            return
        if seg.fid not in watch:
            state = watch[seg.fid] = self._start(seg)
            if state is not _DONE:
                self._unsettled[seg.fid] = None
                if len(self._unsettled) > self._max_unsettled:
                    self._give_up(next(iter(self._unsettled)), "names_too_many_unsettled")
        state = watch[seg.fid]
        if state is _DONE:
            return
        if isinstance(state, dns.DnsTcpStream):
            if seg.sport == DNS_PORT:
                for message in state.feed(seg.data):
                    self._dns(message, seg, out)
        elif (seg.src, seg.sport) != state.sender:
            return  # the other side: only the client's first bytes name the server
        elif isinstance(state, _Quic):
            self._quic(seg, state, out)
        else:
            self._tcp(seg, state, out)

    def _start(self, seg: _Segment) -> _Watch:
        """What to watch for on a flow, from its first payload."""
        sender = (seg.src, seg.sport)
        dns_flow = DNS_PORT in (seg.sport, seg.dport)
        if seg.proto == UDP:
            if dns_flow or quic.initial_version(seg.data) is None:
                return _DONE
            return _Quic(sender, self._limit)
        if dns_flow:
            return dns.DnsTcpStream()
        if tls.looks_like_tls(seg.data):
            return _Stream("tls", sender, seg.seq)
        if http.looks_like_http(seg.data):
            return _Stream("http", sender, seg.seq)
        return _DONE

    def _tcp(self, seg: _Segment, state: _Stream, out: Sniffed) -> None:
        data = seg.data
        ahead = (seg.seq - state.next_seq) & 0xFFFFFFFF
        if ahead >= 0x80000000:  # starts before what we have: a retransmission, maybe partial
            skip = (state.next_seq - seg.seq) & 0xFFFFFFFF
            if skip >= len(data):
                return
            data, ahead = data[skip:], 0
        if ahead:  # a gap: the segment in between was not captured
            self._give_up(seg.fid, f"{state.kind}_gap")
            return
        state.data += data
        state.next_seq = (state.next_seq + len(data)) & 0xFFFFFFFF
        found: object
        if state.kind == "tls":
            found = tls.client_hello_from_stream(state.data, limit=self._limit)
            if isinstance(found, tls.ClientHello):
                names = ClientNames(found.server_name, "sni", seg.ts, found.ja4, found.alpn)
                self._found(seg.fid, names, out)
        else:
            found = http.request_host(state.data, limit=self._limit)
            if isinstance(found, http.HttpRequest):
                self._found(seg.fid, ClientNames(_host_name(found.host), "http", seg.ts), out)
        if isinstance(found, str):
            self._give_up(seg.fid, found)

    def _quic(self, seg: _Segment, state: _Quic, out: Sniffed) -> None:
        message = state.collector.add(seg.data)
        if message is None:
            return
        if isinstance(message, bytes):
            hello = tls.parse_client_hello(message, transport="q")
            if isinstance(hello, tls.ClientHello):
                names = ClientNames(hello.server_name, "quic", seg.ts, hello.ja4, hello.alpn)
                self._found(seg.fid, names, out)
                return
            message = hello
        self._give_up(seg.fid, message)

    def _found(self, fid: FlowId, names: ClientNames, out: Sniffed) -> None:
        self._settle(fid)
        out.names.append((fid, names))

    def _give_up(self, fid: FlowId, reason: str) -> None:
        self._settle(fid)
        self.errors[reason] += 1

    def _settle(self, fid: FlowId) -> None:
        self._watch[fid] = _DONE
        self._unsettled.pop(fid, None)

    def _dns(self, message: dns.DnsMessage | str, seg: _Segment, out: Sniffed) -> None:
        if isinstance(message, str):
            self.errors[message] += 1
        elif message.response:
            client, resolver = address_text(seg.dst), address_text(seg.src)
            out.dns.append(DnsAnswer.of(message, seg.ts, client=client, resolver=resolver))


class _Segment(NamedTuple):
    """One packet's payload and what the sniffer needs to know about it."""

    fid: FlowId
    proto: int
    src: bytes
    sport: int
    dst: bytes
    dport: int
    flags: int
    seq: int
    data: bytes
    ts: float


def _segment(d: DecodedBatch, ends: Int64Array, i: int, fid: FlowId | None) -> _Segment:
    v6 = bool(d.v6[i])
    src = address_bytes(d.src[i].tolist(), v6)
    dst = address_bytes(d.dst[i].tolist(), v6)
    sport, dport, proto = int(d.sport[i]), int(d.dport[i]), int(d.proto[i])
    if fid is None:
        fid = canonical(src, sport, dst, dport, proto)
    start = int(d.payload_offset[i])
    end = min(start + int(d.payload_len[i]), int(ends[d.row[i]]))
    data = d.buf[start:end]
    flags, seq, ts = int(d.flags[i]), int(d.seq[i]), float(d.ts[i])
    return _Segment(fid, proto, src, sport, dst, dport, flags, seq, data, ts)


def _host_name(host: str | None) -> str | None:
    """A Host header's name: lower case, without the port."""
    if not host:
        return None
    host = host.lower()
    if host.startswith("["):  # [v6]:port
        end = host.find("]")
        return host[: end + 1] if end > 0 else host
    name, _, port = host.rpartition(":")
    return name if name and port.isdigit() and ":" not in name else host


@lru_cache(maxsize=4096)
def _address_text(high: int, low: int, v6: bool) -> str:
    """An address column's row as text; DNS traffic repeats a few addresses, hence the cache."""
    return address_text(address_bytes((high, low), v6))
