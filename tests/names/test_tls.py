"""ClientHello parsing: real captures checked against Zeek, Suricata and tshark, crafted hellos
for the rules, and fuzzing for the bounds (any bytes in, a hello, None or a reason out).

The peer captures' client streams are rebuilt here with scapy (test code only): per TCP
connection, the SYN sender's payload in sequence order, retransmissions dropped.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import shutil
import struct
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.utils import rdpcap

from egresswatch.names.tls import (
    MAX_RECORD,
    ClientHello,
    client_hello_from_stream,
    looks_like_tls,
    parse_client_hello,
)
from tests.conftest import SHARED

PEERS = SHARED / "peers"
TLS_CASES = [
    "zeek/tls12-google-cert-repeat",
    "zeek/tls12-fragmented-handshake",
    "zeek/tls13-draft23-chrome67",
    "zeek/tls13-chrome-kyber",
    "zeek/tls13-ech",
    "suricata-verify/tls-client-hello-frag",
    "suricata-verify/community-id-ipv4",
    "suricata-verify/community-id-ipv6",
]
Endpoint = tuple[str, int]
"""A connection's client address and port (address in canonical text form)."""


# -- crafted hellos --------------------------------------------------------------------------


def u16s(values: Iterable[int]) -> bytes:
    values = list(values)
    return struct.pack(f">{len(values)}H", *values)


def vec(length_size: int, data: bytes) -> bytes:
    return len(data).to_bytes(length_size, "big") + data


def sni(name: bytes) -> tuple[int, bytes]:
    return 0x0000, vec(2, b"\x00" + vec(2, name))


def alpn(*names: bytes) -> tuple[int, bytes]:
    return 0x0010, vec(2, b"".join(vec(1, n) for n in names))


def versions(*values: int) -> tuple[int, bytes]:
    return 0x002B, vec(1, u16s(values))


def sigalgs(*values: int) -> tuple[int, bytes]:
    return 0x000D, vec(2, u16s(values))


def empty(kind: int) -> tuple[int, bytes]:
    return kind, b""


def hello(
    ciphers: Iterable[int] = (0x1301,),
    extensions: Iterable[tuple[int, bytes]] | None = (),
    *,
    version: int = 0x0303,
    trailing: bytes = b"",
) -> bytes:
    """A ClientHello handshake message; ``extensions=None`` leaves the block out entirely,
    ``trailing`` is appended inside the extension block (a broken last extension)."""
    body = version.to_bytes(2, "big") + bytes(32) + vec(1, bytes(32))
    body += vec(2, u16s(ciphers)) + vec(1, b"\x00")
    if extensions is not None:
        block = b"".join(kind.to_bytes(2, "big") + vec(2, d) for kind, d in extensions)
        body += vec(2, block + trailing)
    return b"\x01" + vec(3, body)


def records(message: bytes, size: int = MAX_RECORD) -> bytes:
    """The message as TLS handshake records of at most ``size`` payload bytes each."""
    chunks = [message[i : i + size] for i in range(0, len(message), size)]
    return b"".join(b"\x16\x03\x01" + vec(2, chunk) for chunk in chunks)


def parsed(message: bytes, **kwargs: Any) -> ClientHello:
    result = parse_client_hello(message, **kwargs)
    assert isinstance(result, ClientHello), result
    return result


# -- peer captures ---------------------------------------------------------------------------


@functools.cache
def client_segments(pcap: Path) -> dict[Endpoint, list[bytes]]:
    """Per connection with a SYN, the client's payload in sequence order, without overlaps."""
    starts: dict[tuple[Endpoint, Endpoint], int] = {}
    segments: dict[tuple[Endpoint, Endpoint], dict[int, bytes]] = {}
    for packet in rdpcap(str(pcap)):
        if TCP not in packet:
            continue
        ip = packet[IP] if IP in packet else packet[IPv6]
        tcp = packet[TCP]
        key = ((_canonical(ip.src), tcp.sport), (_canonical(ip.dst), tcp.dport))
        if tcp.flags.S and not tcp.flags.A:
            starts[key] = (tcp.seq + 1) & 0xFFFFFFFF
        if payload := bytes(tcp.payload):
            segments.setdefault(key, {})[tcp.seq] = payload
    streams: dict[Endpoint, list[bytes]] = {}
    for key, start in starts.items():
        pieces, covered = [], 0
        for seq, payload in sorted(segments.get(key, {}).items(), key=lambda s: s[0] - start):
            offset = (seq - start) & 0xFFFFFFFF
            if offset > covered:
                break  # a gap: what follows is not this stream's prefix
            if offset + len(payload) > covered:
                pieces.append(payload[covered - offset :])
                covered = offset + len(payload)
        if pieces:
            streams[key[0]] = pieces
    return streams


