"""Replay benchmark: egresswatch's pipeline against ``tshark -z conv`` on the same capture.

Writes a deterministic ~1M-packet capture shaped like an AI inference box's uplink (model downloads
and uploads over TLS, short API calls, DNS, QUIC, ping; some IPv6 and 802.1Q), then in one run:

1. ``egresswatch replay FILE --db sqlite:///...`` in a subprocess: decode + flows + SQLite store,
   the real CLI, interpreter start-up included;
2. the same pipeline in this process without the store (pcap read alone, then decode + flows), to
   show where the time goes;
3. ``tshark -q -z conv,tcp -z conv,udp -r FILE``, timed the same way.

Prints packets/s, CPU seconds and flows found for each, and whether egresswatch reached the goal of
5x tshark's packet rate. Always exits 0: it is a benchmark, not a test. See bench/README.md.

    .venv/bin/python bench/replay.py [--packets N] [--out DIR] [--keep] [--skip-tshark]
"""

from __future__ import annotations

import argparse
import math
import random
import re
import resource
import shutil
import sqlite3
import struct
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

GOAL = 5.0
"""egresswatch must replay at least this many times as many packets/s as tshark."""
SEED = 20240611
EPOCH = 1_717_000_000.0
PPS = 8_000
"""Average packet rate of the synthetic capture: it sets the capture's duration."""
V6_SHARE, VLAN_SHARE = 0.12, 0.05
"""Target shares of packets that are IPv6 / carry an 802.1Q tag."""
MIX = {"download": 0.56, "upload": 0.14, "api": 0.16, "dns": 0.04, "quic": 0.065, "ping": 0.035}
"""Share of the packet budget per traffic kind (TCP ~86%, UDP ~10.5%, ICMP ~3.5%)."""
TSHARK = "/usr/bin/tshark"
BENCH_DIR = Path(__file__).resolve().parent

# --- packet building ----------------------------------------------------------------------------

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
TCP, UDP, ICMP, ICMP6 = 6, 17, 1, 58
_IP4 = struct.Struct("!BBHHHBBH4s4s")
_IP6 = struct.Struct("!IHBB16s16s")
_TCP = struct.Struct("!HHIIBBHHH")
_UDP = struct.Struct("!HHHH")
_TS_OPT = struct.Struct("!BBBBII")  # NOP, NOP, kind 8, length 10, TSval, TSecr
_RECORD = struct.Struct("<IIII")


def _checksum(data: bytes) -> int:
    """The Internet checksum. 2**16 = 1 (mod 0xFFFF), so the one's complement sum of the 16-bit
    words is the whole buffer taken as one integer, mod 0xFFFF (with 0xFFFF for "negative zero")."""
    if len(data) % 2:
        data += b"\0"
    value = int.from_bytes(data, "big")
    total = value % 0xFFFF or (0xFFFF if value else 0)
    return ~total & 0xFFFF


@dataclass(frozen=True, slots=True)
class Leg:
    """One direction between two hosts: link header, addresses, TTL. Builds the frame headers."""

    link: bytes
    """Ethernet header up to and including the ethertype (with the 802.1Q tag if any)."""
    src: bytes
    dst: bytes
    ttl: int

    @property
    def v6(self) -> bool:
        return len(self.src) == 16

    def ip(self, proto: int, l4: bytes, payload_len: int, ident: int) -> bytes:
        """Link + IP header + ``l4`` (the transport header); the payload follows in the file."""
        if self.v6:
            return (
                self.link
                + _IP6.pack(0x60000000, len(l4) + payload_len, proto, self.ttl, self.src, self.dst)
                + l4
            )
        head = _IP4.pack(
            0x45,
            0,
            20 + len(l4) + payload_len,
            ident & 0xFFFF,
            0x4000,
            self.ttl,
            proto,
            0,
            self.src,
            self.dst,
        )
        return self.link + head[:10] + _checksum(head).to_bytes(2, "big") + head[12:] + l4

    def reverse(self, ttl: int) -> Leg:
        link = self.link[6:12] + self.link[:6] + self.link[12:]
        return Leg(link, self.dst, self.src, ttl)


