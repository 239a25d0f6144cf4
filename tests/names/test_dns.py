"""DNS message parsing: real captures against Zeek, Suricata and tshark; crafted malformations;
any bytes in, a message or a reason out.

The peer tests read the pcaps with scapy (IPv6 fragments reassembled with defragment6, Teredo
unwrapped by hand), feed UDP payloads to `parse_message` and TCP streams, segment by segment in
sequence order, to `DnsTcpStream`.
"""

from __future__ import annotations

import ipaddress
import json
import shutil
import struct
import subprocess
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment, defragment6
from scapy.layers.l2 import Loopback
from scapy.packet import Packet
from scapy.utils import rdpcap

from egresswatch.names.dns import (
    REASONS,
    DnsMessage,
    DnsRecord,
    DnsTcpStream,
    name_text,
    parse_message,
    rcode_name,
    type_name,
)
from tests.conftest import SHARED

INDEX = SHARED / "peers" / "index.json"
CASES: dict[str, dict[str, Any]] = (
    {c["id"]: c for c in json.loads(INDEX.read_text())["cases"]} if INDEX.exists() else {}
)
DNS_CASES = [
    "zeek/wikipedia",
    "zeek/dns-two-responses",
    "zeek/dns53-flip",
    "zeek/ipv6-fragmented-dns",
    "zeek/dns-tkey-tcp",
    "suricata-verify/dns-bug-856-cname-a-aaaa",
    "suricata-verify/dns-dig-cname",
    "suricata-verify/dns-tcp-multi-query",
    "suricata-verify/decode-teredo-01",
]
ZEEK_DNS_CASES = [c for c in DNS_CASES if c.startswith("zeek/")]
DNS_PORTS = {53, 5353, 5355}  # DNS, mDNS, LLMNR: the ports tshark dissects as DNS too
A, CNAME, AAAA, MX, TXT, RRSIG = 1, 5, 28, 15, 16, 46


# --- Reading the captures (scapy) ------------------------------------------------------------


class Segment(NamedTuple):
    """One TCP or UDP payload as captured, after IPv6 reassembly and Teredo unwrapping."""

    proto: str
    src: str
    sport: int
    dst: str
    dport: int
    flags: int
    seq: int
    data: bytes


def transport_segments(pcap: Path) -> list[Segment]:
    """Every TCP/UDP payload in the capture, in capture order, tunnels unwrapped."""
    out: list[Segment] = []
    fragments: dict[tuple[str, str, int], list[Packet]] = defaultdict(list)
    for frame in rdpcap(str(pcap)):
        pkt = frame
        if isinstance(frame, Loopback) and not isinstance(frame.payload, IP | IPv6):
            # BSD loopback writes the capturing OS's AF_INET6 (24, 28 or 30); scapy knows 24 only
            pkt = IPv6(frame.payload.original)
        if IPv6ExtHdrFragment in pkt:
            ip6 = pkt[IPv6]
            group = fragments[(ip6.src, ip6.dst, pkt[IPv6ExtHdrFragment].id)]
            group.append(pkt)
            if _complete(group):
                _collect(defragment6(group), out)
        else:
            _collect(pkt, out)
    return out


def _complete(group: list[Packet]) -> bool:
    covered = 0
    for frag in sorted(group, key=lambda p: p[IPv6ExtHdrFragment].offset):
        header = frag[IPv6ExtHdrFragment]
        if header.offset * 8 != covered:
            return False
        covered += len(header.payload.original)
        if not header.m:
            return True
    return False


def _collect(pkt: Packet, out: list[Segment]) -> None:
    for cls in (TCP, UDP):
        layer = pkt.getlayer(cls)
        if layer is not None and type(layer) is cls:  # not ICMP's quoted UDPerror/TCPerror
            break
    else:
        return
    ip = layer.underlayer
    while not isinstance(ip, IP | IPv6):
        ip = ip.underlayer
    data = bytes(getattr(layer.payload, "original", None) or b"")
    if cls is TCP:
        flags, seq = int(layer.flags), layer.seq
        out.append(Segment("tcp", ip.src, layer.sport, ip.dst, layer.dport, flags, seq, data))
        return
    out.append(Segment("udp", ip.src, layer.sport, ip.dst, layer.dport, 0, 0, data))
    inner = _teredo_inner(data)
    if inner is not None:
        _collect(inner, out)


