"""Live capture benchmark: ``egresswatch run`` on a bridge, next to tcpdump, at rising packet rates.

Everything happens in two network namespaces the script creates and deletes: ``ewb-cap`` holds a
bridge ``ewb-br0`` with one port, a veth whose peer is in ``ewb-snd``. Nothing is added to the
host's namespace, no address is assigned anywhere, and the namespaces have no link out. The
replayed frames are addressed to the bridge's own MAC, so they end there.

For each rate: start ``egresswatch run -i ewb-br0`` (fresh SQLite database, no GeoIP) and
``tcpdump -i ewb-br0 -w /dev/null -n`` in ``ewb-cap``, wait until both capture, replay a synthetic
capture from ``ewb-snd`` with ``tcpreplay --pps=RATE`` for a fixed time, wait until egresswatch
has worked through what it received, then stop both with SIGTERM. Prints per rate: the rate the
sender reached, the packets each capture's kernel counters saw and dropped, egresswatch's queue
drops and packets accounted, each one's CPU as a share of one core over the replay, and the ratio.
Then the goals. Always exits 0: it is a benchmark, not a test. Needs root. See bench/README.md.

    python bench/live.py [--rates 25k,50k,100k,200k,300k] [--seconds 10] [--packets N]
                         [--out DIR] [--keep]
"""

from __future__ import annotations

import argparse
import math
import os
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from replay import GENERATORS, PPS, SEED, Mix, Trace, write_pcap

RATES = (25_000, 50_000, 100_000, 200_000, 300_000)
SECONDS = 10.0
PACKETS = 300_000
MIX = {"api": 0.68, "download": 0.12, "upload": 0.06, "quic": 0.065, "dns": 0.04, "ping": 0.035}
"""Share of the packet budget per traffic kind (bench/replay.py's generators). DNS, QUIC and ping
as in replay.py; most of its model-download share goes to short API calls instead, so frames are
small (median ~150 bytes) and TCP handshakes, FINs and TLS ClientHellos are frequent: per-packet
and per-flow costs, not bulk bytes, are what is measured."""

ZERO_DROP_RATE = 200_000
"""No packet dropped at this rate (or at the sender's limit when it cannot reach it)."""
CPU_RATE = 100_000
CPU_GOAL = 0.25
"""At CPU_RATE, egresswatch uses at most this share of one core..."""
TCPDUMP_GOAL = 6.0
"""...and less than this many times tcpdump's CPU."""
SENDER_SHORTFALL = 0.95
"""A replay that reached less than this share of the rate asked hit the sender's limit."""

CAPTURE_NS, SENDER_NS = "ewb-cap", "ewb-snd"
BRIDGE, PORT, SENDER = "ewb-br0", "ewb-c0", "ewb-s0"
# Locally administered (0x02), owned by nothing else: the frames go to the bridge and stop there.
BRIDGE_MAC, SENDER_MAC = "02:65:77:62:00:01", "02:65:77:62:00:02"
TOOLS = {"ip": "iproute2", "tcpreplay": "tcpreplay", "tcpdump": "tcpdump"}
"""Commands needed, and the Debian package of each."""

IDLE_SHARE = 0.05
"""egresswatch has caught up when it used less than this share of a core over IDLE_WINDOW."""
IDLE_WINDOW = 1.0  # seconds: covers one of its 1 s ticks, where ended flows are written
CATCH_UP_LIMIT = 120.0  # seconds to wait for it to catch up before stopping it anyway
START_TIMEOUT = 60.0
STOP_TIMEOUT = 120.0  # egresswatch writes every open flow out on SIGTERM
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent


class BenchError(Exception):
    """One rate could not be measured (a process did not start, a command failed)."""


# --- the capture to replay ----------------------------------------------------------------------