def _canonical(address: str) -> str:
    return str(ipaddress.ip_address(address))


def case(case_id: str) -> dict[str, Any]:
    cases = json.loads((PEERS / "index.json").read_text())["cases"]
    return next(c for c in cases if c["id"] == case_id)


def hellos(case_id: str) -> dict[Endpoint, ClientHello | str | None]:
    pcap = PEERS / case(case_id)["pcap"]
    return {
        client: client_hello_from_stream(b"".join(pieces))
        for client, pieces in client_segments(pcap).items()
    }


def expected_names(case_id: str) -> dict[Endpoint, str | None]:
    """Server names per connection as Zeek's ssl.log or Suricata's tls events give them."""
    expected = case(case_id)["expected"]
    rows = {
        (_canonical(r["id.orig_h"]), r["id.orig_p"]): r["server_name"]
        for r in expected.get("ssl", [])
    }
    for event in expected.get("app_events", []):
        if event["event_type"] == "tls" and "src_ip" in event:
            rows[(_canonical(event["src_ip"]), event["src_port"])] = event["tls.sni"]
    return rows


@pytest.mark.parametrize("case_id", TLS_CASES)
def test_server_names_match_the_peer_logs(case_id: str, peers: Path) -> None:
    found = hellos(case_id)
    assert found and all(isinstance(h, ClientHello) for h in found.values()), found
    names = {client: h.server_name for client, h in found.items() if isinstance(h, ClientHello)}
    for client, name in expected_names(case_id).items():
        assert names[client] == name, client
    assert {n for n in names.values() if n} == set(case(case_id)["expected"]["tls_sni"])


def test_ech_hello_gives_the_outer_name_and_says_ech(peers: Path) -> None:
    found = hellos("zeek/tls13-ech")
    assert {h.server_name for h in found.values() if isinstance(h, ClientHello)} == {
        "cloudflare-ech.com"
    }
    assert all(isinstance(h, ClientHello) and h.ech for h in found.values())
    assert not any(
        isinstance(h, ClientHello) and h.ech
        for h in hellos("zeek/tls12-google-cert-repeat").values()
    )


def test_hello_spanning_tcp_segments_is_found(peers: Path) -> None:
    for case_id in ("zeek/tls13-chrome-kyber", "suricata-verify/tls-client-hello-frag"):
        streams = client_segments(PEERS / case(case_id)["pcap"])
        assert any(len(pieces) > 1 for pieces in streams.values()), case_id
        [(_, result)] = hellos(case_id).items()
        assert isinstance(result, ClientHello)
        assert result.alpn == ("h2", "http/1.1")


@pytest.mark.parametrize(
    ("case_id", "fingerprint"),
    [
        # Both listed as "Chromium Browser" in FoxIO-LLC/ja4 ja4plus-mapping.csv; the ECH one
        # is also anthonykasza/ja4's Zeek baseline for this very capture (tests.tls13-ech_btest).
        ("zeek/tls13-chrome-kyber", "t13d1516h2_8daaf6152771_02713d6af862"),
        ("zeek/tls13-ech", "t13d1517h2_8daaf6152771_b1ff8ab2d16f"),
    ],
)
def test_ja4_of_real_hellos_matches_foxio_published_values(
    case_id: str, fingerprint: str, peers: Path
) -> None:
    assert {h.ja4 for h in hellos(case_id).values() if isinstance(h, ClientHello)} == {fingerprint}