def _teredo_inner(data: bytes) -> Packet | None:
    """The IPv6 packet a Teredo datagram carries (RFC 4380 §5.1.1), or None."""
    p = 0
    if data[:2] == b"\x00\x01" and len(data) >= 4:  # authentication header
        p = 13 + data[2] + data[3]
    if data[p : p + 2] == b"\x00\x00":  # origin indication
        p += 8
    inner = data[p:]
    if len(inner) >= 40 and inner[0] >> 4 == 6 and 40 + (inner[4] << 8 | inner[5]) == len(inner):
        return IPv6(inner)
    return None


def ordered_payloads(segments: Iterable[Segment]) -> list[bytes]:
    """One direction's TCP payloads in sequence order, retransmitted bytes dropped, up to a gap."""
    segs = list(segments)
    syn = next((s for s in segs if s.flags & 0x02), None)
    data = [s for s in segs if s.data]
    if not data:
        return []
    start = (syn.seq + 1) & 0xFFFFFFFF if syn else min(s.seq for s in data)
    out: list[bytes] = []
    next_seq = start
    for s in sorted(data, key=lambda s: (s.seq - start) & 0xFFFFFFFF):
        ahead = (s.seq - next_seq) & 0xFFFFFFFF
        payload = s.data
        if ahead >= 0x80000000:
            payload = payload[(next_seq - s.seq) & 0xFFFFFFFF :]
        elif ahead:
            break
        if payload:
            out.append(payload)
            next_seq = (next_seq + len(payload)) & 0xFFFFFFFF
    return out


def tcp_directions(segments: Iterable[Segment]) -> dict[tuple[str, int, str, int], list[Segment]]:
    flows: dict[tuple[str, int, str, int], list[Segment]] = defaultdict(list)
    for s in segments:
        if s.proto == "tcp":
            flows[(s.src, s.sport, s.dst, s.dport)].append(s)
    return flows


def dns_messages(pcap: Path) -> list[DnsMessage | str]:
    """Every DNS message in a capture: UDP on the DNS ports, and TCP port 53 streams."""
    segments = transport_segments(pcap)
    out: list[DnsMessage | str] = [
        parse_message(s.data)
        for s in segments
        if s.proto == "udp" and s.data and DNS_PORTS & {s.sport, s.dport}
    ]
    for (_, sport, _, dport), segs in tcp_directions(segments).items():
        if 53 in (sport, dport):
            stream = DnsTcpStream()
            for payload in ordered_payloads(segs):
                out.extend(stream.feed(payload))
    return out


def responses(pcap: Path) -> list[DnsMessage]:
    parsed = dns_messages(pcap)
    assert not [m for m in parsed if isinstance(m, str)], "a real capture's DNS failed to parse"
    return [m for m in parsed if isinstance(m, DnsMessage) and m.response]


def addresses(message: DnsMessage) -> list[str]:
    return [r.value for r in message.answers if r.rtype != CNAME]


# --- Peer captures ---------------------------------------------------------------------------


@pytest.mark.parametrize("case_id", DNS_CASES)
def test_peer_query_names_resolve_to_the_addresses_zeek_and_suricata_list(
    peers: Path, case_id: str
) -> None:
    case = CASES[case_id]
    answered = responses(peers / case["pcap"])
    expected: dict[str, list[str]] = case["expected"]["dns_name_to_ips"]
    for name, ips in expected.items():
        got = [{a for a, _ in m.resolved()} for m in answered if m.query == name]
        assert set(ips) in got, (name, got)
    if not expected:  # the TXT and TKEY cases: nothing resolves (glue A records do not count)
        assert all(m.resolved() == [] for m in answered)


@pytest.mark.parametrize("case_id", ["zeek/ipv6-fragmented-dns", "zeek/dns-tkey-tcp"])
def test_rows_zeek_logs_for_the_cases_without_addresses(peers: Path, case_id: str) -> None:
    """Zeek logs one row per query/response pair plus one per unpaired message."""
    case = CASES[case_id]
    parsed = [m for m in dns_messages(peers / case["pcap"]) if isinstance(m, DnsMessage)]
    queries = Counter((m.id, m.query) for m in parsed if not m.response)
    answers = Counter((m.id, m.query) for m in parsed if m.response)
    rows = sum(max(queries[k], answers[k]) for k in queries.keys() | answers.keys())
    assert rows == case["expected"]["dns_count"]


