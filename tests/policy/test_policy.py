"""The policy file (errors point at their line) and judging flows against it."""

from __future__ import annotations

import base64
import dataclasses
import itertools
import random
import subprocess
import sys
from pathlib import Path

import pytest

from egresswatch.errors import ConfigError
from egresswatch.flows.record import Direction, FlowRecord
from egresswatch.names.passive_dns import DnsAnswer
from egresswatch.policy.judge import PolicyJudge
from egresswatch.policy.load import BUILT_IN, load_policy, parse_policy
from tests.geo.mmdb import MAXMIND_TEST_DATA

OFFLINE = {"egresswatch.policy": "offline"}


def flow(**changes: object) -> FlowRecord:
    base = FlowRecord(
        uid="Cflow1", first_seen=100.0, last_seen=101.0, interface="docker0",
        direction=Direction.EGRESS, ip_proto=6, protocol="tcp", src_ip="172.17.0.2",
        src_port=40000, dst_ip="203.0.113.80", dst_port=443, packets_out=5, bytes_out=900,
        packets_in=5, bytes_in=5000, state="SF", history="ShADadFf", closed=True,
        server_name="api.vendor.example", name_source="sni", country="US", asn=64500,
        container_id="c" * 64, container_name="ollama", image="ollama/ollama:latest",
        pid=42, process="ollama",
    )  # fmt: skip
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def judge(text: str, labels: dict[str, str] | None = None) -> PolicyJudge:
    return PolicyJudge(parse_policy(text), lambda _cid: labels or {})


def test_errors_name_the_line_and_the_key() -> None:
    text = (
        "version: 1\nscopes:\n  - name: x\n    deny:\n      - countries: [CHN]\n    defualt: deny\n"
    )
    with pytest.raises(ConfigError) as err:
        parse_policy(text, "policy.yaml")
    assert "policy.yaml:5: scopes.0.deny.0.countries" in str(err.value)
    assert "policy.yaml:6: scopes.0.defualt: unknown key" in str(err.value)
    with pytest.raises(ConfigError, match=r"policy.yaml:4: not valid YAML: .* opens on line 3"):
        parse_policy("version: 1\nscopes:\n  - name: [x\n", "policy.yaml")


def test_the_built_in_policy_alerts_on_offline_containers_only() -> None:
    j = PolicyJudge(load_policy(BUILT_IN), lambda cid: OFFLINE if cid == "c" * 64 else {})
    [alert] = j.judge([flow()])
    assert alert.rule == "offline: not allowed" and alert.severity == "high"
    assert "container ollama (ollama, pid 42)" in alert.summary
    assert "api.vendor.example" in alert.summary
    other = flow(uid="Cflow2", container_id="d" * 64, container_name="dify")
    assert j.judge([other]) == []  # unlabelled: the empty country list denies nothing


def test_the_first_matching_scope_decides() -> None:
    j = judge(
        "scopes:\n"
        "  - name: ollama\n    match: {container_names: ['ollama*']}\n"
        "    allow: [{domains: ['*.ollama.ai']}]\n    default: deny\n"
        "  - name: rest\n    default: deny\n"
    )
    assert j.judge([flow(uid="C1", server_name="registry.ollama.ai")]) == []
    [denied] = j.judge([flow(uid="C2")])
    assert denied.rule == "ollama: not allowed"
    [other] = j.judge([flow(uid="C3", container_name="dify", container_id="d" * 64)])
    assert other.rule == "rest: not allowed"


@pytest.mark.parametrize(
    ("rule", "hits"),
    [
        ("{cidrs: ['203.0.113.0/24']}", True),
        ("{cidrs: ['198.51.100.0/24']}", False),
        ("{countries: [us]}", True),
        ("{asns: [64500], ports: [443]}", True),
        ("{asns: [64500], ports: [80]}", False),
        ("{domains: ['*.vendor.example'], protocols: [tcp]}", True),
        ("{countries: []}", False),
    ],
)
def test_deny_rules_match_every_key_they_give(rule: str, hits: bool) -> None:
    j = judge(f"scopes:\n  - name: all\n    deny: [{rule}]\n")
    assert bool(j.judge([flow()])) is hits


def test_a_flow_is_judged_once_and_its_upload_when_it_crosses_the_threshold() -> None:
    j = judge("scopes: []\ndetections:\n  upload: {max_bytes_per_flow: 1000000}\n")
    running = flow(closed=False, bytes_out=600_000)
    assert j.judge([running]) == []
    [upload] = j.judge([dataclasses.replace(running, bytes_out=1_200_000)])
    assert upload.rule == "upload" and "over the policy's 1.0 MB" in upload.summary
    assert j.judge([dataclasses.replace(running, bytes_out=9_000_000, closed=True)]) == []


def test_only_flows_leaving_the_box_are_judged() -> None:
    j = judge("scopes:\n  - name: all\n    default: deny\n")
    assert j.judge([flow(direction=Direction.INTERNAL), flow(direction=Direction.INGRESS)]) == []
    assert len(j.judge([flow()])) == 1