def build_pcap(packets: int, path: Path) -> None:
    """Write the synthetic capture (bench/replay.py's generators, this script's MIX) with every
    frame from SENDER_MAC to BRIDGE_MAC, and print what is in it."""
    started = time.perf_counter()
    rng = random.Random(SEED)
    trace = Trace()
    mix = Mix(rng, trace)
    duration = max(30.0, packets / PPS)  # timestamps only; tcpreplay --pps ignores them
    for kind in sorted(MIX, key=lambda k: k == "dns"):  # DNS last: it answers for the flows
        before = len(trace)
        GENERATORS[kind](mix, int(packets * MIX[kind]), duration)
        trace.kinds[kind] = len(trace) - before
    link = bytes.fromhex((BRIDGE_MAC + SENDER_MAC).replace(":", ""))
    trace.heads[:] = [link + head[12:] for head in trace.heads]  # keeps 802.1Q tags
    sizes = [len(head) + size for head, size in zip(trace.heads, trace.payload, strict=True)]
    shares = write_pcap(trace, path)
    total = len(trace)
    said = Counter(plan.said for plan in trace.plans)
    small = sorted(sizes)[total // 2]
    print(
        f"capture: {path} ({total:,} packets, {path.stat().st_size / 1e6:,.0f} MB, frames "
        f"{sum(sizes) / total:,.0f} bytes on average, median {small}; written in "
        f"{time.perf_counter() - started:.1f} s)"
    )
    print(
        "  mix: "
        + ", ".join(f"{k} {v / total:.1%}" for k, v in trace.kinds.items())
        + f"; IPv6 {shares['v6']:.1%}, 802.1Q {shares['vlan']:.1%}"
    )
    print(
        f"  flows per loop: {trace.flows['tcp']:,} TCP connections (handshake and FIN), "
        f"{trace.flows['udp']:,} UDP, {trace.flows['icmp'] + trace.flows['icmp6']:,} ICMP; "
        f"{said['sni']:,} TLS ClientHellos, {said['quic']:,} QUIC Initials, {said['http']:,} HTTP "
        f"requests, {trace.dns_responses:,} DNS responses"
    )
    print(
        "  tcpreplay loops over it: each loop repeats the same connections (new flows again "
        "after their FIN or idle timeout)"
    )


# --- namespaces and processes -------------------------------------------------------------------


def sh(*argv: str) -> str:
    """Run a command that must succeed; its stdout."""
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BenchError(f"{' '.join(argv)}: {done.stderr.strip() or done.returncode}")
    return done.stdout


def in_ns(ns: str, *argv: str) -> list[str]:
    return ["ip", "netns", "exec", ns, *argv]


def namespaces_up() -> None:
    """ewb-cap (bridge + port) and ewb-snd (the port's peer), created in place: the veth pair is
    made inside the namespaces, so no interface ever exists in the host's namespace."""
    leftover = {line.split()[0] for line in sh("ip", "netns", "list").splitlines() if line}
    for ns in (CAPTURE_NS, SENDER_NS):
        if ns in leftover:  # from an interrupted run (the names are this script's own)
            print(f"note: deleting namespace {ns} left from an earlier run")
            sh("ip", "netns", "del", ns)
        sh("ip", "netns", "add", ns)
        # No IPv6 (router solicitations and MLD reports would be captured too), no forwarding:
        # the replayed frames stop at the bridge.
        sh(
            *in_ns(ns, "sysctl", "-qw"),
            "net.ipv6.conf.all.disable_ipv6=1",
            "net.ipv6.conf.default.disable_ipv6=1",
            "net.ipv4.ip_forward=0",
        )
    cap, snd = ("ip", "-n", CAPTURE_NS), ("ip", "-n", SENDER_NS)
    sh(*cap, "link", "add", BRIDGE, "address", BRIDGE_MAC, "type", "bridge", "stp_state", "0")
    sh(*cap, "link", "add", PORT, "type", "veth", "peer", "name", SENDER, "netns", SENDER_NS)
    sh(*cap, "link", "set", PORT, "master", BRIDGE, "up")
    sh(*cap, "link", "set", BRIDGE, "up")
    sh(*snd, "link", "set", SENDER, "address", SENDER_MAC, "up")


def namespaces_down() -> None:
    """Delete both namespaces (their bridge and veths go with them); quiet if already gone."""
    for ns in (CAPTURE_NS, SENDER_NS):
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


RUNNING: list[subprocess.Popen[bytes]] = []
"""Processes started and not yet stopped: stopped on any error or Ctrl-C."""


def start(
    name: str, argv: list[str], log: Path, ready: str, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start a capture in the background (its output to ``log``); return once ``ready`` appears
    in the log. ``ip netns exec`` execs the command, so the pid is the capture's own."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # Ctrl-C reaches this script, which stops it in order
        )
    RUNNING.append(proc)
    deadline = time.monotonic() + START_TIMEOUT
    while ready not in log.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc)
            tail = log.read_text(errors="replace").strip().splitlines()[-5:]
            raise BenchError(f"{name} did not start capturing: " + " | ".join(tail))
        time.sleep(0.05)
    return proc


