"""The dashboard views over a real database the real pipeline filled (a crafted capture with
names and MaxMind's test GeoIP databases), on SQLite and on PostgreSQL: every flow filter
selects what the full listing says it should, /destinations adds up to the flows it groups,
/containers reports a container's posture and egress."""

from __future__ import annotations

import urllib.parse
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from egresswatch.attribution.containers import Container
from egresswatch.cli.main import main
from egresswatch.store import Database
from tests.api.test_api import Api, serve
from tests.cli.test_names_cli import GEOIP, REQUEST, client_hello, connection, dns_answer
from tests.packets import write_pcap
from tests.store.conftest import fresh_postgres_database, postgres_url  # noqa: F401 - fixture
from tests.store.test_flows_store import flow

CID = "5989bf329b64f6e5b05eaa36d782da82cfe77fe1ab4dff61131640062a2023d6"


def capture(path: Path) -> Path:
    """Several connections each to a Swedish, a Chinese and a US server, of growing sizes."""
    packets = [
        dns_answer("models.example", ("A", "89.160.20.112")),
        dns_answer("telemetry.vendor.cn", ("A", "175.16.199.20")),
    ]
    for i in range(4):
        packets += connection("89.160.20.112", 42000 + i, client_hello("weights.example"))
        packets += connection("175.16.199.20", 43000 + i, b"\x00" * (40 + 500 * i))
        packets += connection("216.160.83.56", 44000 + i, REQUEST + b"x" * (100 * i), 80)
    return write_pcap(path, packets)


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    tmp = tmp_path_factory.mktemp("views")
    if request.param == "sqlite":
        url = f"sqlite:///{tmp / 'ew.db'}"
    else:
        url = fresh_postgres_database(request.getfixturevalue("postgres_url"))
    pcap = capture(tmp / "views.pcap")
    assert main(["replay", str(pcap), "--db", url, "--quiet", "--geoip-dir", str(GEOIP)]) == 0
    return url


@pytest.fixture(scope="module")
def api(url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    yield from serve(tmp_path_factory.mktemp("serve"), url)


def everything(api: Api, path: str, **query: Any) -> list[dict[str, Any]]:
    """Every item of a list endpoint, following the cursors."""
    items, cursor = [], None
    while True:
        params = {**query, "limit": 1000, **({"cursor": cursor} if cursor else {})}
        status, body, _ = api.get(f"{path}?{urllib.parse.urlencode(params)}")
        assert status == 200, body
        items += body["items"]
        cursor = body.get("next_cursor")
        if not cursor:
            return items


FILTERS: list[tuple[dict[str, Any], Callable[[dict[str, Any]], bool]]] = [
    ({"server_name": "*.example"}, lambda f: (f["server_name"] or "").endswith(".example")),
    ({"server_name": "WEIGHTS.example"}, lambda f: f["server_name"] == "weights.example"),
    ({"country": "cn"}, lambda f: f["country"] == "CN"),
    ({"asn": 29518}, lambda f: f["asn"] == 29518),
    ({"min_bytes_out": 1000}, lambda f: f["bytes_out"] >= 1000),
    ({"process": "ollama"}, lambda f: f["process"] == "ollama"),
    ({"country": "US", "port": 80}, lambda f: f["country"] == "US" and f["dst_port"] == 80),
    ({"since": "2000-01-01T00:00:00Z"}, lambda f: True),
    ({"until": "2000-01-01T00:00:00Z"}, lambda f: False),
]


@pytest.mark.parametrize(("query", "wanted"), FILTERS, ids=[str(q) for q, _ in FILTERS])
def test_each_flow_filter_selects_what_the_full_listing_says(
    api: Api, query: dict[str, Any], wanted: Callable[[dict[str, Any]], bool]
) -> None:
    every = everything(api, "/api/v1/flows")
    assert len(every) >= 12
    expected = [f["uid"] for f in every if wanted(f)]
    assert [f["uid"] for f in everything(api, "/api/v1/flows", **query)] == expected
    if query.get("country") == "cn":
        assert len(expected) == 4  # the capture's four connections to 175.16.199.20


def test_destinations_add_up_to_the_flows_they_group(api: Api) -> None:
    every = everything(api, "/api/v1/flows")
    keys: dict[str, Callable[[dict[str, Any]], Any]] = {
        "server_name": lambda f: (f["server_name"], None if f["server_name"] else f["dst_ip"]),
        "country": lambda f: f["country"],
        "asn": lambda f: f["asn"],
        "container": lambda f: f["container_name"],
        "process": lambda f: f["process"],
    }
    for group_by, key in keys.items():
        expected: dict[Any, list[int]] = defaultdict(lambda: [0, 0, 0])
        for f in every:
            t = expected[key(f)]
            t[0], t[1], t[2] = t[0] + 1, t[1] + f["bytes_out"], t[2] + f["bytes_in"]
        status, body, _ = api.get(f"/api/v1/destinations?group_by={group_by}&since=36500d")
        assert status == 200, body
        found = {}
        for item in body["items"]:
            k = (
                (item["server_name"], item["dst_ip"])
                if group_by == "server_name"
                else item[group_by]
            )
            found[k] = [item["flows"], item["bytes_out"], item["bytes_in"]]
        assert found == dict(expected), group_by
        sizes = [item["bytes_out"] for item in body["items"]]
        assert sizes == sorted(sizes, reverse=True)  # the top of the table first
    status, body, _ = api.get("/api/v1/destinations?group_by=asn&since=36500d")
    assert {i["asn"]: i["as_org"] for i in body["items"]}[29518]  # the network's name too
    assert api.get("/api/v1/destinations")[1]["items"] == []  # default: the last 24 h
    assert api.get("/api/v1/destinations?group_by=city")[0] == 422


def test_containers_show_their_posture_and_their_egress(url: str, api: Api) -> None:
    database = Database(url)
    try:
        risky = Container(id=CID, name="ollama", image="ollama/ollama:latest",
                          network_mode="host", privileged=True, docker_socket=True,
                          cap_add=frozenset({"NET_ADMIN"}))  # fmt: skip
        database.write_containers([(risky, 1000.0), (risky, 2000.0)])
        database.write_flows([flow("Cfromollama", container_name="ollama", country="CN",
                                   bytes_out=12_345, bytes_in=678)])  # fmt: skip
    finally:
        database.close()
    [ollama] = [c for c in everything(api, "/api/v1/containers") if c["name"] == "ollama"]
    assert ollama["container_id"] == CID and ollama["image"] == "ollama/ollama:latest"
    assert ollama["first_seen"].startswith("1970-01-01T00:16:40")  # the earliest sighting
    assert ollama["posture"]["risks"] == ["privileged", "host_network", "docker_socket"]
    assert ollama["posture"]["cap_add"] == ["NET_ADMIN"]
    egress = ollama["egress"]
    assert (egress["flows"], egress["bytes_out"], egress["bytes_in"]) == (1, 12_345, 678)
    assert egress["countries"] == ["CN"] and egress["destinations"] == 1