class Trace:
    """Packets of the synthetic capture (header bytes + payload length) and the flows they form."""

    def __init__(self) -> None:
        self.ts: list[float] = []
        self.heads: list[bytes] = []
        self.payload: list[int] = []
        self.flows: Counter[str] = Counter()
        """Flows generated, by protocol: what a correct replay must find."""
        self.kinds: Counter[str] = Counter()
        self.v6 = self.vlan = 0

    def add(self, ts: float, head: bytes, payload_len: int) -> None:
        self.ts.append(ts)
        self.heads.append(head)
        self.payload.append(payload_len)

    def __len__(self) -> int:
        return len(self.ts)


class TcpConnection:
    """One TCP connection with real sequence numbers, TCP timestamps and delayed ACKs."""

    def __init__(self, trace: Trace, out: Leg, sport: int, dport: int, rng: random.Random):
        self.trace = trace
        self.paths = (out, out.reverse(rng.choice((52, 54, 57, 116, 118))))
        self.ports = ((sport, dport), (dport, sport))
        self.seq = [rng.getrandbits(32), rng.getrandbits(32)]
        self.ident = [rng.getrandbits(16), rng.getrandbits(16)]
        self.clock = [rng.getrandbits(31), rng.getrandbits(31)]
        self.mss = 1428 if out.v6 else 1448
        self.rtt = rng.uniform(0.004, 0.09)

    def send(self, side: int, ts: float, flags: int, size: int = 0) -> None:
        """A segment from the client (side 0) or the server (side 1)."""
        sport, dport = self.ports[side]
        tsval = (self.clock[side] + int(ts * 1000)) & 0xFFFFFFFF
        tsecr = (self.clock[1 - side] + int((ts - self.rtt) * 1000)) & 0xFFFFFFFF
        if flags & SYN:  # MSS, SACK permitted, timestamps, window scale 7
            opts = (
                b"\x02\x04"
                + (self.mss + 12).to_bytes(2, "big")
                + b"\x04\x02"
                + _TS_OPT.pack(1, 1, 8, 10, tsval, 0 if side == 0 else tsecr)[2:]
                + b"\x01\x03\x03\x07"
            )
            window = 64240 if side == 0 else 65160
        else:
            opts, window = _TS_OPT.pack(1, 1, 8, 10, tsval, tsecr), 502
        ack = self.seq[1 - side] if flags & ACK else 0
        l4 = (
            _TCP.pack(sport, dport, self.seq[side], ack, (20 + len(opts)) << 2, flags, window, 0, 0)
            + opts
        )
        self.trace.add(ts, self.paths[side].ip(TCP, l4, size, self.ident[side]), size)
        self.ident[side] += 1
        self.seq[side] = (self.seq[side] + size + (1 if flags & (SYN | FIN) else 0)) & 0xFFFFFFFF

    def open(self, ts: float) -> float:
        self.send(0, ts, SYN)
        self.send(1, ts + self.rtt, SYN | ACK)
        self.send(0, ts + self.rtt + 0.0001, ACK)
        return ts + self.rtt + 0.0002

    def transfer(self, side: int, nbytes: int, ts: float, end: float | None = None) -> float:
        """``nbytes`` from ``side`` in MSS segments (last one PSH), ACKed every second segment.

        Segments are spaced evenly up to ``end`` (bulk transfers), else back to back at ~1 Gbit/s.
        """
        count = max(1, math.ceil(nbytes / self.mss))
        step = (end - ts) / count if end is not None else 12e-6
        for i in range(count):
            last = i == count - 1
            size = nbytes - i * self.mss if last else self.mss
            t = ts + i * step
            self.send(side, t, ACK | (PSH if last else 0), size)
            if i % 2 or last:
                self.send(1 - side, t + min(step, self.rtt) * 0.5, ACK)
        return ts + count * step + self.rtt

    def close(self, ts: float) -> float:
        self.send(0, ts, FIN | ACK)
        self.send(1, ts + self.rtt, FIN | ACK)
        self.send(0, ts + self.rtt + 0.0001, ACK)
        return ts + self.rtt

    def tls_start(self, ts: float, rng: random.Random) -> float:
        """ClientHello, the server's flight (certificates), the client's Finished."""
        ts = self.transfer(0, rng.choice((517, 583, 1771)), ts)
        ts = self.transfer(1, rng.randint(2800, 5200), ts)
        return self.transfer(0, rng.choice((64, 80, 126)), ts)