@pytest.mark.parametrize(
    ("case_id", "a_by_spec", "published_hashes"),
    [
        # anthonykasza/ja4's Zeek baselines for these captures (tests.google-cert-repeat_btest,
        # tests.tls13draft23-chrome67_btest) give these b and c sections. Their a section predates
        # rules of the spec: no SNI is "i" (they print "0"), and a highest supported version
        # unknown to JA4, here draft 23 (0x7f17), is "00" (they print "xl").
        ("zeek/tls12-google-cert-repeat", "t12i280600", "d943125447b4_e7e480e5a997"),
        ("zeek/tls13-draft23-chrome67", "t00d1616h2", "46e7e9700bed_420f9a5d0665"),
    ],
)
def test_ja4_hashes_of_real_hellos_match_an_independent_implementation(
    case_id: str, a_by_spec: str, published_hashes: str, peers: Path
) -> None:
    found = {h.ja4 for h in hellos(case_id).values() if isinstance(h, ClientHello)}
    assert f"{a_by_spec}_{published_hashes}" in found


def tshark_hellos(pcap: Path) -> dict[Endpoint, tuple[str | None, tuple[str, ...]]]:
    if shutil.which("tshark") is None:
        pytest.fail("tshark is not installed (tests/run.sh installs it)")
    fields = ["ip.src", "ipv6.src", "tcp.srcport"]
    fields += ["tls.handshake.extensions_server_name", "tls.handshake.extensions_alpn_str"]
    command = ["tshark", "-r", str(pcap), "-Y", "tls.handshake.type==1", "-T", "fields"]
    command += [arg for field in fields for arg in ("-e", field)]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    found = {}
    for line in output.splitlines():
        ip4, ip6, port, name, protocols = line.split("\t")
        client = (_canonical(ip4 or ip6), int(port))
        found[client] = (name or None, tuple(protocols.split(",")) if protocols else ())
    return found


@pytest.mark.tshark
@pytest.mark.parametrize("case_id", TLS_CASES)
def test_same_server_name_and_alpn_as_tshark(case_id: str, peers: Path) -> None:
    theirs = tshark_hellos(PEERS / case(case_id)["pcap"])
    ours = {
        client: (h.server_name, h.alpn)
        for client, h in hellos(case_id).items()
        if isinstance(h, ClientHello)
    }
    assert theirs and ours == theirs


# -- parsing rules ---------------------------------------------------------------------------


def test_server_name_is_lower_cased_text() -> None:
    assert parsed(hello(extensions=[sni(b"WWW.Example.COM")])).server_name == "www.example.com"


def test_no_server_name_extension_gives_none_and_i() -> None:
    result = parsed(hello(extensions=[alpn(b"h2")]))
    assert result.server_name is None
    assert result.ja4[3] == "i"


def test_alpn_names_in_order_and_undecodable_ones_as_hex() -> None:
    result = parsed(hello(extensions=[alpn(b"h2", b"\xff\x00", b"http/1.1")]))
    assert result.alpn == ("h2", "ff00", "http/1.1")
    assert result.ja4[8:10] == "h2"


def test_hello_without_extensions() -> None:
    result = parsed(hello([0x002F, 0x0035], extensions=None, version=0x0301))
    assert result == ClientHello(None, (), False, result.ja4)
    assert result.ja4.startswith("t10i020000_") and result.ja4.endswith("_000000000000")


def test_ech_extension_is_flagged() -> None:
    assert parsed(hello(extensions=[sni(b"public.example"), (0xFE0D, b"\x00" * 40)])).ech
    assert not parsed(hello(extensions=[sni(b"public.example")])).ech


def test_transport_letter_for_quic() -> None:
    message = hello(extensions=[sni(b"example.com"), (0x0039, b"\x01\x02")])
    tcp, quic = parsed(message).ja4, parsed(message, transport="q").ja4
    assert (tcp[0], quic[0], tcp[1:]) == ("t", "q", quic[1:])


def test_foxio_chrome_vector_from_bytes_with_grease() -> None:
    ciphers = [0x8A8A, 0x1301, 0x1302, 0x1303, 0xC02B, 0xC02F, 0xC02C, 0xC030, 0xCCA9, 0xCCA8]
    ciphers += [0xC013, 0xC014, 0x009C, 0x009D, 0x002F, 0x0035]
    extensions = [
        empty(0x3A3A),
        sni(b"cloudflare-quic.com"),
        *map(empty, [0x0017, 0xFF01, 0x000A, 0x000B, 0x0023]),
        alpn(b"h2", b"http/1.1"),
        *map(empty, [0x0005]),
        sigalgs(0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601),
        *map(empty, [0x0012, 0x0033, 0x002D]),
        versions(0xDADA, 0x0304, 0x0303),
        *map(empty, [0x001B, 0x4469, 0x0015, 0x4A4A]),
    ]
    result = parsed(hello(ciphers, extensions))
    assert result.ja4 == "t13d1516h2_8daaf6152771_e5627efa2ab1"
    assert result.server_name == "cloudflare-quic.com"


