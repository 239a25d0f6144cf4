"""Replay benchmark: egresswatch's pipeline against ``tshark -z conv`` on the same capture.

Writes a deterministic ~1M-packet capture shaped like an AI inference box's uplink (model downloads
and uploads over TLS, short API calls, DNS, QUIC, ping; some IPv6 and 802.1Q) whose connections
name their servers (TLS and QUIC ClientHellos with SNI, HTTP Host headers, DNS answers holding the
addresses the clients then connect to), and small GeoIP databases (City and ASN) covering its
remote addresses. Then, in one run:

1. ``egresswatch replay FILE --db sqlite:///... --geoip-dir DIR`` in a subprocess: decode + flows
   + names + geo + SQLite store, the real CLI, interpreter start-up included;
2. the same pipeline in this process without the store: pcap read alone, decode + flows without
   names or geo, then with both, to show where the time goes and what enrichment costs;
3. ``tshark -q -z conv,tcp -z conv,udp -r FILE``, timed the same way.

Prints packets/s, CPU seconds and flows found for each, whether egresswatch reached the goal of 5x
tshark's packet rate, whether enrichment stayed within 20% of the plain pipeline's time, and the
names and places found in the database next to what the generator put in the capture. Always
exits 0: it is a benchmark, not a test. See bench/README.md.

    .venv/bin/python bench/replay.py [--packets N] [--out DIR] [--keep] [--skip-tshark]
"""

from __future__ import annotations

import argparse
import ipaddress
import json
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
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from names import http_request, http_response, quic_initial, tls_client_hello

GOAL = 5.0
"""egresswatch must replay at least this many times as many packets/s as tshark."""
ENRICHMENT_GOAL = 0.20
"""Names and geo may make the in-process pipeline at most this much slower."""
SEED = 20240611
EPOCH = 1_717_000_000.0
PPS = 8_000
"""Average packet rate of the synthetic capture: it sets the capture's duration."""
V6_SHARE, VLAN_SHARE = 0.12, 0.05
"""Target shares of packets that are IPv6 / carry an 802.1Q tag."""
MIX = {"download": 0.56, "upload": 0.14, "api": 0.16, "dns": 0.04, "quic": 0.065, "ping": 0.035}
"""Share of the packet budget per traffic kind (TCP ~86%, UDP ~10.5%, ICMP ~3.5%)."""
HTTP_SHARE = 0.05
"""Share of the API calls made in plain HTTP to port 80 (named by their Host header)."""
LOOKUP_SHARE = 0.7
"""Share of the TCP and QUIC connections preceded by their client's DNS lookup of the server."""
DNS_TTL, DNS_GRACE = 300, 300.0
"""TTL of every DNS answer; egresswatch's default ``names.dns_grace``: together, how long an
answer names its client's connections."""
DNS_CACHE_SIZE = 100_000
"""egresswatch's default ``names.dns_cache_size``: (client, address) pairs it remembers."""
PASSIVE_DNS_DEPTH = 4
"""Answers egresswatch keeps per (client, address): the generator never gives a pair more, so the
flows it expects to be named after DNS are exactly those that are."""
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


@dataclass(slots=True)
class FlowPlan:
    """One flow as generated: what a replay must make of its client, server, start and name."""

    client: bytes
    remote: bytes
    start: float
    said: str | None = None
    """How the client names the server in the flow itself: sni, quic, http, or None."""