@pytest.mark.parametrize("case_id", ZEEK_DNS_CASES)
def test_every_zeek_response_row_matches_a_parsed_response(peers: Path, case_id: str) -> None:
    """Same id, query, rcode; Zeek's address answers are ours, in order; our CNAME targets
    appear in Zeek's answers in the same order (Zeek also lists SRV, TXT, RRSIG ...)."""
    case = CASES[case_id]
    answered = responses(peers / case["pcap"])
    for row in case["expected"]["dns"]:
        if row["rcode"] is None:
            continue  # a query Zeek saw no answer to
        zeek_answers = [a.lower() for a in row["answers"]]
        zeek_addresses = [a for a in zeek_answers if _is_address(a)]
        matches = [
            m
            for m in answered
            if m.id == row["trans_id"]
            and rcode_name(m.rcode) == row["rcode"]
            and m.query in (row["query"], "")  # "": mDNS answer without a question
            and addresses(m) == zeek_addresses
            and _in_order([r.value for r in m.answers], zeek_answers)
        ]
        assert matches, row


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _in_order(ours: list[str], theirs: list[str]) -> bool:
    rest = iter(theirs)
    return all(any(x == y for y in rest) for x in ours)


@pytest.mark.tshark
@pytest.mark.parametrize("case_id", DNS_CASES)
def test_tshark_reads_the_same_responses(peers: Path, case_id: str) -> None:
    """tshark's query name, answer-section addresses and CNAMEs, and rcode per response.

    tshark's dns.a/dns.aaaa/dns.cname also hold authority and additional records (NS glue), so
    its values are cut to the answer section: the first ANCOUNT entries of dns.resp.type say how
    many of each type the answer section holds, and those come first.
    """
    pcap = peers / CASES[case_id]["pcap"]
    ours = Counter(
        (
            m.query,
            tuple(sorted(addresses(m))),
            tuple(sorted(r.value for r in m.answers if r.rtype == CNAME)),
            m.rcode,
        )
        for m in responses(pcap)
    )
    assert ours == tshark_responses(pcap)
    assert sum(ours.values()) > 0


def tshark_responses(pcap: Path) -> Counter[tuple[str, tuple[str, ...], tuple[str, ...], int]]:
    fields = "dns.qry.name dns.a dns.aaaa dns.cname dns.flags.rcode dns.count.answers dns.resp.type"
    rows = run_tshark(pcap, "dns.flags.response==1", fields.split())
    seen: Counter[tuple[str, tuple[str, ...], tuple[str, ...], int]] = Counter()
    for qname, a, aaaa, cname, rcode, ancount, rtypes in rows:
        kinds = [int(t) for t in _values(rtypes)][: int(ancount)]
        query = _values(qname)[0].lower() if qname else ""
        found = _values(a)[: kinds.count(A)] + _values(aaaa)[: kinds.count(AAAA)]
        cnames = [c.lower() for c in _values(cname)[: kinds.count(CNAME)]]
        key = ("" if query == "<root>" else query, tuple(sorted(found)), tuple(sorted(cnames)))
        seen[(*key, int(rcode))] += 1
    return seen


def _values(field: str) -> list[str]:
    return field.split(",") if field else []


def run_tshark(pcap: Path, display_filter: str, fields: list[str]) -> list[list[str]]:
    """tshark's fields per matching frame (Teredo heuristics on: tunnelled traffic counts)."""
    if shutil.which("tshark") is None:
        pytest.fail("tshark is not installed (tests/run.sh installs it)")
    command = ["tshark", "-n", "-o", "tcp.desegment_tcp_streams:TRUE"]
    command += ["--enable-heuristic", "teredo_udp", "-r", str(pcap), "-Y", display_filter]
    command += ["-T", "fields", *(arg for f in fields for arg in ("-e", f))]
    result = subprocess.run(command, capture_output=True, text=True, check=True, timeout=120)
    return [line.split("\t") for line in result.stdout.splitlines()]


# --- Crafted messages ------------------------------------------------------------------------


def wire(name: str) -> bytes:
    """A name in wire form, uncompressed."""
    labels = [label.encode() for label in name.split(".") if label]
    return b"".join(bytes([len(label)]) + label for label in labels) + b"\x00"