def stop(proc: subprocess.Popen[bytes], timeout: float = 10.0, signalled: bool = False) -> bool:
    """SIGTERM (unless ``signalled`` already), then SIGKILL after ``timeout``; whether it exited
    on SIGTERM."""
    clean = True
    if proc.poll() is None:
        if not signalled:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            clean = False
    if proc in RUNNING:
        RUNNING.remove(proc)
    return clean


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process, all its threads (/proc/PID/stat utime + stime)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()  # after "(comm)", which may hold spaces
    except FileNotFoundError:
        raise BenchError(f"process {pid} exited during the run") from None
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


# --- one rate -----------------------------------------------------------------------------------


@dataclass(slots=True)
class Row:
    rate: int
    achieved: float = 0.0
    sent: int = 0
    sent_seconds: float = 0.0
    failed: int = 0
    sender_cpu: float = 0.0
    ew_seen: int = 0
    ew_kernel_drops: int = 0
    ew_queue_drops: int = 0
    ew_accounted: int = 0
    ew_cpu: float = 0.0
    """CPU seconds from the start of the replay until egresswatch caught up."""
    ew_after: float = 0.0
    """Of which after the replay had ended (working through its queue)."""
    ew_idle: float = 0.0
    """Share of a core egresswatch used, capturing, before the replay (its tick and poll)."""
    ew_notes: list[str] = field(default_factory=list)
    td_seen: int = 0
    td_captured: int = 0
    td_drops: int = 0
    td_cpu: float = 0.0
    error: str | None = None

    @property
    def sender_limited(self) -> bool:
        return self.achieved < SENDER_SHORTFALL * self.rate

    @property
    def ew_drops(self) -> int:
        return self.ew_kernel_drops + self.ew_queue_drops

    @property
    def ew_per_packet(self) -> float:
        """egresswatch's CPU microseconds per packet it accounted: its cost whether or not it kept
        up (when it dropped, the CPU % covers only the packets it got to)."""
        return self.ew_cpu / self.ew_accounted * 1e6 if self.ew_accounted else math.nan

    def share(self, cpu: float) -> float:
        """CPU seconds as a share of one core over the replay."""
        return cpu / self.sent_seconds if self.sent_seconds else math.nan


def measure(rate: int, seconds: float, pcap: Path, packets: int, out: Path) -> Row:
    row = Row(rate)
    db = out / f"live-{rate}.db"
    for stale in out.glob(f"live-{rate}.db*"):
        stale.unlink()
    config = out / "live.toml"
    config.write_text("[geoip]\npaths = []\n")  # never a GeoIP database installed on the box
    # This checkout's package first, whatever the interpreter has installed.
    path = [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(path))
    ew_log, td_log = out / f"egresswatch-{rate}.log", out / f"tcpdump-{rate}.log"
    ew_argv = [sys.executable, "-m", "egresswatch", "run", "-i", BRIDGE]
    ew_argv += ["--db", f"sqlite:///{db}", "--config", str(config)]
    ew = start("egresswatch", in_ns(CAPTURE_NS, *ew_argv), ew_log, "capturing on", env)
    td_argv = in_ns(CAPTURE_NS, "tcpdump", "-i", BRIDGE, "-w", "/dev/null", "-n")
    td = start("tcpdump", td_argv, td_log, "listening on")
    time.sleep(1.0)  # let egresswatch's start-up (imports, first tick) finish before measuring
    idle = cpu_seconds(ew.pid)
    time.sleep(IDLE_WINDOW)
    row.ew_idle = (cpu_seconds(ew.pid) - idle) / IDLE_WINDOW

    # -K: the whole capture in memory first, so the sender does not read the file while sending.
    # -T nano: sleep between packets; the default timer spins a whole core even at 25k packets/s,
    # CPU the captures would miss on a small box. It still reaches the rates asked.
    loops = math.ceil(rate * seconds / packets) + 1
    replay = in_ns(SENDER_NS, "tcpreplay", "-K", "-T", "nano", "--no-flow-stats", f"--pps={rate}")
    replay += [f"--loop={loops}", f"--duration={math.ceil(seconds)}", "-i", SENDER, str(pcap)]
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    ew_start, td_start = cpu_seconds(ew.pid), cpu_seconds(td.pid)
    done = subprocess.run(replay, capture_output=True, text=True, check=False)
    ew_end = cpu_seconds(ew.pid)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    row.sender_cpu = (after.ru_utime - children.ru_utime) + (after.ru_stime - children.ru_stime)
    parse_tcpreplay(done.stdout + done.stderr, row)
    if done.returncode != 0 or not row.sent:
        raise BenchError(f"tcpreplay failed ({done.returncode}): {done.stderr.strip()[-500:]}")

    # What egresswatch queued during the replay is still its work: wait until it is idle again.
    # Its queue holds up to 256 ring blocks, seconds of traffic at these rates; batches still
    # queued at SIGTERM are not accounted.
    deadline, last = time.monotonic() + CATCH_UP_LIMIT, ew_end
    while True:
        time.sleep(IDLE_WINDOW)
        now = cpu_seconds(ew.pid)
        if now - last < IDLE_SHARE * IDLE_WINDOW:
            break
        last = now
        if time.monotonic() > deadline:
            row.ew_notes.append(f"still busy {CATCH_UP_LIMIT:.0f} s after the replay")
            break
    row.ew_cpu, row.ew_after = now - ew_start, now - ew_end
    row.td_cpu = cpu_seconds(td.pid) - td_start

    ew.send_signal(signal.SIGTERM)  # both at once: egresswatch's flush takes a while
    stop(td)
    if not stop(ew, STOP_TIMEOUT, signalled=True):
        row.ew_notes.append(f"killed: still running {STOP_TIMEOUT:.0f} s after SIGTERM")
    parse_egresswatch(ew_log.read_text(errors="replace"), row)
    parse_tcpdump(td_log.read_text(errors="replace"), row)
    return row


