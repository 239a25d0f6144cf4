"""HTTP/1.x request Host: real captures against Zeek, Suricata and tshark; crafted requests;
any bytes in, a request, None or a reason out, never more than `limit` bytes needed."""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from egresswatch.names.http import REASONS, HttpRequest, looks_like_http, request_host
from tests.names.test_dns import (
    CASES,
    ordered_payloads,
    run_tshark,
    tcp_directions,
    transport_segments,
)

HTTP_CASES = [
    "zeek/wikipedia",
    "zeek/http-get",
    "zeek/http-lower-case",
    "zeek/teredo",
    "suricata-verify/decode-teredo-01",
    "suricata-verify/http-ipv6",
]
# First requests egresswatch names that a peer's expectations leave out, and why.
NOT_IN_PEER = {
    # A connection captured mid-stream (no SYN): Zeek logs no http.log entry (known divergence).
    "zeek/wikipedia": {"www.wikipedia.org"},
    # Requests inside Teredo: Zeek logs them, Suricata's expectations do not (known divergence).
    "suricata-verify/decode-teredo-01": {"ipv6.google.com"},
}

Key = tuple[str, int, str, int]


def first_requests(pcap: Path) -> dict[Key, HttpRequest | str | None]:
    """Per TCP connection that starts like HTTP, `request_host` over its client's first bytes,
    fed segment by segment as the sniffer does: None until it decides, then the answer."""
    found: dict[Key, HttpRequest | str | None] = {}
    for key, segments in tcp_directions(transport_segments(pcap)).items():
        payloads = ordered_payloads(segments)
        if not payloads or not looks_like_http(payloads[0]):
            continue
        data = b""
        result: HttpRequest | str | None = None
        for payload in payloads:
            data += payload
            result = request_host(data)
            if result is not None:
                break
        found[_key(*key)] = result
    return found


def _key(src: str, sport: int, dst: str, dport: int) -> Key:
    return (str(ipaddress.ip_address(src)), sport, str(ipaddress.ip_address(dst)), dport)


# --- Peer captures ---------------------------------------------------------------------------


@pytest.mark.parametrize("case_id", HTTP_CASES)
def test_peer_hosts(peers: Path, case_id: str) -> None:
    case = CASES[case_id]
    found = first_requests(peers / case["pcap"])
    assert all(isinstance(r, HttpRequest) for r in found.values()), found
    hosts = {r.host for r in found.values() if isinstance(r, HttpRequest)}
    assert hosts == set(case["expected"]["http_hosts"]) | NOT_IN_PEER.get(case_id, set())


@pytest.mark.parametrize("case_id", [c for c in HTTP_CASES if c.startswith("zeek/")])
def test_every_zeek_first_request_row_is_found(peers: Path, case_id: str) -> None:
    case = CASES[case_id]
    found = first_requests(peers / case["pcap"])
    for row in case["expected"]["http"]:
        if row["trans_depth"] == 1:
            key = _key(row["id.orig_h"], row["id.orig_p"], row["id.resp_h"], row["id.resp_p"])
            assert found.get(key) == HttpRequest(row["method"], row["host"]), row


@pytest.mark.parametrize("case_id", [c for c in HTTP_CASES if c.startswith("suricata")])
def test_every_suricata_http_event_is_found(peers: Path, case_id: str) -> None:
    """Suricata's http.hostname drops the port: "[::1]:8000" is logged as "[::1]"."""
    found = first_requests(peers / CASES[case_id]["pcap"])
    for event in CASES[case_id]["expected"]["app_events"]:
        if event.get("event_type") == "http":
            assert any(
                isinstance(r, HttpRequest)
                and r.host == event["http.hostname"]
                and r.method == event.get("http.http_method", r.method)
                for r in found.values()
            ), event