def rr(owner: bytes, rtype: int, rdata: bytes, ttl: int = 300, rclass: int = 1) -> bytes:
    return owner + struct.pack("!HHIH", rtype, rclass, ttl, len(rdata)) + rdata


def message(
    query: str = "example.com",
    records: Iterable[bytes] = (),
    *,
    qtype: int = A,
    flags: int = 0x8180,
    ancount: int | None = None,
    ident: int = 0x1234,
) -> bytes:
    """A response (header, one question at offset 12, answer records); ancount may lie."""
    body = list(records)
    count = len(body) if ancount is None else ancount
    header = struct.pack("!6H", ident, flags, 1, count, 0, 0)
    return header + wire(query) + struct.pack("!HH", qtype, 1) + b"".join(body)


AT_QUESTION = b"\xc0\x0c"  # a pointer to the question's name


def ip4(text: str) -> bytes:
    return bytes(int(x) for x in text.split("."))


def parsed(data: bytes) -> DnsMessage:
    result = parse_message(data)
    assert isinstance(result, DnsMessage), result
    return result


def test_a_response_gives_header_question_and_answer() -> None:
    m = parsed(message("Example.COM.", [rr(AT_QUESTION, A, ip4("192.0.2.1"), ttl=60)]))
    assert (m.id, m.response, m.rcode, m.query, m.qtype) == (0x1234, True, 0, "example.com", A)
    assert m.answers == (DnsRecord("example.com", A, 60, "192.0.2.1"),)
    assert m.resolved() == [("192.0.2.1", 60)]


def test_a_query_without_answers() -> None:
    m = parsed(message("example.com", qtype=AAAA, flags=0x0100))
    assert (m.response, m.query, m.qtype, m.answers) == (False, "example.com", AAAA, ())


def test_rcode_and_a_message_without_question() -> None:
    m = parsed(struct.pack("!6H", 7, 0x8183, 0, 0, 0, 0))
    assert (m.rcode, m.query, m.qtype, m.resolved()) == (3, "", 0, [])
    assert rcode_name(m.rcode) == "NXDOMAIN"


def test_root_name_is_empty_text() -> None:
    m = parsed(message(".", qtype=2))
    assert m.query == ""


def test_aaaa_is_rfc5952_text() -> None:
    addr = bytes.fromhex("20010db8000000000000000000000068")
    m = parsed(message("v6.example", [rr(AT_QUESTION, AAAA, addr)], qtype=AAAA))
    assert m.answers[0].value == "2001:db8::68"


def test_compressed_cname_target_follows_pointers() -> None:
    # owner: pointer to the question; target "www" + pointer to "example.com" (offset 12)
    target = b"\x03www" + AT_QUESTION
    m = parsed(message("example.com", [rr(AT_QUESTION, CNAME, target)]))
    assert m.answers[0] == DnsRecord("example.com", CNAME, 300, "www.example.com")


def test_a_pointer_to_a_pointer_is_followed() -> None:
    first = rr(AT_QUESTION, CNAME, b"\x03cdn" + AT_QUESTION)
    owner_of_first = len(message("example.com"))  # the first record's owner: a pointer itself
    second = rr(bytes([0xC0, owner_of_first]), A, ip4("192.0.2.9"))
    m = parsed(message("example.com", [first, second]))
    assert m.answers[1].name == "example.com"


def test_self_pointing_pointer_is_a_loop() -> None:
    data = struct.pack("!6H", 1, 0x8180, 1, 0, 0, 0) + b"\xc0\x0c" + b"\x00\x01\x00\x01"
    assert parse_message(data) == "dns_pointer_loop"


def test_two_pointer_cycle_is_a_loop() -> None:
    # the question at 12 points to 16; offset 16 points back to 12
    data = struct.pack("!6H", 1, 0x8180, 1, 0, 0, 0) + b"\xc0\x10\x00\x01" + b"\xc0\x0c\x00\x01"
    assert parse_message(data) == "dns_pointer_loop"


def test_cycle_through_labels_is_a_loop() -> None:
    # "a" at 12, then a pointer back to 12: a.a.a.a... forever
    data = struct.pack("!6H", 1, 0x8180, 1, 0, 0, 0) + b"\x01a\xc0\x0c" + b"\x00\x01\x00\x01"
    assert parse_message(data) == "dns_pointer_loop"