# --- the traffic mix ----------------------------------------------------------------------------

REMOTE_V4_PREFIXES = (
    (104, 16),
    (185, 199),
    (3, 5),
    (52, 216),
    (34, 107),
    (151, 101),
    (13, 32),
    (140, 82),
    (162, 159),
    (54, 231),
    (18, 160),
    (35, 186),
)
REMOTE_V6_PREFIXES = (
    b"\x26\x06\x47\x00",
    b"\x2a\x04\x4e\x42",
    b"\x26\x00\x1f\x18",
    b"\x26\x07\xf8\xb0",
    b"\x2a\x03\x28\x80",
)
DNS_NAMES = (
    "huggingface.co",
    "cdn-lfs.huggingface.co",
    "cdn-lfs-us-1.hf.co",
    "api.openai.com",
    "pypi.org",
    "files.pythonhosted.org",
    "registry-1.docker.io",
    "production.cloudflare.docker.com",
    "s3.us-east-1.amazonaws.com",
    "storage.googleapis.com",
    "github.com",
    "objects.githubusercontent.com",
    "api.anthropic.com",
    "o4504.ingest.sentry.io",
    "ntp.ubuntu.com",
    "download.pytorch.org",
    "developer.download.nvidia.com",
    "api.wandb.ai",
    "prometheus-push.internal.example.com",
    "metadata.google.internal",
)
NOISE = random.Random(SEED + 1).randbytes(1 << 20)
"""Payload bytes: TLS records and QUIC packets look like random data."""
HOST_MAC, GATEWAY_MAC = bytes.fromhex("3cecef123456"), bytes.fromhex("0010db7a0001")


class Mix:
    """Chooses hosts, ports, IP family and VLAN so the capture lands on the target shares."""

    def __init__(self, rng: random.Random, trace: Trace) -> None:
        self.rng, self.trace = rng, trace
        self.remotes4 = [
            bytes([a, b, rng.randrange(256), rng.randrange(1, 255)])
            for a, b in REMOTE_V4_PREFIXES
            for _ in range(25)
        ]
        self.remotes6 = [
            p + bytes(4) + rng.randbytes(8) for p in REMOTE_V6_PREFIXES for _ in range(16)
        ]
        self.locals4 = [bytes([10, 20, 0, 5])] + [bytes([172, 17, 0, i]) for i in range(2, 9)]
        self.locals6 = [bytes.fromhex("fd000020000000000000000000000005")] + [
            bytes.fromhex("fd00001700000000000002420011") + bytes([0, i]) for i in range(2, 5)
        ]
        self.vlan4, self.vlan6 = bytes([10, 30, 0, 7]), bytes.fromhex("fd00003000000000" + "07" * 8)
        self.used: set[tuple[bytes, int, bytes, int, int]] = set()
        self.weight = 0.0
        self.v6_weight = self.vlan_weight = 0.0

    def route(self, packets: float, remote: bytes | None = None) -> tuple[bool, bool]:
        """IPv6? 802.1Q? for a flow of about ``packets`` packets (deterministic error diffusion)."""
        self.weight += packets
        v6 = self.v6_weight + packets / 2 <= V6_SHARE * self.weight
        if remote is not None:
            v6 = len(remote) == 16
        vlan = self.vlan_weight + packets / 2 <= VLAN_SHARE * self.weight
        self.v6_weight += packets * v6
        self.vlan_weight += packets * vlan
        return v6, vlan

    def path(self, v6: bool, vlan: bool, remote: bytes | None = None) -> Leg:
        rng = self.rng
        if vlan:
            local = self.vlan6 if v6 else self.vlan4
        else:
            local = rng.choice(self.locals6 if v6 else self.locals4)
        if remote is None:
            remote = rng.choice(self.remotes6 if v6 else self.remotes4)
        ethertype = b"\x86\xdd" if v6 else b"\x08\x00"
        tag = b"\x81\x00" + (30).to_bytes(2, "big") if vlan else b""
        return Leg(GATEWAY_MAC + HOST_MAC + tag + ethertype, local, remote, 64)

    def port(self, out: Leg, dport: int, proto: int) -> int:
        """An ephemeral port that makes the 5-tuple unique in the whole capture."""
        while True:
            sport = self.rng.randint(32768, 60999)
            key = (out.src, sport, out.dst, dport, proto)
            if key not in self.used:
                self.used.add(key)
                return sport

    def tcp(self, packets: float, dport: int, remote: bytes | None = None) -> TcpConnection:
        out = self.path(*self.route(packets, remote), remote)
        self.trace.flows["tcp"] += 1
        return TcpConnection(self.trace, out, self.port(out, dport, TCP), dport, self.rng)