def test_foxio_quic_vector_from_bytes() -> None:
    extensions = [
        sni(b"cloudflare-quic.com"),
        alpn(b"h3"),
        sigalgs(0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601, 0x0201),
        versions(0x0304),
        *map(empty, [0x000A, 0x001B, 0x002D, 0x0033, 0x0039, 0x4469]),
    ]
    result = parsed(hello([0x1301, 0x1302, 0x1303], extensions), transport="q")
    assert result.ja4 == "q13d0310h3_55b375c5d22e_cd85d2d88918"


def test_extension_order_does_not_change_ja4_but_is_otherwise_kept() -> None:
    extensions = [sni(b"a.example"), alpn(b"h2"), versions(0x0304), sigalgs(0x0403)]
    extensions += [empty(0x0017), empty(0x0033)]
    forward = parsed(hello(extensions=extensions))
    backward = parsed(hello(extensions=extensions[::-1]))
    assert forward == backward


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (b"", "tls_truncated"),
        (b"\x01\x00", "tls_truncated"),
        (hello()[:-1], "tls_truncated"),
        (b"\x02" + hello()[1:], "tls_not_client_hello"),
        (b"\x01\x00\x00\x10" + bytes(16), "tls_malformed"),  # body shorter than random
        (b"\x01\x00\x00\x30" + bytes(34) + b"\x21" + bytes(13), "tls_malformed"),  # session id
        (hello(extensions=[(0x0000, b"\x00\x05\x00\x00\x09ab")]), "tls_malformed"),
        (hello(extensions=[(0x0010, b"\x00\x03\x05h2")]), "tls_malformed"),
        (hello(extensions=[(0x002B, b"\x03\x03\x04\x03")]), "tls_malformed"),  # odd list
        (hello(extensions=[sni(b"a.example")], trailing=b"\x00\x17\x00"), "tls_malformed"),
        (hello(extensions=[sni(b"a.example")], trailing=b"\x00\x17\x00\x01"), "tls_malformed"),
    ],
)
def test_reasons(message: bytes, reason: str) -> None:
    assert parse_client_hello(message) == reason


@pytest.mark.parametrize(
    "extension",
    [
        (0x0000, vec(2, b"\x00" + b"\x00\x05abcd")),  # host_name one byte past its list
        (0x0010, vec(2, b"\x02h2\x03h3")),  # last protocol name one byte past its list
        (0x002B, b"\x04\x03\x04"),  # versions list one pair past the extension
    ],
)
def test_inner_length_one_past_its_container_is_malformed(extension: tuple[int, bytes]) -> None:
    # A further extension follows, so the missing byte exists: it must not be read as content.
    assert parse_client_hello(hello(extensions=[extension, empty(0x0017)])) == "tls_malformed"


def test_cipher_list_of_odd_length_is_malformed() -> None:
    message = bytearray(hello([0x1301, 0x1302]))
    at = 4 + 2 + 32 + 1 + 32
    message[at : at + 2] = b"\x00\x03"
    assert parse_client_hello(bytes(message)) == "tls_malformed"


def test_bytes_after_the_message_are_ignored() -> None:
    message = hello(extensions=[sni(b"x.example")])
    assert parse_client_hello(message + b"\x16\x03\x03junk") == parse_client_hello(message)


# -- the stream ------------------------------------------------------------------------------


def test_looks_like_tls() -> None:
    assert looks_like_tls(records(hello()))
    assert looks_like_tls(b"\x16\x03\x04")
    assert not looks_like_tls(b"\x16\x03\x05\x00\x10")
    assert not looks_like_tls(b"GET / HTTP/1.1\r\n")
    assert not looks_like_tls(b"\x16\x03")
    assert not looks_like_tls(b"\x17\x03\x03\x00\x10")