def test_long_pointer_chain_is_cut_off() -> None:
    # the question is a chain of 200 pointers, each to the one after it, ending at a root name
    base = 12
    chain = b"".join(struct.pack("!H", 0xC000 | (base + 2 * (i + 1))) for i in range(200))
    data = struct.pack("!6H", 1, 0x8180, 1, 0, 0, 0) + chain + b"\x00" + b"\x00\x01\x00\x01"
    assert parse_message(data) == "dns_pointer_loop"


def test_forward_pointer_inside_the_message_is_followed() -> None:
    # the question's name points forward to a name stored after the question
    tail = b"\x07example\x03com\x00"
    data = struct.pack("!6H", 1, 0x8180, 1, 0, 0, 0) + b"\xc0\x12" + b"\x00\x01\x00\x01" + tail
    assert parsed(data).query == "example.com"


@pytest.mark.parametrize("pointer", [b"\xc0\xff", b"\xff\xff", b"\xc0\x2d"])
def test_pointer_past_the_end_is_out_of_range(pointer: bytes) -> None:
    m = message("example.com", [rr(AT_QUESTION, CNAME, b"\x01x" + pointer)])
    assert len(m) == 0x2D  # so 0xc02d points just past the last byte
    assert parse_message(m) == "dns_pointer_out_of_range"


@pytest.mark.parametrize("length", [0x40, 0x7F, 0x80, 0xBF])
def test_reserved_label_types_are_bad_labels(length: int) -> None:
    data = struct.pack("!6H", 1, 0x8180, 1, 0, 0, 0) + bytes([length]) + b"x" * 200
    assert parse_message(data) == "dns_bad_label"


def test_a_63_octet_label_is_fine() -> None:
    assert parsed(message("a" * 63 + ".com")).query == "a" * 63 + ".com"


def test_name_over_255_octets_is_too_long() -> None:
    fits = ".".join(["a" * 63] * 3 + ["b" * 61])  # 4 * 64 - 2 + 1 = 255 octets on the wire
    assert len(wire(fits)) == 255
    assert parsed(message(fits)).query == fits
    too_long = fits + "c"
    assert parse_message(message(too_long)) == "dns_name_too_long"


def test_name_too_long_through_compression() -> None:
    # the answer's owner prefixes 200 octets of labels to the question's 200-octet name
    long_name = ".".join(["q" * 49] * 4)
    owner = wire(".".join(["o" * 49] * 2))[:-1] + AT_QUESTION
    data = message(long_name, [rr(owner, A, ip4("192.0.2.1"))])
    assert parse_message(data) == "dns_name_too_long"


def test_absurd_counts_fail_before_reading_records() -> None:
    data = message("example.com", [rr(AT_QUESTION, A, ip4("192.0.2.1"))], ancount=0xFFFF)
    assert parse_message(data) == "dns_truncated"
    qd = struct.pack("!6H", 1, 0x8180, 0xFFFF, 0, 0, 0) + wire("example.com") + b"\0\1\0\1"
    assert parse_message(qd) == "dns_truncated"


def test_every_truncation_of_a_response_is_a_reason() -> None:
    full = message("example.com", [rr(AT_QUESTION, CNAME, b"\x01w" + AT_QUESTION)])
    full += rr(AT_QUESTION, A, ip4("192.0.2.1"))
    full = full[:6] + struct.pack("!H", 2) + full[8:]
    assert len(parsed(full).answers) == 2
    for cut in range(len(full)):
        assert parse_message(full[:cut]) == "dns_truncated", cut


def test_trailing_sections_are_not_read() -> None:
    """Authority and additional records (glue) are not answers, however broken."""
    data = message("example.com", [rr(AT_QUESTION, A, ip4("192.0.2.1"))]) + b"\xc0\xff garbage"
    assert parsed(data).resolved() == [("192.0.2.1", 300)]


@pytest.mark.parametrize(("rtype", "rdata"), [(A, b"\x01\x02\x03"), (AAAA, b"\x00" * 4)])
def test_address_of_the_wrong_size_is_malformed(rtype: int, rdata: bytes) -> None:
    assert parse_message(message("x.example", [rr(AT_QUESTION, rtype, rdata)])) == "dns_malformed"


def test_cname_target_overrunning_its_rdata_is_malformed() -> None:
    record = AT_QUESTION + struct.pack("!HHIH", CNAME, 1, 60, 2) + b"\x03www\x00"
    assert parse_message(message("example.com", [record])) == "dns_malformed"