@pytest.mark.tshark
@pytest.mark.parametrize("case_id", HTTP_CASES)
def test_tshark_reads_the_same_first_requests(peers: Path, case_id: str) -> None:
    """tshark's method and http.host of each TCP stream's first request (Teredo heuristics on,
    so the tunnelled requests count); its host keeps the port and case, so both are normalised
    the documented way before comparing."""
    pcap = peers / CASES[case_id]["pcap"]
    rows = run_tshark(pcap, "http.request", ["tcp.stream", "http.request.method", "http.host"])
    first: dict[str, tuple[str, str | None]] = {}
    for stream, method, host in rows:
        first.setdefault(stream, (method, _without_port(host.lower()) if host else None))
    ours = Counter(
        (r.method, r.host) for r in first_requests(pcap).values() if isinstance(r, HttpRequest)
    )
    assert ours == Counter(first.values())
    assert ours


def _without_port(host: str) -> str:
    return re.sub(r":[0-9]*$", "", host) if host.startswith("[") or host.count(":") == 1 else host


# --- Crafted requests ------------------------------------------------------------------------


def request(*headers: str, line: str = "GET / HTTP/1.1", end: str = "\r\n") -> bytes:
    return "".join(f"{h}{end}" for h in (line, *headers)).encode() + end.encode()


@pytest.mark.parametrize("keyword", ["Host", "host", "HOST", "hOsT"])
def test_host_keyword_in_any_case(keyword: str) -> None:
    assert request_host(request(f"{keyword}: example.com")) == HttpRequest("GET", "example.com")


def test_host_value_is_stripped_and_lower_cased() -> None:
    got = request_host(request("User-Agent: x", "Host: \t Example.COM \t"))
    assert got == HttpRequest("GET", "example.com")


@pytest.mark.parametrize(
    ("value", "host"),
    [
        ("example.com:8080", "example.com"),
        ("example.com:", "example.com"),
        ("192.0.2.1:80", "192.0.2.1"),
        ("[::1]:8000", "[::1]"),
        ("[2001:DB8::1]", "[2001:db8::1]"),
        ("2001:db8::1", "2001:db8::1"),  # unbracketed IPv6 (invalid): no port to tell apart
        ("example.com:http", "example.com:http"),  # not a port: kept as sent
    ],
)
def test_port_is_removed_like_suricata(value: str, host: str) -> None:
    assert request_host(request(f"Host: {value}")) == HttpRequest("GET", host)


def test_lower_case_method_and_version_are_http() -> None:
    data = b"get /index.html http/1.1\r\nhost: 146.190.62.39\r\n\r\n"
    assert looks_like_http(data)
    assert request_host(data) == HttpRequest("GET", "146.190.62.39")


@pytest.mark.parametrize("method", ["POST", "PUT", "OPTIONS", "PROPFIND", "M-SEARCH", "CONNECT"])
def test_known_methods(method: str) -> None:
    data = request("Host: h.example", line=f"{method} / HTTP/1.0")
    assert looks_like_http(data)
    assert request_host(data) == HttpRequest(method, "h.example")


def test_unknown_method_token_with_an_http_version_is_still_http() -> None:
    data = request("Host: h.example", line="BREW /pot HTTP/1.1")
    assert not looks_like_http(data)
    assert request_host(data) == HttpRequest("BREW", "h.example")


def test_bare_lf_line_ends() -> None:
    assert request_host(request("Host: a.example", end="\n")) == HttpRequest("GET", "a.example")


def test_leading_empty_lines_are_skipped() -> None:
    data = b"\r\n\r\n" + request("Host: a.example")
    assert request_host(data) == HttpRequest("GET", "a.example")


def test_no_host_once_the_header_block_ends() -> None:
    assert request_host(request("Accept: */*", line="GET / HTTP/1.0")) == HttpRequest("GET", None)
    assert request_host(request("Host:")) == HttpRequest("GET", None)


def test_answer_as_soon_as_the_host_line_is_complete() -> None:
    data = b"GET / HTTP/1.1\r\nHost: a.example\r\nUser-Agent: still com"
    assert request_host(data) == HttpRequest("GET", "a.example")


def test_first_host_wins() -> None:
    got = request_host(request("Host: first.example", "Host: second.example"))
    assert got == HttpRequest("GET", "first.example")


def test_folded_continuation_line_is_not_a_host_header() -> None:
    got = request_host(request("X-Note: a", " Host: evil.example", "Host: good.example"))
    assert got == HttpRequest("GET", "good.example")