def number(pattern: str, text: str) -> int | None:
    """The last match's first group as an integer (thousands separators dropped)."""
    found = re.findall(pattern, text)
    return int(found[-1].replace(",", "")) if found else None


def parse_tcpreplay(text: str, row: Row) -> None:
    """``Actual: N packets (B bytes) sent in S seconds``, ``Rated: ..., P pps``, failures."""
    sent = re.search(r"Actual: (\d+) packets \(\d+ bytes\) sent in ([\d.]+) seconds", text)
    rated = re.search(r"Rated: .*?([\d.]+) pps", text)
    if sent:
        row.sent, row.sent_seconds = int(sent.group(1)), float(sent.group(2))
    if rated:
        row.achieved = float(rated.group(1))
    row.failed = number(r"Failed packets:\s+(\d+)", text) or 0


def parse_egresswatch(log: str, row: Row) -> None:
    """The ``stopped:`` status line (egresswatch/daemon.py ``Daemon._status``)."""
    line = next((s for s in reversed(log.splitlines()) if "stopped: " in s), None)
    if line is None:
        row.ew_notes.append("no 'stopped:' line in its log")
        return
    row.ew_accounted = number(r"stopped: ([\d,]+) packets", line) or 0
    kernel = re.search(rf"{BRIDGE}: kernel ([\d,]+) packets, ([\d,]+) dropped", line)
    if kernel:
        row.ew_seen = int(kernel.group(1).replace(",", ""))
        row.ew_kernel_drops = int(kernel.group(2).replace(",", ""))
    row.ew_queue_drops = number(r"queue full, dropped ([\d,]+) packets", line) or 0
    behind = re.search(r"database behind, dropped (\{[^}]*\})", line)
    if behind:
        row.ew_notes.append(f"database behind, dropped {behind.group(1)}")
    skipped = number(r"([\d,]+) packets not decoded", line)
    if skipped:
        row.ew_notes.append(f"{skipped:,} packets not decoded")
    lost = row.ew_seen - row.ew_drops - row.ew_accounted
    if lost:
        row.ew_notes.append(f"{lost:,} packets queued by the kernel neither accounted nor dropped")


def parse_tcpdump(log: str, row: Row) -> None:
    """tcpdump's exit lines: captured, received by filter (the kernel's count, drops included, as
    egresswatch's), dropped by kernel."""
    row.td_captured = number(r"(\d+) packets? captured", log) or 0
    row.td_seen = number(r"(\d+) packets? received by filter", log) or 0
    row.td_drops = number(r"(\d+) packets? dropped by kernel", log) or 0


# --- output -------------------------------------------------------------------------------------