def test_other_types_and_classes_are_skipped() -> None:
    records = [
        rr(AT_QUESTION, MX, b"\x00\x0a" + AT_QUESTION),
        rr(AT_QUESTION, RRSIG, b"\xff" * 30),
        rr(AT_QUESTION, A, ip4("192.0.2.66"), rclass=3),  # CHAOS
        rr(AT_QUESTION, TXT, b"\x05hello"),
        rr(AT_QUESTION, A, ip4("192.0.2.1")),
    ]
    m = parsed(message("example.com", records))
    assert [r.value for r in m.answers] == ["192.0.2.1"]


def test_mdns_cache_flush_class_counts_as_in() -> None:
    m = parsed(message("printer.local", [rr(AT_QUESTION, A, ip4("10.0.0.7"), rclass=0x8001)]))
    assert m.resolved() == [("10.0.0.7", 300)]


def test_ttl_with_the_top_bit_set_is_zero() -> None:
    m = parsed(message("example.com", [rr(AT_QUESTION, A, ip4("192.0.2.1"), ttl=0x80000000)]))
    assert m.answers[0].ttl == 0


def test_odd_bytes_in_names_are_escaped_like_dig() -> None:
    labels = [b"caf\xc3\xa9", b"a.b", b"back\\slash", b"sp ace", b"TAB\t"]
    assert name_text(labels) == r"caf\195\169.a\.b.back\\slash.sp\032ace.tab\009"
    raw = b"".join(bytes([len(label)]) + label for label in labels) + b"\x00"
    data = struct.pack("!6H", 1, 0x8180, 1, 0, 0, 0) + raw + b"\x00\x01\x00\x01"
    assert parsed(data).query == name_text(labels)
    assert parsed(data).query.isprintable()


def test_type_and_rcode_names() -> None:
    assert [type_name(t) for t in (1, 28, 5, 15, 16, 65, 249, 4321)] == [
        "A", "AAAA", "CNAME", "MX", "TXT", "HTTPS", "TKEY", "TYPE4321",
    ]  # fmt: skip
    assert [rcode_name(r) for r in (0, 1, 2, 3, 4, 5, 15)] == [
        "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "15",
    ]  # fmt: skip


# --- resolved(): following the CNAME chain ---------------------------------------------------


def answer(query: str, *records: DnsRecord) -> DnsMessage:
    return DnsMessage(1, True, 0, query, A, records)


def test_cname_chain_reaches_the_target_addresses_with_the_smallest_ttl() -> None:
    m = answer(
        "www.example.com",
        DnsRecord("www.example.com", CNAME, 3600, "edge.cdn.net"),
        DnsRecord("edge.cdn.net", CNAME, 120, "a1.cdn.net"),
        DnsRecord("a1.cdn.net", A, 20, "192.0.2.1"),
        DnsRecord("a1.cdn.net", AAAA, 600, "2001:db8::1"),
    )
    assert m.resolved() == [("192.0.2.1", 20), ("2001:db8::1", 120)]


def test_cname_chain_in_any_order() -> None:
    m = answer(
        "www.example.com",
        DnsRecord("a1.cdn.net", A, 60, "192.0.2.1"),
        DnsRecord("edge.cdn.net", CNAME, 120, "a1.cdn.net"),
        DnsRecord("www.example.com", CNAME, 30, "edge.cdn.net"),
    )
    assert m.resolved() == [("192.0.2.1", 30)]


def test_cname_loop_ends() -> None:
    m = answer(
        "a.example",
        DnsRecord("a.example", CNAME, 60, "b.example"),
        DnsRecord("b.example", CNAME, 60, "a.example"),
        DnsRecord("b.example", A, 60, "192.0.2.2"),
    )
    assert m.resolved() == [("192.0.2.2", 60)]


def test_addresses_of_unrelated_names_are_excluded() -> None:
    m = answer(
        "www.example.com",
        DnsRecord("www.example.com", A, 60, "192.0.2.1"),
        DnsRecord("ads.tracker.example", A, 60, "198.51.100.7"),
        DnsRecord("other.example", CNAME, 60, "www.example.com"),  # points in, not out
    )
    assert m.resolved() == [("192.0.2.1", 60)]