def test_the_host_scope_and_processes() -> None:
    j = judge(
        "scopes:\n  - name: curl-on-host\n    match: {host: true, processes: [curl]}\n"
        "    default: deny\n"
    )
    host_curl = flow(uid="C1", container_id=None, container_name=None, process="curl")
    assert [a.rule for a in j.judge([host_curl])] == ["curl-on-host: not allowed"]
    assert j.judge([flow(uid="C2", process="curl")]) == []  # in a container: not this scope


def test_dns_around_the_allowed_resolvers_and_encrypted_dns() -> None:
    j = judge("scopes: []\ndetections:\n  dns: {resolvers: ['10.0.0.53', '192.0.2.0/28']}\n")
    lookup = {"protocol": "udp", "ip_proto": 17, "dst_port": 53, "server_name": None}
    assert j.judge([flow(uid="C1", dst_ip="10.0.0.53", **lookup)]) == []
    assert j.judge([flow(uid="C2", dst_ip="192.0.2.9", **lookup)]) == []
    [leak] = j.judge([flow(uid="C3", dst_ip="203.0.113.53", **lookup)])
    assert leak.rule == "dns: resolver not allowed"
    [dot] = j.judge([flow(uid="C4", dst_port=853)])
    [doh] = j.judge([flow(uid="C5", server_name="cloudflare-dns.com")])
    assert (dot.rule, doh.rule) == ("dns: DNS over TLS", "dns: DNS over HTTPS")
    assert j.judge([flow(uid="C6", server_name="api.cloudflare.com")]) == []  # not DoH
    [doq] = j.judge([flow(uid="C7", dst_port=853, protocol="udp", ip_proto=17)])
    assert doq.rule == "dns: DNS over QUIC"


def test_raw_ip_egress_only_when_nothing_named_the_destination() -> None:
    j = judge("scopes: []\ndetections:\n  raw_ip: {}\n")
    bare = {"server_name": None, "name_source": None, "dns_name": None}
    [alert] = j.judge([flow(uid="C1", **bare)])
    assert alert.rule == "raw-ip" and alert.severity == "low"
    assert j.judge([flow(uid="C2", dns_name="api.vendor.example", server_name=None)]) == []
    assert j.judge([flow(uid="C3", **bare, dst_port=123)]) == []  # NTP to an address
    assert j.judge([flow(uid="C4", **bare, protocol="udp", ip_proto=17)]) == []
    assert judge("scopes: []\n").judge([flow(uid="C5", **bare)]) == []  # off by default


def test_first_seen_destinations_after_the_learning_period() -> None:
    """Quiet while learning what is normal; then a destination a source never reached is an
    alert, once; what was learned survives a restart (the pairs go to the database)."""
    j = judge("scopes: []\ndetections:\n  first_seen: {learning_hours: 1}\n")
    day0 = [flow(uid=f"L{n}", first_seen=100.0 + n, server_name=f"{n}.models.example")
            for n in range(3)]  # fmt: skip
    assert j.judge(day0) == []
    learned = j.take_discovered()
    assert [(s, d) for s, d, _ in learned] == [("ollama", f"{n}.models.example") for n in range(3)]
    later = 100.0 + 3600 + 1
    assert j.judge([flow(uid="K1", first_seen=later, server_name="1.models.example")]) == []
    [new] = j.judge([flow(uid="N1", first_seen=later, server_name="telemetry.vendor.example")])
    assert new.rule == "first-seen destination" and "never reached telemetry" in new.summary
    assert (
        j.judge([flow(uid="N2", first_seen=later + 5, server_name="telemetry.vendor.example")])
        == []
    )
    other = flow(uid="N3", first_seen=later, container_name="dify", container_id="d" * 64)
    assert [a.rule for a in j.judge([other])] == ["first-seen destination"]  # per source

    restarted = PolicyJudge(j.policy, known={(s, d) for s, d, _ in learned}, learning_since=100.0)
    assert restarted.judge([flow(uid="K2", first_seen=later, server_name="2.models.example")]) == []


def calls(
    times: list[float], sizes: list[int], name: str = "c2.vendor.example"
) -> list[FlowRecord]:
    return [flow(uid=f"B{i}", first_seen=t, bytes_out=n, server_name=name)
            for i, (t, n) in enumerate(zip(times, sizes, strict=True))]  # fmt: skip


def test_a_jittered_beacon_is_found_and_browsing_is_not() -> None:
    rng = random.Random(7)
    j = judge("scopes: []\ndetections:\n  first_seen: null\n")
    # Every 60 s with +-10% jitter, about 500 bytes each: calling home.
    beacon_times = [1000.0 + 60 * i + rng.uniform(-6, 6) for i in range(12)]
    beacon = calls(beacon_times, [rng.randint(480, 520) for _ in range(12)])
    alerts = j.judge(beacon)
    assert [a.rule for a in alerts] == ["beaconing"]
    assert "regular intervals" in alerts[0].summary
    # People browsing: irregular gaps, sizes all over the place; a burst of API calls.
    browse_times = list(itertools.accumulate(rng.expovariate(1 / 90) for _ in range(60)))
    sizes = [rng.randint(300, 90_000) for _ in range(60)]
    browsing = calls([5000 + t for t in browse_times], sizes, name="news.example")
    burst = calls([9000 + 0.2 * i for i in range(40)], [700] * 40, name="api.vendor.example")
    assert j.judge(browsing) == [] and j.judge(burst) == []