def print_table(rows: list[Row]) -> None:
    top = (
        f"{'':>8} {'sender':^21} | {'egresswatch run':^67} | "
        f"{'tcpdump -w /dev/null':^31} | {'CPU':>5}"
    )
    head = (
        f"{'asked':>8} {'achieved':>10} {'sender':>10} | {'seen':>10} {'k.drops':>8} "
        f"{'q.drops':>9} {'accounted':>10} {'CPU %':>6} {'behind':>7} {'us/pkt':>6} | {'seen':>10} "
        f"{'drops':>9} {'CPU %':>6} | {'ratio':>5}"
    )
    print(top)
    print(head)
    print("-" * len(head))
    for r in rows:
        if r.error is not None and not r.sent:
            print(f"{r.rate:>8,} not measured: {r.error}")
            continue
        ratio = r.ew_cpu / r.td_cpu if r.td_cpu else math.inf
        limit = "*" if r.sender_limited else " "
        print(
            f"{r.rate:>8,} {r.achieved:>9,.0f}{limit} {r.share(r.sender_cpu):>9.0%} | "
            f"{r.ew_seen:>10,} {r.ew_kernel_drops:>8,} {r.ew_queue_drops:>9,} "
            f"{r.ew_accounted:>10,} {r.share(r.ew_cpu):>6.0%} {r.ew_after:>6.1f}s "
            f"{r.ew_per_packet:>6.1f} | "
            f"{r.td_seen:>10,} {r.td_drops:>9,} {r.share(r.td_cpu):>6.0%} | {ratio:>4.1f}x"
        )
    legend = (
        "asked/achieved: packets/s (tcpreplay's own figure; * = the sender's limit: under "
        f"{SENDER_SHORTFALL:.0%} of the rate asked)",
        "sender: tcpreplay's CPU (loading the capture included); it also pays the kernel's work: "
        "the bridge and the copies into both rings",
        "seen: packets the kernel queued to the capture's ring (drops included); k.drops: ring "
        "full; q.drops: egresswatch's queue full; accounted: packets egresswatch counted",
        "CPU %: user + system CPU from the start of the replay until egresswatch had worked "
        "through it, over the replay's duration, in % of one core (start-up and the SIGTERM "
        "flush excluded)",
        "behind: CPU seconds of that spent after the replay ended (up to a second of it idle); "
        "us/pkt: egresswatch's CPU microseconds per packet accounted",
        "ratio: egresswatch's CPU / tcpdump's",
    )
    print("\n".join(legend))
    idle = [r.ew_idle for r in rows if r.sent]
    if idle:
        print(
            f"egresswatch idle (capturing, before each replay): {min(idle):.1%} to "
            f"{max(idle):.1%} of a core"
        )
    for r in rows:
        notes = list(r.ew_notes)
        if r.failed:
            notes.append(f"tcpreplay: {r.failed:,} packets failed to send")
        unseen = r.sent - r.ew_seen
        if unseen:
            notes.append(f"{unseen:,} packets sent but not queued to egresswatch's ring")
        if r.td_seen != r.ew_seen:
            notes.append(f"tcpdump saw {r.td_seen - r.ew_seen:+,} packets")
        if r.error is not None:
            notes.append(f"error: {r.error}")
        if notes:
            print(f"  {r.rate:,}: " + "; ".join(notes))