def downloads(mix: Mix, budget: int, duration: float) -> None:
    """Model weights pulled from a CDN in parallel range requests, plus container image layers."""
    rng = mix.rng
    cdn = [rng.choice(mix.remotes4[:25]), rng.choice(mix.remotes6[:16])]
    weights = [rng.uniform(0.5, 1.5) for _ in range(12)]
    for i, w in enumerate(weights):
        packets = budget * w / sum(weights)
        conn = mix.tcp(packets, 443, cdn[1] if i % 6 == 5 else cdn[0])
        ts = conn.tls_start(conn.open(rng.uniform(0, duration * 0.25)), rng)
        ts = conn.transfer(0, rng.randint(350, 700), ts)  # GET with a Range header
        body = int((packets - 40) * 2 / 3 * conn.mss)
        end = rng.uniform(duration * 0.7, duration * 0.98)
        conn.close(conn.transfer(1, body, ts, end))


def uploads(mix: Mix, budget: int, duration: float) -> None:
    """Checkpoints and logs pushed to object storage, a few MB each."""
    rng, trace, start = mix.rng, mix.trace, len(mix.trace)
    while len(trace) - start < budget:
        size = int(rng.lognormvariate(14.5, 0.9))  # median ~2 MB
        conn = mix.tcp(size / 1448 * 1.5 + 20, 443)
        ts = conn.tls_start(conn.open(rng.uniform(0, duration * 0.9)), rng)
        ts = conn.transfer(0, size, ts, ts + size / rng.uniform(2e6, 4e7))
        conn.close(conn.transfer(1, rng.randint(200, 900), ts))


def api_calls(mix: Mix, budget: int, duration: float) -> None:
    """Short HTTPS request/response connections (API calls, registry and hub metadata)."""
    rng, trace, start = mix.rng, mix.trace, len(mix.trace)
    while len(trace) - start < budget:
        conn = mix.tcp(28, 443)
        ts = conn.tls_start(conn.open(rng.uniform(0, duration)), rng)
        for _ in range(rng.choice((1, 1, 1, 2, 3))):
            ts = conn.transfer(0, rng.randint(180, 2400), ts + rng.uniform(0.0005, 0.05))
            ts = conn.transfer(1, int(rng.lognormvariate(8.0, 1.2)) + 60, ts + conn.rtt)
        conn.close(ts + rng.uniform(0.001, 0.5))