def test_hello_fragmented_over_records_is_reassembled() -> None:
    message = hello(extensions=[sni(b"split.example"), alpn(b"h2")])
    whole = client_hello_from_stream(records(message))
    assert isinstance(whole, ClientHello) and whole.server_name == "split.example"
    for size in (1, 2, 3, 5, 17):  # the handshake header itself split across records
        assert client_hello_from_stream(records(message, size)) == whole


def test_byte_by_byte_gives_none_until_complete() -> None:
    message = hello(extensions=[sni(b"slow.example")])
    for size in (MAX_RECORD, 7):
        stream = records(message, size)
        assert all(client_hello_from_stream(stream[:n]) is None for n in range(len(stream)))
        assert isinstance(client_hello_from_stream(stream), ClientHello)


@pytest.mark.parametrize("case_id", TLS_CASES)
def test_real_streams_byte_by_byte_and_segment_by_segment(case_id: str, peers: Path) -> None:
    for client, pieces in client_segments(PEERS / case(case_id)["pcap"]).items():
        stream = b"".join(pieces)
        final = client_hello_from_stream(stream)
        assert isinstance(final, ClientHello)
        # The first n at which the answer is no longer None: then already the final one.
        done = next(n for n in range(len(stream) + 1) if client_hello_from_stream(stream[:n]))
        assert client_hello_from_stream(stream[:done]) == final
        received = b""
        for piece in pieces:
            received += piece
            result = client_hello_from_stream(received)
            assert result is None if len(received) < done else result == final, client


@pytest.mark.parametrize(
    ("stream", "reason"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "not_tls"),
        (b"SSH-2.0-OpenSSH_9.6\r\n", "not_tls"),
        (b"\x16\x02", "not_tls"),
        (b"\x16\x03\x07", "not_tls"),
        (records(b"\x02" + hello()[1:]), "tls_not_client_hello"),
        (b"\x16\x03\x01\x00\x01\x02", "tls_not_client_hello"),  # decided on its first byte
        (b"\x16\x03\x01\x00\x00", "tls_malformed"),  # zero-length handshake record
        (records(hello(), 20)[:25] + b"\x15\x03\x03\x00\x02\x02\x28", "tls_malformed"),  # alert
        (records(hello(), 20)[:25] + b"\x17", "tls_malformed"),  # not a handshake record
        (records(b"\x01\x00\x00\x10" + bytes(16)), "tls_malformed"),
    ],
)
def test_stream_reasons(stream: bytes, reason: str) -> None:
    assert client_hello_from_stream(stream) == reason


def test_record_longer_than_tls_allows_is_refused_from_its_header() -> None:
    assert client_hello_from_stream(b"\x16\x03\x01\xff\xff") == "tls_malformed"
    assert client_hello_from_stream(b"\x16\x03\x01" + (MAX_RECORD + 1).to_bytes(2, "big")) == (
        "tls_malformed"
    )


def test_hello_claiming_16_mb_is_refused_from_its_header() -> None:
    assert client_hello_from_stream(b"\x16\x03\x01\x40\x00\x01\xff\xff\xff") == "tls_too_large"


def test_limit_counts_record_headers_and_is_enforced_early() -> None:
    message = hello(extensions=[sni(b"x" * 200)])
    stream = records(message, 1)  # six stream bytes per hello byte
    limit = 2 * len(message)
    decided = next(
        n for n in range(len(stream)) if client_hello_from_stream(stream[:n], limit=limit)
    )
    assert client_hello_from_stream(stream[:decided], limit=limit) == "tls_too_large"
    assert decided < limit
    assert isinstance(client_hello_from_stream(stream, limit=len(stream)), ClientHello)
    assert client_hello_from_stream(stream, limit=len(stream) - 1) == "tls_too_large"


def test_hello_bigger_than_the_limit_is_refused_once_its_length_is_known() -> None:
    stream = records(hello(extensions=[sni(b"x" * 600)]))
    assert client_hello_from_stream(stream[:9], limit=500) == "tls_too_large"
    assert client_hello_from_stream(stream[:8], limit=500) is None


# -- fuzzing ---------------------------------------------------------------------------------

