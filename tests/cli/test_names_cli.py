"""Names and places end to end: a crafted capture replayed by the real CLI into SQLite, with
MaxMind's official test databases (../shared/geoip-test), then `flows --json` and `dns --json`.

175.16.199.0/24 is CN in those databases, 89.160.20.112 SE (AS 29518), 216.160.83.56 US
(AS 209), 2001:480::/32 US (GeoIP2-City-Test fills 2001:480:10::/48 of it).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from scapy.layers.dns import DNS, DNSQR, DNSRR
from scapy.layers.tls.extensions import (
    ProtocolName,
    ServerName,
    TLS_Ext_ALPN,
    TLS_Ext_ServerName,
    TLS_Ext_SupportedVersion_CH,
)
from scapy.layers.tls.handshake import TLSClientHello
from scapy.layers.tls.record import TLS
from scapy.packet import Packet

from egresswatch.cli.main import main
from tests.conftest import SHARED
from tests.packets import tcp, udp, write_pcap

CLIENT, RESOLVER = "10.0.0.5", "10.0.0.1"
GEOIP = SHARED / "geoip-test"
REQUEST = b"GET /v1 HTTP/1.1\r\nhOsT: API.Example:8080\r\n\r\n"  # keyword case, port


def client_hello(name: str) -> bytes:
    extensions = [
        TLS_Ext_ServerName(servernames=[ServerName(servername=name.encode())]),
        TLS_Ext_ALPN(protocols=[ProtocolName(protocol=b"h2")]),
        TLS_Ext_SupportedVersion_CH(versions=[0x0304]),
    ]
    return bytes(TLS(msg=[TLSClientHello(ciphers=[0x1301, 0x1302], ext=extensions)]))


def connection(
    dst: str, sport: int, first_bytes: bytes, dport: int = 443, client: str = CLIENT
) -> list[Packet]:
    """Handshake, the client's first bytes, the server's answer, RST."""
    c2s: dict[str, Any] = {"src": client, "dst": dst, "sport": sport, "dport": dport}
    s2c: dict[str, Any] = {"src": dst, "dst": client, "sport": dport, "dport": sport}
    return [
        tcp("S", **c2s, seq=100),
        tcp("SA", **s2c, seq=500),
        tcp("A", **c2s, seq=101),
        tcp("PA", **c2s, seq=101, payload=first_bytes),
        tcp("PA", **s2c, seq=501, payload=b"\x17\x03\x03\x00\x10" + b"x" * 16),
        tcp("R", **c2s, seq=101 + len(first_bytes)),
    ]


def dns_answer(query: str, *records: tuple[str, str]) -> Packet:
    """A response to CLIENT for ``query``: records are (type, value), CNAMEs first."""
    answers = []
    owner = query
    for kind, value in records:
        answers.append(DNSRR(rrname=owner, type=kind, ttl=300, rdata=value))
        if kind == "CNAME":
            owner = value
    message = DNS(id=7, qr=1, rd=1, ra=1, qd=DNSQR(qname=query), an=answers)
    return udp(src=RESOLVER, dst=CLIENT, sport=53, dport=33000, payload=bytes(message))


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> str:
    tmp = tmp_path_factory.mktemp("names")
    packets = [
        dns_answer("telemetry.vendor.cn", ("CNAME", "edge.vendor-cdn.cn"), ("A", "175.16.199.20")),
        *connection("175.16.199.20", 41000, b"\x00" * 40),  # no SNI: named by the lookup
        dns_answer("models.example", ("A", "89.160.20.112")),
        *connection("89.160.20.112", 41001, client_hello("weights.example")),  # SNI differs
        *connection("216.160.83.56", 41002, REQUEST, 80),
        *connection("2001:480:10::1", 41003, b"\x00" * 40, client="fd00::5"),
    ]  # fmt: skip
    pcap = write_pcap(tmp / "names.pcap", packets)
    url = f"sqlite:///{tmp / 'ew.db'}"
    assert main(["replay", str(pcap), "--db", url, "--quiet", "--geoip-dir", str(GEOIP)]) == 0
    return url


def flows(url: str, capsys: pytest.CaptureFixture[str]) -> dict[str, dict[str, Any]]:
    capsys.readouterr()
    assert main(["flows", "--db", url, "--json", "--limit", "0"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    return {row["dst_ip"]: row for row in rows if row["protocol"] == "tcp"}


def test_each_flow_gets_the_name_its_client_used_and_its_place(
    replayed: str, capsys: pytest.CaptureFixture[str]
) -> None:
    by_dst = flows(replayed, capsys)
    cn = by_dst["175.16.199.20"]
    assert (cn["server_name"], cn["name_source"], cn["dns_name"]) == (
        "telemetry.vendor.cn", "dns", "telemetry.vendor.cn",
    )  # fmt: skip  # the name asked for, not the CNAME target
    assert cn["country"] == "CN"
    se = by_dst["89.160.20.112"]
    assert (se["server_name"], se["name_source"], se["dns_name"]) == (
        "weights.example", "sni", "models.example",
    )  # fmt: skip
    assert se["ja4"].startswith("t13d02") and se["alpn"] == "h2"
    assert (se["country"], se["asn"]) == ("SE", 29518)
    us = by_dst["216.160.83.56"]
    assert (us["server_name"], us["name_source"], us["dns_name"]) == ("api.example", "http", None)
    assert (us["country"], us["asn"]) == ("US", 209)
    v6 = by_dst["2001:480:10::1"]
    assert (v6["server_name"], v6["country"]) == (None, "US")


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["--country", "us"], {"216.160.83.56", "2001:480:10::1"}),
        (["--server-name", "*.EXAMPLE"], {"89.160.20.112", "216.160.83.56"}),
        (["--asn", "29518"], {"89.160.20.112"}),
        # 254 bytes with the ClientHello; 280 over IPv6 (40-byte headers); the rest 200-204
        (["--min-bytes-out", "250"], {"89.160.20.112", "2001:480:10::1"}),
        (["--country", "CN", "--server-name", "*.example"], set()),
    ],
)
def test_flows_filtered_by_place_name_and_size(
    replayed: str, capsys: pytest.CaptureFixture[str], options: list[str], expected: set[str]
) -> None:
    capsys.readouterr()
    assert main(["flows", "--db", replayed, "--json", "--limit", "0", *options]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {r["dst_ip"] for r in rows if r["protocol"] == "tcp"} == expected


def test_the_dns_history_answers_who_resolved_what(
    replayed: str, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["dns", "--db", replayed, "--json", "--name", "*.vendor.cn"]) == 0
    (row,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert set(row) == {"time", "client", "resolver", "query", "qtype", "rcode", "answers", "ttl"}
    assert row["time"].endswith("Z")
    assert (row["client"], row["resolver"], row["query"], row["qtype"], row["rcode"]) == (
        CLIENT, RESOLVER, "telemetry.vendor.cn", "A", "NOERROR",
    )  # fmt: skip
    assert row["answers"] == ["edge.vendor-cdn.cn", "175.16.199.20"]
    assert main(["dns", "--db", replayed, "--json", "--ip", "89.160.20.112"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line)["query"] for line in lines] == ["models.example"]
    assert main(["dns", "--db", replayed]) == 0
    table = capsys.readouterr().out
    assert "telemetry.vendor.cn" in table and "models.example" in table


def test_without_any_geoip_database_everything_works_and_the_summary_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pcap = write_pcap(tmp_path / "one.pcap", connection("175.16.199.20", 41000, b"\x00" * 40))
    url = f"sqlite:///{tmp_path / 'ew.db'}"
    empty = tmp_path / "no-geoip"
    empty.mkdir()
    assert main(["replay", str(pcap), "--db", url, "--geoip-dir", str(empty)]) == 0
    assert "no GeoIP database found" in capsys.readouterr().out
    (row,) = flows(url, capsys).values()
    assert (row["country"], row["city"], row["asn"], row["as_org"]) == (None, None, None, None)


def test_a_bad_dns_filter_is_refused_naming_the_problem(
    replayed: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["dns", "--db", replayed, "--ip", "not-an-address"]) == 2
    assert "bad filter" in capsys.readouterr().err


def test_flows_only_replays_account_flows_without_names_or_dns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    packets = [
        dns_answer("models.example", ("A", "89.160.20.112")),
        *connection("89.160.20.112", 41001, client_hello("weights.example")),
    ]
    pcap = write_pcap(tmp_path / "named.pcap", packets)
    url = f"sqlite:///{tmp_path / 'ew.db'}"
    assert main(["replay", str(pcap), "--db", url, "--flows-only", "--geoip-dir", str(GEOIP)]) == 0
    assert "names:" not in capsys.readouterr().out
    (row,) = flows(url, capsys).values()
    assert (row["server_name"], row["dns_name"], row["ja4"], row["country"]) == (None,) * 4
    assert row["packets_out"] == 4
    assert main(["dns", "--db", url]) == 0
    assert "no DNS answers match" in capsys.readouterr().out