def dns_lookups(mix: Mix, budget: int, duration: float) -> None:
    """glibc-style lookups: A and AAAA from one socket (or A alone) to a resolver, answered."""
    rng, trace, start = mix.rng, mix.trace, len(mix.trace)
    resolvers4 = [bytes([10, 20, 0, 1]), bytes([1, 1, 1, 1])]
    resolver6 = bytes.fromhex("26064700470000000000000000001111")
    while len(trace) - start < budget:
        qtypes = (1, 28) if rng.random() < 0.6 else (1,)
        v6, vlan = mix.route(2 * len(qtypes))
        out = mix.path(v6, vlan, resolver6 if v6 else rng.choice(resolvers4))
        back = out.reverse(64 if out.dst[0] == 10 else 58)
        sport = mix.port(out, 53, UDP)
        trace.flows["udp"] += 1
        name = rng.choice(DNS_NAMES)
        ts = rng.uniform(0, duration)
        for qtype in qtypes:
            ident = rng.getrandbits(16)
            query = _dns(ident, name, qtype, answers=None)
            answer = _dns(
                ident,
                name,
                qtype,
                answers=[rng.randbytes(4 if qtype == 1 else 16) for _ in range(rng.randint(1, 4))],
            )
            _udp(trace, out, sport, 53, ts, query)
            _udp(trace, back, 53, sport, ts + rng.uniform(0.0004, 0.03), answer)
            ts += 0.00005


def _dns(ident: int, name: str, qtype: int, answers: list[bytes] | None) -> bytes:
    qname = b"".join(len(p).to_bytes(1, "big") + p.encode() for p in name.split(".")) + b"\0"
    flags, count = (0x0100, 0) if answers is None else (0x8180, len(answers))
    message = (
        struct.pack("!HHHHHH", ident, flags, 1, count, 0, 0) + qname + struct.pack("!HH", qtype, 1)
    )
    for rdata in answers or []:
        message += struct.pack("!HHHIH", 0xC00C, qtype, 1, 300, len(rdata)) + rdata
    return message


def _udp(trace: Trace, path: Leg, sport: int, dport: int, ts: float, payload: bytes) -> None:
    """A UDP datagram with its payload and a correct checksum (required over IPv6)."""
    length = 8 + len(payload)
    pseudo = path.src + path.dst + struct.pack("!I3xB", length, UDP)
    cksum = _checksum(pseudo + _UDP.pack(sport, dport, length, 0) + payload) or 0xFFFF
    l4 = _UDP.pack(sport, dport, length, cksum) + payload
    trace.add(ts, path.ip(UDP, l4, 0, int(ts * 1e5)), 0)


def quic_flows(mix: Mix, budget: int, duration: float) -> None:
    """HTTP/3 to port 443: 1200-byte Initials, server data in ~1250-byte datagrams, client ACKs."""
    rng, trace, start = mix.rng, mix.trace, len(mix.trace)
    while len(trace) - start < budget:
        datagrams = rng.randint(10, 400)
        out = mix.path(*mix.route(datagrams * 1.25))
        back = out.reverse(57)
        sport = mix.port(out, 443, UDP)
        trace.flows["udp"] += 1
        dcid, scid = rng.randbytes(8), rng.randbytes(8)
        initial = b"\xc3\x00\x00\x00\x01\x08" + dcid + b"\x08" + scid
        ts, rtt = rng.uniform(0, duration * 0.95), rng.uniform(0.005, 0.08)
        _quic(trace, out, sport, 443, ts, initial, 1200)
        _quic(trace, back, 443, sport, ts + rtt, b"\xc1\x00\x00\x00\x01\x08" + scid, 1200)
        ts += rtt + 0.001
        step = rng.uniform(0.0002, 0.004)
        for i in range(datagrams):
            _quic(
                trace,
                back,
                443,
                sport,
                ts + i * step,
                b"\x41" + scid,
                rng.choice((1252, 1252, 640)),
            )
            if i % 4 == 3:
                _quic(trace, out, sport, 443, ts + i * step + rtt / 2, b"\x43" + dcid, 40)


def _quic(
    trace: Trace, path: Leg, sport: int, dport: int, ts: float, head: bytes, size: int
) -> None:
    at = len(trace) * 61 % (len(NOISE) - 2048)  # the rest of the packet is "encrypted"
    _udp(trace, path, sport, dport, ts, head + NOISE[at : at + size - len(head)])