class Trace:
    """Packets of the synthetic capture (header bytes + payload length) and the flows they form."""

    def __init__(self) -> None:
        self.ts: list[float] = []
        self.heads: list[bytes] = []
        self.payload: list[int] = []
        self.data: dict[int, bytes] = {}
        """Payload bytes of the packets that carry real ones (by index); the rest get noise."""
        self.flows: Counter[str] = Counter()
        """Flows generated, by protocol: what a correct replay must find."""
        self.plans: list[FlowPlan] = []
        self.answered: dict[tuple[bytes, bytes], list[float]] = {}
        """(client, address) -> times of the DNS answers that gave that client that address."""
        self.dns_responses = 0
        self.kinds: Counter[str] = Counter()
        self.v6 = self.vlan = 0

    def add(self, ts: float, head: bytes, payload_len: int, data: bytes | None = None) -> None:
        """A packet: headers, then ``payload_len`` bytes of noise, or ``data`` when given."""
        if data is not None:
            self.data[len(self.ts)] = data
            payload_len = len(data)
        self.ts.append(ts)
        self.heads.append(head)
        self.payload.append(payload_len)

    def plan(self, client: bytes, remote: bytes, start: float, said: str | None = None) -> FlowPlan:
        plan = FlowPlan(client, remote, start, said)
        self.plans.append(plan)
        return plan

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
        self.plan = trace.plan(out.src, out.dst, 0.0)

    @property
    def remote(self) -> bytes:
        return self.paths[0].dst

    def send(
        self, side: int, ts: float, flags: int, size: int = 0, data: bytes | None = None
    ) -> None:
        """A segment from the client (side 0) or the server (side 1), ``data`` or noise."""
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
        self.trace.add(ts, self.paths[side].ip(TCP, l4, size, self.ident[side]), size, data)
        self.ident[side] += 1
        self.seq[side] = (self.seq[side] + size + (1 if flags & (SYN | FIN) else 0)) & 0xFFFFFFFF

    def open(self, ts: float) -> float:
        self.plan.start = ts
        self.send(0, ts, SYN)
        self.send(1, ts + self.rtt, SYN | ACK)
        self.send(0, ts + self.rtt + 0.0001, ACK)
        return ts + self.rtt + 0.0002

    def transfer(
        self,
        side: int,
        nbytes: int,
        ts: float,
        end: float | None = None,
        data: bytes | None = None,
    ) -> float:
        """``nbytes`` from ``side`` in MSS segments (last one PSH), ACKed every second segment.
        The bytes are noise, or ``data`` (then ``nbytes`` is its length).

        Segments are spaced evenly up to ``end`` (bulk transfers), else back to back at ~1 Gbit/s.
        """
        if data is not None:
            nbytes = len(data)
        count = max(1, math.ceil(nbytes / self.mss))
        step = (end - ts) / count if end is not None else 12e-6
        for i in range(count):
            last = i == count - 1
            size = nbytes - i * self.mss if last else self.mss
            t = ts + i * step
            piece = None if data is None else data[i * self.mss : i * self.mss + size]
            self.send(side, t, ACK | (PSH if last else 0), size, piece)
            if i % 2 or last:
                self.send(1 - side, t + min(step, self.rtt) * 0.5, ACK)
        return ts + count * step + self.rtt

    def close(self, ts: float) -> float:
        self.send(0, ts, FIN | ACK)
        self.send(1, ts + self.rtt, FIN | ACK)
        self.send(0, ts + self.rtt + 0.0001, ACK)
        return ts + self.rtt

    def tls_start(self, ts: float, rng: random.Random, name: str) -> float:
        """ClientHello naming ``name`` (1771 bytes: two segments), the server's flight
        (certificates), the client's Finished."""
        self.plan.said = "sni"
        hello = tls_client_hello(rng, name, rng.choice((517, 583, 1771)))
        ts = self.transfer(0, len(hello), ts, data=hello)
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
SERVED: dict[tuple[int, int] | bytes, tuple[str, ...]] = {
    (104, 16): ("api.openai.com", "production.cloudflare.docker.com"),
    (185, 199): ("objects.githubusercontent.com",),
    (3, 5): ("s3.us-east-1.amazonaws.com",),
    (52, 216): ("s3.us-east-1.amazonaws.com",),
    (34, 107): ("storage.googleapis.com", "api.wandb.ai"),
    (151, 101): ("pypi.org", "files.pythonhosted.org"),
    (13, 32): ("huggingface.co", "download.pytorch.org"),
    (140, 82): ("github.com",),
    (162, 159): ("api.anthropic.com", "developer.download.nvidia.com"),
    (54, 231): ("registry-1.docker.io",),
    (18, 160): ("cdn-lfs.huggingface.co", "cdn-lfs-us-1.hf.co"),
    (35, 186): ("o4504.ingest.sentry.io",),
    b"\x26\x06\x47\x00": ("api.openai.com", "production.cloudflare.docker.com"),
    b"\x2a\x04\x4e\x42": ("pypi.org", "files.pythonhosted.org"),
    b"\x26\x00\x1f\x18": ("cdn-lfs.huggingface.co", "huggingface.co"),
    b"\x26\x07\xf8\xb0": ("storage.googleapis.com",),
    b"\x2a\x03\x28\x80": ("download.pytorch.org",),
}
"""Names served in each remote prefix: each remote address gets one of them, which its clients
send as SNI or Host and look up in DNS."""
GEO: dict[str, tuple[str, str, int, str]] = {
    "104.16.0.0/16": ("US", "San Francisco", 13335, "CLOUDFLARENET"),
    "185.199.0.0/16": ("NL", "Amsterdam", 54113, "FASTLY"),
    "3.5.0.0/16": ("US", "Ashburn", 16509, "AMAZON-02"),
    "52.216.0.0/16": ("US", "Ashburn", 16509, "AMAZON-02"),
    "34.107.0.0/16": ("US", "Council Bluffs", 396982, "GOOGLE-CLOUD-PLATFORM"),
    "151.101.0.0/16": ("DE", "Frankfurt am Main", 54113, "FASTLY"),
    "13.32.0.0/16": ("DE", "Frankfurt am Main", 16509, "AMAZON-02"),
    "140.82.0.0/16": ("US", "Washington", 36459, "GITHUB"),
    "162.159.0.0/16": ("GB", "London", 13335, "CLOUDFLARENET"),
    "54.231.0.0/16": ("US", "Ashburn", 14618, "AMAZON-AES"),
    "18.160.0.0/16": ("IE", "Dublin", 16509, "AMAZON-02"),
    "35.186.0.0/16": ("US", "The Dalles", 396982, "GOOGLE-CLOUD-PLATFORM"),
    "1.1.1.0/24": ("AU", "Sydney", 13335, "CLOUDFLARENET"),  # the public resolver
    "2606:4700::/32": ("US", "San Francisco", 13335, "CLOUDFLARENET"),
    "2a04:4e42::/32": ("SE", "Stockholm", 54113, "FASTLY"),
    "2600:1f18::/32": ("US", "Ashburn", 14618, "AMAZON-AES"),
    "2607:f8b0::/32": ("US", "Mountain View", 15169, "GOOGLE"),
    "2a03:2880::/32": ("IE", "Dublin", 32934, "FACEBOOK"),
}
"""What the benchmark's GeoIP databases say: (country, city, AS number, AS organisation) for
every remote prefix and the public resolver."""
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
RESOLVERS4 = (bytes([10, 20, 0, 1]), bytes([1, 1, 1, 1]))
RESOLVER6 = bytes.fromhex("26064700470000000000000000001111")
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
        self.name_of: dict[bytes, str] = {}
        """Each remote address's name."""
        for i, addr in enumerate(self.remotes4):
            names = SERVED[REMOTE_V4_PREFIXES[i // 25]]
            self.name_of[addr] = names[i % 25 % len(names)]
        for i, addr in enumerate(self.remotes6):
            names = SERVED[REMOTE_V6_PREFIXES[i // 16]]
            self.name_of[addr] = names[i % 16 % len(names)]
        self.served: dict[tuple[str, int], list[bytes]] = {}
        """(name, 4 or 16) -> the remote addresses of that name and family."""
        for addr, name in self.name_of.items():
            self.served.setdefault((name, len(addr)), []).append(addr)
        self.locals4 = [bytes([10, 20, 0, 5])] + [bytes([172, 17, 0, i]) for i in range(2, 9)]
        self.locals6 = [bytes.fromhex("fd000020000000000000000000000005")] + [
            bytes.fromhex("fd00001700000000000002420011") + bytes([0, i]) for i in range(2, 5)
        ]
        self.vlan4, self.vlan6 = bytes([10, 30, 0, 7]), bytes.fromhex("fd00003000000000" + "07" * 8)
        self.used: set[tuple[bytes, int, bytes, int, int]] = set()
        self.weight = 0.0
        self.v6_weight = self.vlan_weight = 0.0

    def route(
        self, packets: float, remote: bytes | None = None, vlan: bool | None = None
    ) -> tuple[bool, bool]:
        """IPv6? 802.1Q? for a flow of about ``packets`` packets (deterministic error diffusion;
        the remote address decides the family and ``vlan`` the tag when given)."""
        self.weight += packets
        v6 = self.v6_weight + packets / 2 <= V6_SHARE * self.weight
        if remote is not None:
            v6 = len(remote) == 16
        if vlan is None:
            vlan = self.vlan_weight + packets / 2 <= VLAN_SHARE * self.weight
        self.v6_weight += packets * v6
        self.vlan_weight += packets * vlan
        return v6, vlan

    def path(
        self, v6: bool, vlan: bool, remote: bytes | None = None, local: bytes | None = None
    ) -> Leg:
        rng = self.rng
        if local is not None:
            pass
        elif vlan:
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

    def spare(self, name: str, size: int) -> bytes:
        """An address for ``name`` (4 or 16 bytes) that no flow connects to: DNS answers that
        name nothing in the capture."""
        pool = self.served.get((name, size)) or (self.remotes4 if size == 4 else self.remotes6)
        base = self.rng.choice(pool)
        while True:
            addr = base[: size // 2] + self.rng.randbytes(size // 2)
            if addr not in self.name_of and addr not in (*RESOLVERS4, RESOLVER6):
                return addr


def downloads(mix: Mix, budget: int, duration: float) -> None:
    """Model weights pulled from a CDN in parallel range requests, plus container image layers."""
    rng = mix.rng
    cdn = [rng.choice(mix.served["cdn-lfs.huggingface.co", n]) for n in (4, 16)]
    weights = [rng.uniform(0.5, 1.5) for _ in range(12)]
    for i, w in enumerate(weights):
        packets = budget * w / sum(weights)
        conn = mix.tcp(packets, 443, cdn[1] if i % 6 == 5 else cdn[0])
        ts = conn.open(rng.uniform(0, duration * 0.25))
        ts = conn.tls_start(ts, rng, mix.name_of[conn.remote])
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
        ts = conn.open(rng.uniform(0, duration * 0.9))
        ts = conn.tls_start(ts, rng, mix.name_of[conn.remote])
        ts = conn.transfer(0, size, ts, ts + size / rng.uniform(2e6, 4e7))
        conn.close(conn.transfer(1, rng.randint(200, 900), ts))


def api_calls(mix: Mix, budget: int, duration: float) -> None:
    """Short request/response connections (API calls, registry and hub metadata): HTTPS, and a
    few in plain HTTP to port 80 (with real requests and responses)."""
    rng, trace, start = mix.rng, mix.trace, len(mix.trace)
    while len(trace) - start < budget:
        http = rng.random() < HTTP_SHARE
        conn = mix.tcp(20 if http else 28, 80 if http else 443)
        name = mix.name_of[conn.remote]
        ts = conn.open(rng.uniform(0, duration))
        if http:
            conn.plan.said = "http"
        else:
            ts = conn.tls_start(ts, rng, name)
        for _ in range(rng.choice((1, 1, 1, 2, 3))):
            size = rng.randint(180, 2400)
            request = http_request(rng, name, size) if http else None
            ts = conn.transfer(0, size, ts + rng.uniform(0.0005, 0.05), data=request)
            size = int(rng.lognormvariate(8.0, 1.2)) + 60
            response = http_response(size) if http else None
            ts = conn.transfer(1, size, ts + conn.rtt, data=response)
        conn.close(ts + rng.uniform(0.001, 0.5))


def dns_lookups(mix: Mix, budget: int, duration: float) -> None:
    """glibc-style lookups: A and AAAA from one socket (or A alone) to a resolver, answered.

    Generated after the other traffic: most TCP and QUIC connections get their client's lookup of
    the server's name just before they start, over the connection's IP family, answered with the
    address they connect to and some more of that name's. The rest of the budget goes to lookups
    whose answers name nothing in the capture (addresses no flow connects to).
    """
    rng, trace, start = mix.rng, mix.trace, len(mix.trace)
    named = [p for p in trace.plans if p.said is not None]
    for plan in rng.sample(named, len(named)):
        if len(trace) - start >= budget:
            return
        seen = trace.answered.get((plan.client, plan.remote), ())
        if rng.random() < LOOKUP_SHARE and len(seen) < PASSIVE_DNS_DEPTH:
            ts = plan.start - rng.uniform(0.04, 0.25)
            _lookup(mix, mix.name_of[plan.remote], ts, plan.client, plan.remote)
    while len(trace) - start < budget:
        _lookup(mix, rng.choice(DNS_NAMES), rng.uniform(0, duration))


def _lookup(
    mix: Mix, name: str, ts: float, client: bytes | None = None, target: bytes | None = None
) -> None:
    """One lookup of ``name`` on a new socket. With a ``client``, the answers hold ``target`` (in
    its family) and more of the name's addresses; without, spare addresses."""
    rng, trace = mix.rng, mix.trace
    if client is None:
        qtypes = (1, 28) if rng.random() < 0.6 else (1,)
        v6, vlan = mix.route(2 * len(qtypes))
    else:
        v6, vlan = len(client) == 16, client in (mix.vlan4, mix.vlan6)
        qtypes = (1, 28) if v6 or rng.random() < 0.6 else (1,)
        mix.route(2 * len(qtypes), RESOLVER6 if v6 else RESOLVERS4[0], vlan)
    out = mix.path(v6, vlan, RESOLVER6 if v6 else rng.choice(RESOLVERS4), client)
    back = out.reverse(64 if out.dst[0] == 10 else 58)
    sport = mix.port(out, 53, UDP)
    trace.flows["udp"] += 1
    trace.plan(out.src, out.dst, ts)
    for qtype in qtypes:
        size = 4 if qtype == 1 else 16
        if target is None:
            addresses = [mix.spare(name, size) for _ in range(rng.randint(1, 4))]
        else:
            others = [a for a in mix.served.get((name, size), ()) if a != target]
            addresses = [target] if len(target) == size else []
            addresses += rng.sample(others, min(len(others), rng.randint(0, 3)))
            addresses = [
                a
                for a in addresses
                if len(trace.answered.get((out.src, a), ())) < PASSIVE_DNS_DEPTH
            ]
        ident = rng.getrandbits(16)
        answered = ts + rng.uniform(0.0004, 0.03)
        _udp(trace, out, sport, 53, ts, _dns(ident, name, qtype, answers=None))
        _udp(trace, back, 53, sport, answered, _dns(ident, name, qtype, answers=addresses))
        trace.dns_responses += 1
        for addr in addresses:
            trace.answered.setdefault((out.src, addr), []).append(answered)
        ts += 0.00005


def _dns(ident: int, name: str, qtype: int, answers: list[bytes] | None) -> bytes:
    """A query (``answers`` None) or its response (no answers: NOERROR without data)."""
    qname = b"".join(len(p).to_bytes(1, "big") + p.encode() for p in name.split(".")) + b"\0"
    flags, count = (0x0100, 0) if answers is None else (0x8180, len(answers))
    message = (
        struct.pack("!HHHHHH", ident, flags, 1, count, 0, 0) + qname + struct.pack("!HH", qtype, 1)
    )
    for rdata in answers or []:
        message += struct.pack("!HHHIH", 0xC00C, qtype, 1, DNS_TTL, len(rdata)) + rdata
    return message


def _udp(trace: Trace, path: Leg, sport: int, dport: int, ts: float, payload: bytes) -> None:
    """A UDP datagram with its payload and a correct checksum (required over IPv6)."""
    length = 8 + len(payload)
    pseudo = path.src + path.dst + struct.pack("!I3xB", length, UDP)
    cksum = _checksum(pseudo + _UDP.pack(sport, dport, length, 0) + payload) or 0xFFFF
    l4 = _UDP.pack(sport, dport, length, cksum) + payload
    trace.add(ts, path.ip(UDP, l4, 0, int(ts * 1e5)), 0)


def quic_flows(mix: Mix, budget: int, duration: float) -> None:
    """HTTP/3 to port 443: a real client Initial (encrypted, SNI inside), the server's Initial,
    server data in ~1250-byte datagrams, client ACKs (those three are noise after a header)."""
    rng, trace, start = mix.rng, mix.trace, len(mix.trace)
    while len(trace) - start < budget:
        datagrams = rng.randint(10, 400)
        out = mix.path(*mix.route(datagrams * 1.25))
        back = out.reverse(57)
        sport = mix.port(out, 443, UDP)
        trace.flows["udp"] += 1
        dcid, scid = rng.randbytes(8), rng.randbytes(8)
        ts, rtt = rng.uniform(0, duration * 0.95), rng.uniform(0.005, 0.08)
        trace.plan(out.src, out.dst, ts, "quic")
        _udp(trace, out, sport, 443, ts, quic_initial(rng, mix.name_of[out.dst], dcid, scid))
        # The server's Initial: a well-formed long header (its own connection ID, no token, the
        # Length field), then noise where its protected ServerHello would be.
        head = b"\xc1\x00\x00\x00\x01\x08" + scid + b"\x08" + rng.randbytes(8) + b"\x00"
        head += (0x4000 | (1200 - len(head) - 2)).to_bytes(2, "big")
        _quic(trace, back, 443, sport, ts + rtt, head, 1200)
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
        trace.plan(out.src, out.dst, ts)
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
    for kind in sorted(MIX, key=lambda k: k == "dns"):  # DNS last: it answers for the flows
        before = len(trace)
        GENERATORS[kind](mix, int(packets * MIX[kind]), duration)
        trace.kinds[kind] = len(trace) - before
    trace.kinds = Counter({kind: trace.kinds[kind] for kind in MIX})
    return trace


def expected(trace: Trace) -> Counter[str]:
    """What a correct replay makes of the generated flows: flows named by source (what the client
    said, else its DNS answer), flows with a DNS name, a JA4, a place; DNS responses."""
    networks = [ipaddress.ip_network(n) for n in GEO]
    placed: dict[bytes, bool] = {}
    out: Counter[str] = Counter()
    for plan in trace.plans:
        times = trace.answered.get((plan.client, plan.remote), ())
        dns = any(t <= plan.start <= t + DNS_TTL + DNS_GRACE for t in times)
        source = plan.said or ("dns" if dns else None)
        if source:
            out[source] += 1
        out["dns_name"] += dns
        out["ja4"] += plan.said in ("sni", "quic")
        if plan.remote not in placed:
            address = ipaddress.ip_address(plan.remote)
            placed[plan.remote] = any(address in n for n in networks)
        out["geo"] += placed[plan.remote]
    out["dns_rows"] = trace.dns_responses
    return out


def write_pcap(trace: Trace, path: Path) -> dict[str, float]:
    """Write the packets in time order as a classic pcap (Ethernet, microseconds)."""
    order = np.argsort(np.array(trace.ts), kind="stable").tolist()
    ts, heads, payload, data = trace.ts, trace.heads, trace.payload, trace.data
    shares: Counter[str] = Counter()
    with path.open("wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        chunk: list[bytes] = []
        for n, i in enumerate(order):
            head, size = heads[i], payload[i]
            usec = round((EPOCH + ts[i]) * 1e6)
            length = len(head) + size
            body = data.get(i)
            if body is None:
                at = (n * 7919) % ((1 << 20) - 2048)
                body = NOISE[at : at + size]
            chunk += (_RECORD.pack(usec // 1_000_000, usec % 1_000_000, length, length), head, body)
            shares["v6"] += head[12:14] == b"\x86\xdd" or head[16:18] == b"\x86\xdd"
            shares["vlan"] += head[12:14] == b"\x81\x00"
            if len(chunk) >= 30_000:
                f.write(b"".join(chunk))
                chunk = []
        f.write(b"".join(chunk))
    return {k: v / len(order) for k, v in shares.items()}


def write_geoip(directory: Path) -> bool:
    """A City and an ASN database (MaxMind DB format) holding ``GEO``; False if not possible."""
    try:
        from mmdb_writer import MMDBWriter
        from netaddr import IPSet
    except ImportError as exc:
        print(f"geo: cannot build the GeoIP databases ({exc})")
        return False
    directory.mkdir(parents=True, exist_ok=True)
    description = "egresswatch bench: synthetic data for the benchmark's remote addresses"
    city = MMDBWriter(6, "GeoLite2-City", ["en"], description, ipv4_compatible=True)
    asn = MMDBWriter(6, "GeoLite2-ASN", ["en"], description, ipv4_compatible=True)
    for network, (country, city_name, number, org) in GEO.items():
        place = {"country": {"iso_code": country}, "city": {"names": {"en": city_name}}}
        city.insert_network(IPSet([network]), place)
        holder = {"autonomous_system_number": number, "autonomous_system_organization": org}
        asn.insert_network(IPSet([network]), holder)
    city.to_db_file(str(directory / "bench-City.mmdb"))
    asn.to_db_file(str(directory / "bench-ASN.mmdb"))
    return True


# --- the runs -----------------------------------------------------------------------------------


@dataclass(slots=True)
class Result:
    engine: str
    packets: int
    wall: float
    cpu: float
    flows: Counter[str]
    names: Counter[str] | None = field(default=None)
    """Named and placed flows and DNS answers, keyed as ``expected()``; None: not available."""

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


def replay_cli(
    pcap: Path, out: Path, geoip: Path | None, packets: int, engine: str, flows_only: bool = False
) -> Result:
    """The real CLI in a subprocess: decode + flows + names + geo + SQLite (``flows_only``:
    decode + flows + SQLite), start-up and migrations included."""
    db = out / "bench.db"
    for stale in out.glob("bench.db*"):
        stale.unlink()
    config = out / "bench.toml"
    # Defaults only (the benchmark ignores /etc/egresswatch), except that GeoIP databases come
    # from the benchmark's directory alone, never from the box's /usr/share/GeoIP.
    paths = [str(geoip)] if geoip else []
    config.write_text(f"[geoip]\npaths = {json.dumps(paths)}\n")  # a JSON list is TOML too
    cli = Path(sys.executable).with_name("egresswatch")
    argv = [str(cli)] if cli.exists() else [sys.executable, "-m", "egresswatch"]
    argv += ["replay", str(pcap), "--config", str(config), "--db", f"sqlite:///{db}", "--quiet"]
    if flows_only:
        argv.append("--flows-only")
    elif geoip:
        argv += ["--geoip-dir", str(geoip)]
    _, wall, cpu = run_timed(argv)
    return Result(engine, packets, wall, cpu, *stored(db))


def stored(db: Path) -> tuple[Counter[str], Counter[str] | None]:
    """Flows per protocol in the database; the named and placed flows and DNS rows (None when
    the database lacks the columns or the table)."""
    if not db.exists():
        return Counter(), None
    with closing(sqlite3.connect(db)) as conn:
        try:
            flows = Counter(dict(conn.execute("SELECT protocol, count(*) FROM flows GROUP BY 1")))
        except sqlite3.Error:
            return Counter(), None
        try:
            names: Counter[str] = Counter(
                dict(
                    conn.execute(
                        "SELECT name_source, count(*) FROM flows"
                        " WHERE server_name IS NOT NULL GROUP BY 1"
                    )
                )
            )
            row = conn.execute(
                "SELECT count(dns_name), count(ja4), count(country), count(city), count(asn),"
                " count(as_org) FROM flows"
            ).fetchone()
            columns = ("dns_name", "ja4", "country", "city", "asn", "as_org")
            names.update(dict(zip(columns, row, strict=True)))
            names["dns_rows"] = conn.execute("SELECT count(*) FROM dns").fetchone()[0]
        except sqlite3.Error as exc:
            print(f"names: not in the database ({exc})")
            return flows, None
    return flows, names


class CountingSink:
    """The in-process runs' sink: counts what the pipeline writes, keeps nothing."""

    def __init__(self) -> None:
        self.flows: Counter[str] = Counter()
        """Closed flows by protocol."""
        self.names: Counter[str] = Counter()
        """Closed flows by name source, with a DNS name, JA4, place; DNS answers (dns_rows)."""

    def write_flows(self, records: Sequence[Any]) -> None:
        flows, names = self.flows, self.names
        for r in records:
            if r.closed:
                flows[r.protocol] += 1
                if r.server_name is not None:
                    names[r.name_source] += 1
                names["dns_name"] += r.dns_name is not None
                names["ja4"] += r.ja4 is not None
                names["country"] += r.country is not None
                names["city"] += r.city is not None
                names["asn"] += r.asn is not None
                names["as_org"] += r.as_org is not None

    def write_dns(self, answers: Sequence[Any]) -> None:
        self.names["dns_rows"] += len(answers)


@dataclass(slots=True)
class InProcess:
    read: Result
    plain: Result
    enriched: Result
    counters: Counter[str]
    geo: bool
    """The enriched run had GeoIP databases."""


def open_geo(directory: Path | None) -> Any:
    """A GeoResolver on ``directory``, or None (saying why) when geo is not available."""
    try:
        from egresswatch.geo.resolver import GeoResolver
    except ImportError as exc:
        print(f"geo: not available ({exc})")
        return None
    if directory is None:
        return None
    geo = GeoResolver([directory])
    if not geo.databases:
        print(f"geo: no database found in {directory}: {geo.problems() or 'none there'}")
        return None
    return geo


def replay_in_process(pcap: Path, geoip: Path | None) -> InProcess | None:
    """Reading alone, then decode + flows without a store in this process: without names and geo,
    then with both. None (saying why) when the pipeline cannot be imported."""
    try:
        from egresswatch.capture.pcapfile import PcapFile
        from egresswatch.config import Settings
        from egresswatch.pipeline import Decoder, Pipeline
    except ImportError as exc:
        print(f"in-process runs: not available ({type(exc).__name__}: {exc})")
        return None

    wall, cpu = time.perf_counter(), time.process_time()
    packets = sum(len(batch) for batch in PcapFile(pcap).batches())
    read = Result(
        "  pcap read only (in-process)",
        packets,
        time.perf_counter() - wall,
        time.process_time() - cpu,
        Counter(),
    )

    def run(engine: str, decoder: Any, geo: Any) -> tuple[Result, Any]:
        sink = CountingSink()
        pipeline = Pipeline(Settings(), sink, decoder, geo=geo, sweep_interval=10.0)
        wall, cpu = time.perf_counter(), time.process_time()
        pipeline.feed(decoder.prepare(PcapFile(pcap).batches(), lambda _: pcap.name))
        pipeline.finish()
        result = Result(
            engine,
            pipeline.packets,
            time.perf_counter() - wall,
            time.process_time() - cpu,
            sink.flows,
            sink.names,
        )
        return result, pipeline

    plain, _ = run("  decode + flows, no names, no geo (one process)", Decoder(names=False), None)
    geo = open_geo(geoip)
    label = "names + geo" if geo is not None else "names, no geo"
    enriched, pipeline = run(f"  decode + flows + {label} (one process)", Decoder(), geo)
    if geo is not None:
        geo.close()
    return InProcess(read, plain, enriched, pipeline.counters, geo is not None)


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
    header = f"{'engine':<50} {'packets':>10} {'seconds':>8} {'packets/s':>11} {'CPU s':>7}"
    print(header + "  flows found")
    print("-" * (len(header) + 13))
    for r in results:
        rate = f"{r.rate:,.0f}" if r.packets else "-"
        print(
            f"{r.engine:<50} {r.packets:>10,} {r.wall:>8.2f} {rate:>11} {r.cpu:>7.2f}"
            f"  {flows_text(r.flows)}"
        )


def verdict(ours: Result, plain: Result, tshark: Result | None, generated: Counter[str]) -> None:
    """The sanity checks on flow counts, the 5x goal (flows only) and the 20% goal (names and
    geo against flows only), both on the CLI's replay rate."""
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
    for run, what in ((plain, "flows only"), (ours, "names and geo on")):
        ratio = run.rate / tshark.rate if tshark.rate else math.inf
        cpu = tshark.cpu / run.cpu if run.cpu else math.inf
        print(
            f"egresswatch ({what}) / tshark: {ratio:.1f}x the packets/s (wall clock); tshark "
            f"used {cpu:.1f}x egresswatch's CPU time"
        )
    ratio = plain.rate / tshark.rate if tshark.rate else math.inf
    goal = "MET" if ratio >= GOAL else "NOT MET"
    print(f"goal: egresswatch replay (flows only) >= {GOAL:.0f}x tshark's packet rate: {goal}")


def replay_rate_verdict(ours: Result, plain: Result) -> None:
    """How much names and geo cut the CLI's replay rate, against the 20% goal."""
    if not (ours.rate and plain.rate):
        return
    cut = 1 - ours.rate / plain.rate
    goal = "MET" if cut <= ENRICHMENT_GOAL else "NOT MET"
    print(
        f"names + geo cut the CLI replay rate by {cut:.0%} ({ours.rate:,.0f} against "
        f"{plain.rate:,.0f} packets/s flows only)"
    )
    print(f"goal: names and geo cut the replay rate by <= {ENRICHMENT_GOAL:.0%}: {goal}")


def enrichment_verdict(runs: InProcess) -> None:
    """How much CPU names and geo add to the one-process pipeline (where the time goes)."""
    plain, enriched = runs.plain, runs.enriched
    if not (plain.cpu and plain.wall):
        return
    cpu = enriched.cpu / plain.cpu - 1
    wall = enriched.wall / plain.wall - 1
    what = "names + geo" if runs.geo else "names (no geo: not available)"
    print(
        f"{what}, one process: {cpu:+.0%} CPU time, {wall:+.0%} wall clock, "
        f"{enriched.rate:,.0f} against {plain.rate:,.0f} packets/s"
    )


NAME_ROWS = (
    ("sni", "TLS ClientHellos with SNI", "flows named 'sni'"),
    ("http", "HTTP requests with Host", "flows named 'http'"),
    ("quic", "QUIC Initials with SNI", "flows named 'quic'"),
    ("dns", "other flows after a DNS answer", "flows named 'dns'"),
    ("dns_name", "flows after their DNS answer", "flows with a dns_name"),
    ("ja4", "TLS + QUIC ClientHellos", "flows with a JA4"),
    ("dns_rows", "DNS responses", "DNS answers stored"),
    ("country", "flows to mapped addresses", "flows with a country"),
    ("city", "", "flows with a city"),
    ("asn", "", "flows with an ASN"),
    ("as_org", "", "flows with an AS organisation"),
)


def names_report(where: str, found: Counter[str] | None, wanted: Counter[str]) -> None:
    """Named and placed flows found next to what the generator made, and whether they match."""
    if found is None:
        print(f"names and geo ({where}): not available")
        return
    print(f"names and geo, generated -> found ({where}):")
    differ = []
    for key, made, seen in NAME_ROWS:
        want = wanted["geo" if key in ("country", "city", "asn", "as_org") else key]
        ok = found[key] == want
        if not ok:
            differ.append(key)
        print(
            f"  {made:<32} {want:>8,} -> {found[key]:>8,} {seen:<32}{'ok' if ok else 'DIFFERENT'}"
        )
    others = {k: v for k, v in found.items() if v and k not in {r[0] for r in NAME_ROWS}}
    if others:
        print(f"  also found: {others}")
    summary = "DIFFERENT: " + ", ".join(differ) if differ else "all match"
    print(f"names and geo ({where}): {summary}")


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
        help="directory for the capture, the GeoIP databases and the database "
        "(default: bench/out/)",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the capture, GeoIP databases and database (default: delete them at the end)",
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
    geoip: Path | None = args.out / "geoip"
    if not write_geoip(geoip):
        geoip = None
    total = len(trace)
    mix = ", ".join(f"{k} {v / total:.1%}" for k, v in trace.kinds.items())
    wanted = expected(trace)
    print(
        f"capture: {pcap} ({total:,} packets, {pcap.stat().st_size / 1e6:,.0f} MB, written in "
        f"{time.perf_counter() - started:.1f} s)"
    )
    print(f"  mix: {mix}; IPv6 {shares['v6']:.1%}, 802.1Q {shares['vlan']:.1%}")
    print(
        f"  names: {wanted['sni']:,} TLS ClientHellos with SNI, {wanted['http']:,} HTTP requests "
        f"with Host, {wanted['quic']:,} QUIC Initials with SNI, {wanted['dns_rows']:,} DNS "
        f"responses ({wanted['dns_name']:,} flows start after their client's answer for the "
        f"address); GeoIP: {geoip or 'none'}"
    )
    if len(trace.answered) > DNS_CACHE_SIZE:
        print(
            f"  note: {len(trace.answered):,} (client, address) pairs in DNS answers, more than "
            f"egresswatch's passive DNS keeps ({DNS_CACHE_SIZE:,}): DNS-named counts may differ"
        )
    del trace.heads[:], trace.payload[:], trace.ts[:]
    trace.data.clear()
    empty = args.out / "empty.pcap"
    empty.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    try:
        fixed = replay_cli(empty, args.out, geoip, 0, "  start-up + migrations (empty capture)")
        ours = replay_cli(
            pcap, args.out, geoip, total, "egresswatch replay (CLI, SQLite, names+geo)"
        )
        plain = replay_cli(
            pcap, args.out, None, total, "egresswatch replay --flows-only (CLI, SQLite)", True
        )
        runs = replay_in_process(pcap, geoip)
        theirs = theirs_fixed = None
        if not args.skip_tshark:
            theirs = replay_tshark(pcap, total, "tshark -q -z conv,tcp -z conv,udp")
            theirs_fixed = replay_tshark(empty, 0, "  start-up (empty capture)")
    finally:
        if not args.keep:
            for path in [pcap, empty, *args.out.glob("bench.db*"), args.out / "bench.toml"]:
                path.unlink(missing_ok=True)
            shutil.rmtree(args.out / "geoip", ignore_errors=True)
    print()
    in_process = [runs.read, runs.plain, runs.enriched] if runs else []
    print_table(
        [r for r in (ours, plain, fixed, *in_process, theirs, theirs_fixed) if r is not None]
    )
    if runs:
        counters = runs.counters
        skipped = {k: v for k, v in counters.items() if k.startswith("skipped_") and v}
        unnamed = {k: v for k, v in counters.items() if k.startswith("unnamed_") and v}
        print(
            f"\nin-process counters: {counters['flows_created']:,} flows created, "
            f"{counters['flows_evicted']:,} evicted, skipped {skipped or 'none'}, "
            f"payloads that did not parse {unnamed or 'none'}"
        )
    print(
        f"CLI {ours.wall:.2f} s wall, {ours.cpu:.2f} s CPU: it reads and decodes in a second "
        f"process while the first keeps the flows and the database, so the one-process parts "
        f"above add up to more than its wall time"
    )
    verdict(ours, plain, theirs, trace.flows)
    replay_rate_verdict(ours, plain)
    if runs:
        if runs.enriched.flows != ours.flows:
            print(f"note: the in-process run found {flows_text(runs.enriched.flows)}")
        enrichment_verdict(runs)
    print()
    names_report("CLI database", ours.names, wanted)
    if runs and runs.enriched.names != ours.names:
        names_report("in-process run", runs.enriched.names, wanted)
    return 0


if __name__ == "__main__":
    sys.exit(main())