def verdicts(rows: list[Row]) -> None:
    measured = [r for r in rows if r.sent]
    top = [r for r in measured if r.rate >= ZERO_DROP_RATE]
    print()
    if not top:
        print(f"goal: 0 drops at {ZERO_DROP_RATE:,} packets/s: not measured (no such rate)")
    else:
        at = next((r for r in top if r.rate == ZERO_DROP_RATE and not r.sender_limited), None)
        where = f"{ZERO_DROP_RATE:,} packets/s ({at.achieved:,.0f} reached)" if at else ""
        if at is None:  # the sender fell short: judge at the most it reached
            at = max(top, key=lambda r: r.achieved)
            if at.sender_limited:
                where = f"the sender's limit, {at.achieved:,.0f} packets/s ({at.rate:,} asked)"
        verdict = "MET" if at.ew_drops == 0 else "NOT MET"
        print(
            f"goal: 0 drops at {where}: {verdict}   ({at.ew_kernel_drops:,} kernel + "
            f"{at.ew_queue_drops:,} queue drops of {at.ew_seen:,} packets; tcpdump dropped "
            f"{at.td_drops:,})"
        )
    at = next((r for r in measured if r.rate == CPU_RATE), None)
    if at is None:
        print(f"goals at {CPU_RATE:,} packets/s: not measured (no such rate)")
        return
    short = " (the sender's limit)" if at.sender_limited else ""
    share = at.share(at.ew_cpu)
    verdict = "MET" if share <= CPU_GOAL else "NOT MET"
    print(
        f"goal: <= {CPU_GOAL:.0%} of one core at {CPU_RATE:,} packets/s: {verdict}   "
        f"({share:.0%} at {at.achieved:,.0f} packets/s{short}; {at.ew_per_packet:.1f} us per "
        f"packet, where {CPU_GOAL:.0%} of a core is {CPU_GOAL / CPU_RATE * 1e6:.1f} us)"
    )
    ratio = at.ew_cpu / at.td_cpu if at.td_cpu else math.inf
    verdict = "MET" if ratio < TCPDUMP_GOAL else "NOT MET"
    print(
        f"goal: < {TCPDUMP_GOAL:.0f}x tcpdump's CPU at {CPU_RATE:,} packets/s: {verdict}   "
        f"({ratio:.1f}x: {at.ew_cpu:.2f} s against {at.td_cpu:.2f} s)"
    )


# --- main ---------------------------------------------------------------------------------------


def rate(text: str) -> int:
    """``25000`` or ``25k``."""
    text = text.strip().lower()
    return int(float(text[:-1]) * 1000) if text.endswith("k") else int(text)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rates",
        type=lambda s: [rate(r) for r in s.split(",") if r.strip()],
        default=list(RATES),
        help="packets/s to replay at, comma-separated, e.g. 25k,50k,100k,200k,300k (the default)",
    )
    parser.add_argument(
        "--seconds", type=float, default=SECONDS, help="replay time per rate (default: 10)"
    )
    parser.add_argument(
        "--packets",
        type=int,
        default=PACKETS,
        help="packets in the synthetic capture, looped over (default: 300,000)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=BENCH_DIR / "out" / "live",
        help="directory for the capture, databases and logs (default: bench/out/live/)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the capture and the databases (logs are kept)"
    )
    return parser.parse_args()


def interrupted(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)  # so the namespaces are cleaned up


def main() -> int:
    args = parse_args()
    if os.geteuid() != 0:
        print("live.py needs root: it creates network namespaces and captures on AF_PACKET")
        return 0
    missing = [
        f"{cmd} (Debian: apt-get install {pkg})"
        for cmd, pkg in TOOLS.items()
        if shutil.which(cmd) is None
    ]
    if missing:
        print("missing: " + ", ".join(missing))
        return 0
    signal.signal(signal.SIGTERM, interrupted)
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    pcap = out / "live.pcap"
    rows: list[Row] = []
    try:
        build_pcap(args.packets, pcap)
        namespaces_up()
        print(
            f"namespaces: {CAPTURE_NS} (bridge {BRIDGE} {BRIDGE_MAC}, port {PORT}), {SENDER_NS} "
            f"({SENDER} {SENDER_MAC}); {args.seconds:g} s per rate; {os.cpu_count()} CPUs, load "
            f"average {os.getloadavg()[0]:.2f} (other work running skews the CPU figures)"
        )
        for pps in args.rates:
            print(f"replaying at {pps:,} packets/s ...", flush=True)
            try:
                rows.append(measure(pps, args.seconds, pcap, args.packets, out))
            except BenchError as exc:
                rows.append(Row(pps, error=str(exc)))
            finally:
                for proc in list(RUNNING):
                    stop(proc)
    except KeyboardInterrupt:
        print("interrupted: cleaning up")
    except BenchError as exc:
        print(f"error: {exc}")
    finally:
        for proc in list(RUNNING):
            stop(proc)
        namespaces_down()
        if not args.keep:
            for path in [pcap, out / "live.toml", *out.glob("live-*.db*")]:
                path.unlink(missing_ok=True)
    if rows:
        print()
        print_table(rows)
        verdicts(rows)
        print(f"load average at the end: {os.getloadavg()[0]:.2f}")
        print(f"logs: {out}/egresswatch-RATE.log, tcpdump-RATE.log")
    return 0


if __name__ == "__main__":
    sys.exit(main())
