"""Run inside the test's network namespace (see test_ring.py): sends IPv4 UDP datagrams in
through a TUN device (no link header: ARPHRD_NONE) and prints, as JSON, what a PacketRing on it
decoded."""

from __future__ import annotations

import fcntl
import json
import os
import struct
import subprocess
import sys
import time

from scapy.layers.inet import IP, UDP

from egresswatch.capture.ring import PacketRing
from egresswatch.decode import decode
from egresswatch.decode.packet import PacketFacts, address_text

TUNSETIFF, IFF_TUN, IFF_NO_PI = 0x400454CA, 0x0001, 0x1000
name, local, peer = sys.argv[1], sys.argv[2], sys.argv[3]

tun = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
fcntl.ioctl(tun, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
subprocess.run(["ip", "addr", "add", f"{local}/30", "dev", name], check=True)
subprocess.run(["ip", "link", "set", name, "up"], check=True)
route = subprocess.run(["ip", "route", "get", peer], capture_output=True, text=True, check=True)
if f"dev {name}" not in route.stdout:  # the safety rule, inside the namespace too
    sys.exit(f"{peer} is not on {name}: {route.stdout}")
ring = PacketRing(name)
for size in (10, 500, 1400):
    os.write(tun, bytes(IP(src=peer, dst=local) / UDP(sport=40000, dport=9999) / (b"x" * size)))
seen = []
linktypes = set()
deadline = time.monotonic() + 1.0
while time.monotonic() < deadline:
    for batch in ring.batches():
        linktypes.add(int(batch.linktype))
        for i in range(len(batch)):
            start, cap = int(batch.start[i]), int(batch.caplen[i])
            facts = decode(batch.buf[start : start + cap], batch.linktype, int(batch.wirelen[i]))
            if isinstance(facts, PacketFacts):
                seen.append([address_text(facts.src), address_text(facts.dst), facts.proto,
                             facts.dport, facts.ip_bytes])  # fmt: skip
    time.sleep(0.05)
ring.close()
print(json.dumps({"linktypes": sorted(linktypes), "packets": seen}))