def test_host_split_across_segments_at_every_byte() -> None:
    data = request("User-Agent: curl/8", "Host: split.example:8443", "Accept: */*")
    host_line_end = data.index(b"\n", data.index(b"Host")) + 1
    for cut in range(len(data) + 1):
        expected = HttpRequest("GET", "split.example") if cut >= host_line_end else None
        assert request_host(data[:cut]) == expected, cut


def test_bytearray_input() -> None:
    assert request_host(bytearray(request("Host: b.example"))) == HttpRequest("GET", "b.example")
    assert looks_like_http(bytearray(b"GET / HTTP/1.1\r\n"))


def test_non_ascii_host_is_escaped() -> None:
    got = request_host(b"GET / HTTP/1.1\r\nHost: caf\xc3\xa9\x01.example\r\n\r\n")
    assert got == HttpRequest("GET", r"caf\195\169\001.example")


@pytest.mark.parametrize(
    "data",
    [
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS ClientHello
        b"SSH-2.0-OpenSSH_9.6\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",  # the HTTP/2 preface
        b"GET /\r\n",  # HTTP/0.9
        b"GET / HTTP/1.1 extra\r\n\r\n",
        b"\x00\x00\x00\x00",
        b"HTTP/1.1 200 OK\r\n\r\n",  # a response, not a request
    ],
)
def test_not_http(data: bytes) -> None:
    assert request_host(data) == "not_http"


def test_looks_like_http_is_a_cheap_method_check() -> None:
    assert looks_like_http(b"GET / HTTP/1.1\r\n")
    assert looks_like_http(b"delete /x HTTP/1.1\r\n")
    for data in (b"", b"GET", b"GETX / HTTP/1.1", b" GET /", b"\x16\x03\x01", b"OPTIONSX /"):
        assert not looks_like_http(data), data


def test_header_over_the_limit() -> None:
    big = request("Cookie: " + "c" * 9000, "Host: late.example")
    assert request_host(big) == "http_header_too_long"
    assert request_host(big, limit=20000) == HttpRequest("GET", "late.example")
    assert request_host(big[:8000]) is None
    assert request_host(b"GET /" + b"a" * 9000) == "http_header_too_long"
    assert request_host(b"\r\n" * 5000) == "http_header_too_long"


# --- Any bytes in ----------------------------------------------------------------------------


def _check(result: object) -> None:
    assert result is None or result in REASONS or isinstance(result, HttpRequest), result
    if isinstance(result, HttpRequest):
        assert result.method.isupper() or not result.method.isalpha()
        assert result.host is None or result.host.isprintable()


@settings(max_examples=3000, deadline=None)
@given(st.binary(max_size=300), st.integers(1, 400))
def test_random_bytes(data: bytes, limit: int) -> None:
    result = request_host(data, limit=limit)
    _check(result)
    looks_like_http(data)
    if len(data) >= limit:
        assert result is not None  # the caller never has to hold more than `limit` bytes


@settings(max_examples=1000, deadline=None)
@given(
    st.sampled_from([b"GET", b"post", b"OPTIONS"]),
    st.lists(st.binary(max_size=40), max_size=6),
    st.data(),
)
def test_random_headers_after_a_request_line(
    method: bytes, headers: list[bytes], draw: st.DataObject
) -> None:
    data = method + b" / HTTP/1.1\r\n" + b"\r\n".join(headers)
    if draw.draw(st.booleans()):
        data += b"\r\nHost: " + draw.draw(st.binary(max_size=30)) + b"\r\n\r\n"
    _check(request_host(data))


@settings(max_examples=200, deadline=None)
@given(
    st.from_regex(r"[A-Za-z0-9.-]{1,40}(:[0-9]{1,5})?", fullmatch=True),
    st.lists(st.from_regex(r"X-[a-z]{1,8}: [ -~]{0,30}", fullmatch=True), max_size=5),
)
def test_every_prefix_waits_or_gives_the_final_answer(host: str, extra: list[str]) -> None:
    data = request(*extra, f"Host: {host}", "Accept: */*")
    final = request_host(data)
    assert final == HttpRequest("GET", host.partition(":")[0].lower())
    for cut in range(len(data)):
        assert request_host(data[:cut]) in (None, final)