def test_same_address_twice_is_listed_once_with_the_smaller_ttl() -> None:
    m = answer(
        "x.example",
        DnsRecord("x.example", A, 300, "192.0.2.1"),
        DnsRecord("x.example", A, 30, "192.0.2.1"),
    )
    assert m.resolved() == [("192.0.2.1", 30)]


def test_resolved_from_the_wire_with_compression() -> None:
    cname_owner = len(message("www.example.com"))
    target = b"\x04edge\x03cdn\x03net\x00"
    records = [
        rr(AT_QUESTION, CNAME, target, ttl=500),
        rr(bytes([0xC0, cname_owner + 12]), A, ip4("192.0.2.1"), ttl=50),  # owner -> target
        rr(wire("unrelated.example"), A, ip4("198.51.100.1")),
    ]
    m = parsed(message("www.example.com", records))
    assert m.answers[1].name == "edge.cdn.net"
    assert m.resolved() == [("192.0.2.1", 50)]


# --- DNS over TCP ----------------------------------------------------------------------------


def framed(*messages: bytes) -> bytes:
    return b"".join(struct.pack("!H", len(m)) + m for m in messages)


FIRST = message("one.example", [rr(AT_QUESTION, A, ip4("192.0.2.1"))], ident=1)
SECOND = message("two.example", [rr(AT_QUESTION, A, ip4("192.0.2.2"))], ident=2)


def test_two_messages_in_one_segment() -> None:
    got = DnsTcpStream().feed(framed(FIRST, SECOND))
    assert [m.query for m in got if isinstance(m, DnsMessage)] == ["one.example", "two.example"]


def test_split_at_every_byte_position() -> None:
    data = framed(FIRST, SECOND)
    for cut in range(len(data) + 1):
        stream = DnsTcpStream()
        got = stream.feed(data[:cut]) + stream.feed(data[cut:])
        assert [m.id for m in got if isinstance(m, DnsMessage)] == [1, 2], cut
        assert stream.buffered == 0


def test_one_byte_at_a_time() -> None:
    stream = DnsTcpStream()
    got = [m for b in framed(FIRST, SECOND, FIRST) for m in stream.feed(bytes([b]))]
    assert [m.id for m in got if isinstance(m, DnsMessage)] == [1, 2, 1]


def test_empty_tcp_message_is_a_reason_and_framing_goes_on() -> None:
    got = DnsTcpStream().feed(b"\x00\x00" + framed(FIRST))
    assert got[0] == "dns_truncated" and isinstance(got[1], DnsMessage)


def test_message_larger_than_the_limit_stops_the_stream() -> None:
    stream = DnsTcpStream(limit=64)
    assert stream.feed(framed(SECOND)) != ["dns_tcp_overflow"]
    assert stream.feed(framed(b"\x00" * 100)[:10]) == ["dns_tcp_overflow"]
    assert stream.buffered == 0
    assert stream.feed(framed(FIRST)) == []


def test_real_tcp_streams_split_at_every_byte(peers: Path) -> None:
    """The tkey and multi-query conversations, re-split at every position, give the same."""
    for case_id in ("zeek/dns-tkey-tcp", "suricata-verify/dns-tcp-multi-query"):
        flows = tcp_directions(transport_segments(peers / CASES[case_id]["pcap"]))
        for segs in flows.values():
            data = b"".join(ordered_payloads(segs))
            whole = DnsTcpStream().feed(data)
            assert whole and all(isinstance(m, DnsMessage) for m in whole)
            for cut in range(0, len(data), 7):
                stream = DnsTcpStream()
                assert stream.feed(data[:cut]) + stream.feed(data[cut:]) == whole


# --- Any bytes in ----------------------------------------------------------------------------


VALID = [
    FIRST,
    SECOND,
    message("www.example.com", [rr(AT_QUESTION, CNAME, b"\x03cdn" + AT_QUESTION)]),
    message("v6.example", [rr(AT_QUESTION, AAAA, b"\x20\x01\x0d\xb8" + b"\x00" * 12)], qtype=AAAA),
]


def _check(result: object) -> None:
    assert isinstance(result, DnsMessage) or result in REASONS, result
    if isinstance(result, DnsMessage):
        assert result.query.isprintable()
        for record in result.answers:
            assert record.rtype in (A, AAAA, CNAME) and record.name.isprintable()
        result.resolved()