def pings(mix: Mix, budget: int, duration: float) -> None:
    """Health probes: bursts of echo requests one second apart, each pair of hosts once."""
    rng, trace, start = mix.rng, mix.trace, len(mix.trace)
    pairs: set[tuple[bytes, bytes]] = set()
    while len(trace) - start < budget:
        count = rng.randint(10, min(120, max(10, int(duration) - 1)))
        out = mix.path(*mix.route(2 * count))
        if (out.src, out.dst) in pairs:
            continue
        pairs.add((out.src, out.dst))
        back = out.reverse(55)
        trace.flows["icmp6" if out.v6 else "icmp"] += 1
        ident, ts, rtt = (
            rng.getrandbits(16),
            rng.uniform(0, duration - count),
            rng.uniform(0.002, 0.06),
        )
        for seq in range(1, count + 1):
            data = struct.pack("<QQ", int(ts), int(ts % 1 * 1e6)) + bytes(range(16, 56))
            request, reply = (128, 129) if out.v6 else (8, 0)
            _icmp(trace, out, request, ident, seq, ts, data)
            _icmp(trace, back, reply, ident, seq, ts + rtt, data)
            ts += 1.0 + rng.uniform(-0.002, 0.002)


def _icmp(trace: Trace, path: Leg, kind: int, ident: int, seq: int, ts: float, data: bytes) -> None:
    body = struct.pack("!BBHHH", kind, 0, 0, ident, seq) + data
    if path.v6:  # the checksum covers a pseudo-header
        pseudo = path.src + path.dst + struct.pack("!I3xB", len(body), ICMP6)
        cksum = _checksum(pseudo + body)
    else:
        cksum = _checksum(body)
    body = body[:2] + cksum.to_bytes(2, "big") + body[4:]
    trace.add(ts, path.ip(ICMP6 if path.v6 else ICMP, body, 0, seq), 0)


GENERATORS: dict[str, Callable[[Mix, int, float], None]] = {
    "download": downloads,
    "upload": uploads,
    "api": api_calls,
    "dns": dns_lookups,
    "quic": quic_flows,
    "ping": pings,
}


def generate(packets: int) -> Trace:
    """The synthetic capture's packets, about ``packets`` of them, in no particular order."""
    rng = random.Random(SEED)
    trace = Trace()
    mix = Mix(rng, trace)
    duration = max(30.0, packets / PPS)
    for kind, share in MIX.items():
        before = len(trace)
        GENERATORS[kind](mix, int(packets * share), duration)
        trace.kinds[kind] = len(trace) - before
    return trace