def answers(client: str, names: list[str], qtype: str = "A") -> list[DnsAnswer]:
    return [DnsAnswer(f"D{client}{i}", 1000.0 + i, client, "10.0.0.53", name, qtype, "NOERROR",
                      (), None, ()) for i, name in enumerate(names)]  # fmt: skip


def test_a_dns_tunnel_is_found_and_a_cdns_subdomains_are_not() -> None:
    rng = random.Random(3)
    j = judge("scopes: []\n")

    def chunk(n: int) -> str:
        return base64.b32encode(rng.randbytes(n)).decode().rstrip("=").lower()

    tunnel = answers("172.17.0.5", [f"{chunk(30)}.{chunk(10)}.t.exfil.example" for _ in range(60)])
    [alert] = j.judge_dns(tunnel)
    assert alert.rule == "dns tunnel" and alert.flow is None
    assert "DNS under exfil.example" in alert.summary and alert.source == "172.17.0.5"
    # Many hosts of a CDN and of a busy site, from one client: short, word-like or short hex.
    cdn = [f"d{rng.randbytes(6).hex()}.cloudfront.net" for _ in range(80)]
    site = [f"{w}-{i}.static.news.example" for i in range(20) for w in ("img", "api", "cdn", "ads")]
    assert j.judge_dns(answers("172.17.0.6", cdn)) == []
    assert j.judge_dns(answers("172.17.0.6", site)) == []
    txt = answers("172.17.0.7", [f"{i}.c2.example" for i in range(60)], qtype="TXT")
    assert [a.rule for a in j.judge_dns(txt)] == ["dns tunnel"]


def test_uploads_add_up_per_source_over_the_window() -> None:
    """Many small flows, none over the per-flow limit, together over the per-source one;
    interim records of one flow are not counted twice."""
    j = judge("scopes: []\ndetections:\n  first_seen: null\n  beaconing: null\n"
              "  upload: {max_bytes_per_source: 10000000, window_minutes: 10}\n")  # fmt: skip
    running = flow(uid="R", first_seen=0.0, last_seen=10.0, bytes_out=4_000_000, closed=False)
    assert j.judge([running]) == []
    assert j.judge([dataclasses.replace(running, last_seen=20.0, bytes_out=6_000_000)]) == []
    more = [flow(uid=f"S{i}", first_seen=30.0 + i, last_seen=31.0 + i, bytes_out=1_500_000)
            for i in range(3)]  # fmt: skip
    alerts = j.judge(more)  # 6.0 + 1.5 + 1.5 = 9 MB, then 10.5 MB: over
    assert [a.rule for a in alerts] == ["upload (source)"] and "ollama sent 10.5 MB" in alerts[
        0
    ].summary
    assert j.judge([flow(uid="S9", first_seen=40.0, last_seen=41.0, bytes_out=5_000_000)]) == []
    later = flow(uid="T1", first_seen=700.0, last_seen=701.0, bytes_out=11_000_000)
    assert [a.rule for a in j.judge([later])] == ["upload (source)"]  # a new window


COUNTRY_RULES = """
scopes:
  - name: no-china
    deny: [{countries: [CN]}]
  - name: vendor
    allow: [{asns: [209]}]
"""


def test_rules_by_place_without_a_geoip_database_are_named_not_silently_dead(
    tmp_path: Path,
) -> None:
    """A deny by country matches no flow without a GeoIP database: it would let China through
    unseen. `egresswatch policy check` (and the daemon's log) say so; with the databases, not."""
    policy = tmp_path / "policy.yaml"
    policy.write_text(COUNTRY_RULES)
    empty = tmp_path / "no-geoip"
    empty.mkdir()
    for paths, expected in ((empty, ["no-china", "vendor"]), (MAXMIND_TEST_DATA, [])):
        config = tmp_path / "ew.toml"
        config.write_text(f'[geoip]\npaths = ["{paths}"]\n')
        done = subprocess.run([sys.executable, "-m", "egresswatch", "policy", "check", str(policy),
                               "--config", str(config)], capture_output=True, text=True,
                              check=True)  # fmt: skip
        warned = [line for line in done.stdout.splitlines() if line.startswith("warning:")]
        assert [w.split("'")[1] for w in warned] == expected, done.stdout
    gaps = parse_policy(COUNTRY_RULES).geoip_gaps({"city", "asn"})
    assert gaps == []
    assert len(parse_policy(COUNTRY_RULES).geoip_gaps({"asn"})) == 1