@settings(max_examples=3000, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes(data: bytes) -> None:
    _check(parse_message(data))


@settings(max_examples=3000, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_after_a_valid_header(tail: bytes) -> None:
    for counts in ((1, 1), (1, 3), (0, 2), (3, 0)):
        _check(parse_message(struct.pack("!6H", 9, 0x8180, *counts, 0, 0) + tail))


@settings(max_examples=1500, deadline=None)
@given(st.sampled_from(VALID), st.data())
def test_mutated_valid_messages(data: bytes, draw: st.DataObject) -> None:
    mutated = bytearray(data)
    for _ in range(draw.draw(st.integers(1, 4))):
        mutated[draw.draw(st.integers(0, len(mutated) - 1))] = draw.draw(st.integers(0, 255))
    _check(parse_message(bytes(mutated)))


RECORDS = st.one_of(
    st.tuples(st.just(A), st.binary(min_size=4, max_size=4)),
    st.tuples(st.just(AAAA), st.binary(min_size=16, max_size=16)),
    st.tuples(
        st.just(CNAME), st.from_regex(r"[a-z0-9-]{1,20}(\.[a-z0-9-]{1,20}){0,3}", fullmatch=True)
    ),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(RECORDS, max_size=8), st.integers(0, 0x7FFFFFFF))
def test_generated_answers_round_trip(records: list[tuple[int, Any]], ttl: int) -> None:
    body = []
    for rtype, value in records:
        rdata = wire(value) if rtype == CNAME else value
        body.append(rr(AT_QUESTION, rtype, rdata, ttl=ttl))
    m = parsed(message("q.example", body))
    assert [(r.rtype, r.ttl) for r in m.answers] == [(t, ttl) for t, _ in records]
    for record, (rtype, value) in zip(m.answers, records, strict=True):
        if rtype == CNAME:
            assert record.value == value


@settings(max_examples=500, deadline=None)
@given(st.lists(st.binary(max_size=400), max_size=12), st.integers(2, 2000))
def test_tcp_stream_of_random_bytes_stays_bounded(chunks: list[bytes], limit: int) -> None:
    stream = DnsTcpStream(limit=limit)
    for chunk in chunks:
        for result in stream.feed(chunk):
            _check(result)
        assert stream.buffered <= limit


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(VALID), min_size=1, max_size=5), st.data())
def test_tcp_stream_any_chunking_gives_the_same_messages(
    messages: list[bytes], draw: st.DataObject
) -> None:
    data = framed(*messages)
    cuts = sorted(draw.draw(st.lists(st.integers(0, len(data)), max_size=10)))
    stream = DnsTcpStream()
    got = []
    for start, end in zip([0, *cuts], [*cuts, len(data)], strict=True):
        got += stream.feed(data[start:end])
    assert got == [parse_message(m) for m in messages]


def test_pointers_into_the_middle_of_a_name_are_reused() -> None:
    # "example.com" starts at offset 16, inside the question "www.example.com" at 12
    records = [
        rr(AT_QUESTION, CNAME, b"\x03cdn\xc0\x10"),
        rr(b"\x03cdn\xc0\x10", A, ip4("192.0.2.1")),
        rr(b"\xc0\x10", A, ip4("192.0.2.2")),
    ]
    m = parsed(message("www.example.com", records))
    assert [r.name for r in m.answers] == ["www.example.com", "cdn.example.com", "example.com"]
    assert m.resolved() == [("192.0.2.1", 300)]


def test_thousands_of_records_sharing_one_pointer_chain() -> None:
    """Each owner enters a 31-pointer chain (stored in a skipped TXT rdata) at its second link:
    the chain is walked once, not once per record."""
    chain_at = 12 + 5 + 1 + 10  # after the root question, the TXT owner and its fixed fields
    chain = b"".join(struct.pack("!H", 0xC000 | (chain_at + 2 * (i + 1))) for i in range(31))
    txt = rr(b"\x00", TXT, chain + b"\x00")
    entry = struct.pack("!H", 0xC000 | (chain_at + 2))
    body = [rr(entry, A, ip4("192.0.2.1"))] * 3000
    data = struct.pack("!6H", 1, 0x8180, 1, 3001, 0, 0) + b"\x00\x00\x01\x00\x01" + txt
    m = parsed(data + b"".join(body))
    assert len(m.answers) == 3000 and m.answers[0].name == ""