def write_pcap(trace: Trace, path: Path) -> dict[str, float]:
    """Write the packets in time order as a classic pcap (Ethernet, microseconds)."""
    order = np.argsort(np.array(trace.ts), kind="stable").tolist()
    ts, heads, payload = trace.ts, trace.heads, trace.payload
    shares: Counter[str] = Counter()
    with path.open("wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        chunk: list[bytes] = []
        for n, i in enumerate(order):
            head, size = heads[i], payload[i]
            usec = round((EPOCH + ts[i]) * 1e6)
            length = len(head) + size
            at = (n * 7919) % ((1 << 20) - 2048)
            chunk += (
                _RECORD.pack(usec // 1_000_000, usec % 1_000_000, length, length),
                head,
                NOISE[at : at + size],
            )
            shares["v6"] += head[12:14] == b"\x86\xdd" or head[16:18] == b"\x86\xdd"
            shares["vlan"] += head[12:14] == b"\x81\x00"
            if len(chunk) >= 30_000:
                f.write(b"".join(chunk))
                chunk = []
        f.write(b"".join(chunk))
    return {k: v / len(order) for k, v in shares.items()}


# --- the runs -----------------------------------------------------------------------------------


@dataclass(slots=True)
class Result:
    engine: str
    packets: int
    wall: float
    cpu: float
    flows: Counter[str]

    @property
    def rate(self) -> float:
        return self.packets / self.wall if self.wall > 0 else 0.0


def run_timed(argv: list[str]) -> tuple[subprocess.CompletedProcess[str], float, float]:
    """Run a command; its wall-clock and CPU (user + system, children included) seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode != 0:
        print(f"{argv[0]} exited with {done.returncode}:\n{done.stderr[-2000:]}", file=sys.stderr)
    return done, wall, cpu


def replay_cli(pcap: Path, out: Path, packets: int, engine: str) -> Result:
    """The real CLI in a subprocess: decode + flows + SQLite, start-up and migrations included."""
    db = out / "bench.db"
    for stale in out.glob("bench.db*"):
        stale.unlink()
    config = out / "bench.toml"
    config.write_text("# defaults only: the benchmark ignores /etc/egresswatch\n")
    cli = Path(sys.executable).with_name("egresswatch")
    argv = [str(cli)] if cli.exists() else [sys.executable, "-m", "egresswatch"]
    argv += ["replay", str(pcap), "--config", str(config), "--db", f"sqlite:///{db}", "--quiet"]
    _, wall, cpu = run_timed(argv)
    with sqlite3.connect(db) as conn:
        flows = Counter(dict(conn.execute("SELECT protocol, count(*) FROM flows GROUP BY 1")))
    return Result(engine, packets, wall, cpu, flows)


def replay_in_process(pcap: Path) -> tuple[Result, Result, Counter[str]]:
    """Reading alone, then decode + flows without a store, in this process."""
    from egresswatch.capture.pcapfile import PcapFile
    from egresswatch.config import Settings
    from egresswatch.flows.record import FlowRecord
    from egresswatch.pipeline import Decoder, Pipeline

    wall, cpu = time.perf_counter(), time.process_time()
    packets = sum(len(batch) for batch in PcapFile(pcap).batches())
    read = Result(
        "  pcap read only (in-process)",
        packets,
        time.perf_counter() - wall,
        time.process_time() - cpu,
        Counter(),
    )
    flows: Counter[str] = Counter()

    def sink(records: list[FlowRecord]) -> None:
        flows.update(r.protocol for r in records if r.closed)

    decoder = Decoder()
    pipeline = Pipeline(Settings(), sink, decoder, sweep_interval=10.0)
    wall, cpu = time.perf_counter(), time.process_time()
    pipeline.feed(decoder.prepare(PcapFile(pcap).batches(), lambda _: pcap.name))
    pipeline.finish()
    core = Result(
        "  decode + flows, no store (one process)",
        pipeline.packets,
        time.perf_counter() - wall,
        time.process_time() - cpu,
        flows,
    )
    return read, core, pipeline.counters


def replay_tshark(pcap: Path, packets: int, engine: str) -> Result | None:
    tshark = shutil.which("tshark") or TSHARK
    if not Path(tshark).exists():
        print("tshark not found: skipped", file=sys.stderr)
        return None
    done, wall, cpu = run_timed([tshark, "-q", "-z", "conv,tcp", "-z", "conv,udp", "-r", str(pcap)])
    return Result(engine, packets, wall, cpu, tshark_conversations(done.stdout))


def tshark_conversations(report: str) -> Counter[str]:
    """Conversations per table ("TCP Conversations", "UDP Conversations") in tshark's report."""
    flows: Counter[str] = Counter()
    table = ""
    for line in report.splitlines():
        heading = re.match(r"(TCP|UDP) Conversations", line)
        if heading:
            table = heading.group(1).lower()
        elif table and "<->" in line:
            flows[table] += 1
    return flows


# --- output -------------------------------------------------------------------------------------


def flows_text(flows: Counter[str]) -> str:
    if not flows:
        return "-"
    order = ["tcp", "udp", "icmp", "icmp6"]
    parts = [f"{k} {flows[k]:,}" for k in order if flows.get(k)]
    parts += [f"{k} {v:,}" for k, v in sorted(flows.items()) if k not in order]
    return ", ".join(parts)


def print_table(results: list[Result]) -> None:
    header = f"{'engine':<40} {'packets':>10} {'seconds':>8} {'packets/s':>11} {'CPU s':>7}"
    print(header + "  flows found")
    print("-" * (len(header) + 13))
    for r in results:
        rate = f"{r.rate:,.0f}" if r.packets else "-"
        print(
            f"{r.engine:<40} {r.packets:>10,} {r.wall:>8.2f} {rate:>11} {r.cpu:>7.2f}"
            f"  {flows_text(r.flows)}"
        )


def verdict(ours: Result, tshark: Result | None, generated: Counter[str]) -> None:
    """The sanity checks on flow counts and the 5x goal."""
    tcp_udp = {k: generated[k] for k in ("tcp", "udp")}
    same = dict(ours.flows) == dict(generated)
    print(
        f"flows generated: {flows_text(generated)} -> egresswatch found "
        f"{'the same' if same else 'DIFFERENT counts'}"
    )
    if tshark is None:
        print("tshark skipped: no ratio")
        return
    same_tshark = dict(tshark.flows) == tcp_udp
    print(
        f"tshark conversations (TCP + UDP only) match the generated flows: "
        f"{'yes' if same_tshark else 'NO'}"
    )
    ratio = ours.rate / tshark.rate if tshark.rate else math.inf
    cpu = tshark.cpu / ours.cpu if ours.cpu else math.inf
    print(
        f"egresswatch / tshark: {ratio:.1f}x the packets/s (wall clock); tshark used "
        f"{cpu:.1f}x egresswatch's CPU time"
    )
    goal = "MET" if ratio >= GOAL else "NOT MET"
    print(f"goal: egresswatch >= {GOAL:.0f}x tshark's packet rate: {goal}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--packets",
        type=int,
        default=1_000_000,
        help="packets in the synthetic capture (default: 1,000,000)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=BENCH_DIR / "out",
        help="directory for the capture and the database (default: bench/out/)",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the capture and database (default: delete them at the end)",
    )
    parser.add_argument("--skip-tshark", action="store_true", help="do not run tshark")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    pcap = args.out / f"mixed-{args.packets}.pcap"
    started = time.perf_counter()
    trace = generate(args.packets)
    shares = write_pcap(trace, pcap)
    total = len(trace)
    mix = ", ".join(f"{k} {v / total:.1%}" for k, v in trace.kinds.items())
    print(
        f"capture: {pcap} ({total:,} packets, {pcap.stat().st_size / 1e6:,.0f} MB, written in "
        f"{time.perf_counter() - started:.1f} s)"
    )
    print(f"  mix: {mix}; IPv6 {shares['v6']:.1%}, 802.1Q {shares['vlan']:.1%}")
    del trace.heads[:], trace.payload[:], trace.ts[:]
    empty = args.out / "empty.pcap"
    empty.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    try:
        fixed = replay_cli(empty, args.out, 0, "  start-up + migrations (empty capture)")
        ours = replay_cli(pcap, args.out, total, "egresswatch replay (CLI, SQLite)")
        read, core, counters = replay_in_process(pcap)
        theirs = theirs_fixed = None
        if not args.skip_tshark:
            theirs = replay_tshark(pcap, total, "tshark -q -z conv,tcp -z conv,udp")
            theirs_fixed = replay_tshark(empty, 0, "  start-up (empty capture)")
    finally:
        if not args.keep:
            for path in [pcap, empty, *args.out.glob("bench.db*"), args.out / "bench.toml"]:
                path.unlink(missing_ok=True)
    print()
    print_table([r for r in (ours, fixed, read, core, theirs, theirs_fixed) if r is not None])
    skipped = {k: v for k, v in counters.items() if k.startswith("skipped_") and v}
    print(
        f"\nin-process counters: {counters['flows_created']:,} flows created, "
        f"{counters['flows_evicted']:,} evicted, skipped {skipped or 'none'}"
    )
    print(
        f"CLI {ours.wall:.2f} s wall, {ours.cpu:.2f} s CPU: it reads and decodes in a second "
        f"process while the first keeps the flows and the database, so the one-process parts "
        f"above add up to more than its wall time"
    )
    verdict(ours, theirs, trace.flows)
    if core.flows != ours.flows:
        print(f"note: the in-process run found {flows_text(core.flows)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