REAL_STREAMS = [
    b"".join(pieces)
    for case_id in TLS_CASES
    if (PEERS / "index.json").exists()
    for pieces in client_segments(PEERS / case(case_id)["pcap"]).values()
]
CRAFTED = [
    hello(extensions=[sni(b"a.example"), alpn(b"h2", b"http/1.1"), versions(0x0304)]),
    hello(extensions=None),
]
STREAMS = REAL_STREAMS + [records(m, size) for m in CRAFTED for size in (MAX_RECORD, 3)]
MESSAGES = [s[5:] for s in REAL_STREAMS] + CRAFTED


def _check(result: object) -> None:
    assert result is None or isinstance(result, ClientHello | str)
    if isinstance(result, ClientHello):
        assert len(result.ja4) == 36 and result.ja4.count("_") == 2


@settings(max_examples=3000, deadline=None)
@given(st.binary(max_size=300), st.integers(0, 400))
def test_random_bytes(data: bytes, limit: int) -> None:
    _check(parse_client_hello(data))
    _check(parse_client_hello(b"\x01" + data))
    result = client_hello_from_stream(data, limit=limit)
    _check(result)
    _check(client_hello_from_stream(b"\x16\x03\x01" + data, limit=limit))
    assert result is not None or len(data) < limit


def _mutate(original: bytes, data: st.DataObject) -> bytes:
    mutated = bytearray(original[: data.draw(st.integers(0, len(original)))])
    for _ in range(data.draw(st.integers(0, 6))):
        if mutated:
            mutated[data.draw(st.integers(0, len(mutated) - 1))] = data.draw(st.integers(0, 255))
    return bytes(mutated)


def tls_vector(length_size: int, content: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    """A TLS vector whose length field is right or off by up to two either way."""
    return st.builds(
        lambda data, delta: max(len(data) + delta, 0).to_bytes(length_size, "big") + data,
        content,
        st.integers(-2, 2),
    )


names = st.binary(max_size=12)
EXTENSIONS = st.one_of(
    st.tuples(st.just(0x0000), tls_vector(2, st.builds(b"".join, st.lists(
        st.builds(lambda t, n: bytes([t]) + n, st.sampled_from([0, 1]), tls_vector(2, names)),
        max_size=3,
    )))),
    st.tuples(st.just(0x0010), tls_vector(2, st.builds(b"".join, st.lists(
        tls_vector(1, names), max_size=3
    )))),
    st.tuples(st.just(0x002B), tls_vector(1, st.binary(max_size=10))),
    st.tuples(st.just(0x000D), tls_vector(2, st.binary(max_size=10))),
    st.tuples(st.integers(0, 0xFFFF), st.binary(max_size=8)),
)  # fmt: skip


@settings(max_examples=3000, deadline=None)
@given(
    st.lists(st.integers(0, 0xFFFF), max_size=6),
    st.lists(EXTENSIONS, max_size=6),
    st.binary(max_size=5),
)
def test_hellos_with_nearly_valid_extensions(
    ciphers: list[int], extensions: list[tuple[int, bytes]], trailing: bytes
) -> None:
    """Extension contents whose inner lengths are right or off by a little: the mistakes
    bounds checks get wrong. The hello is the whole buffer, so an overrun reads past it."""
    result = parse_client_hello(hello(ciphers, extensions, trailing=trailing), transport="q")
    _check(result)
    assert not isinstance(result, ClientHello) or result.ja4.startswith("q")


@settings(max_examples=3000, deadline=None)
@given(st.sampled_from(MESSAGES), st.data())
def test_mutated_real_hellos(message: bytes, data: st.DataObject) -> None:
    """Truncations and byte flips of real hellos: the shapes malformed traffic really takes."""
    _check(parse_client_hello(_mutate(message, data), transport="q"))


@settings(max_examples=1500, deadline=None)
@given(st.sampled_from(STREAMS), st.data())
def test_mutated_real_streams_decide_once(stream: bytes, data: st.DataObject) -> None:
    """Once an answer is given it is final: more bytes never turn it back into None, and a
    hello, once found, stays the same hello."""
    mutated = _mutate(stream, data)
    cut = data.draw(st.integers(0, len(mutated)))
    early, late = client_hello_from_stream(mutated[:cut]), client_hello_from_stream(mutated)
    _check(early)
    _check(late)
    if early is not None:
        assert late is not None
    if isinstance(early, ClientHello):
        assert late == early


def test_fuzz_corpus_is_real() -> None:
    assert len(REAL_STREAMS) >= 15
