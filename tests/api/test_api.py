"""The REST API served by a real uvicorn (`egresswatch serve`) over a SQLite file the real
pipeline filled from a peer capture: pages that add up to the CLI's listing, problem+json
errors, tokens."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from egresswatch.store import Database
from tests.store.conftest import fresh_postgres_database, postgres_url  # noqa: F401 - fixture
from tests.store.test_alerts_store import T0, alert

CAPTURE = Path(__file__).resolve().parents[2].parent / "shared/peers/zeek/teredo/Teredo.pcap"


@dataclass
class Api:
    url: str
    database: str
    """The database's URL."""

    def get(self, path: str, token: str | None = None) -> tuple[int, Any, str]:
        return self.call("GET", path, token)

    def call(self, method: str, path: str, token: str | None = None) -> tuple[int, Any, str]:
        request = urllib.request.Request(self.url + path, method=method)
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as r:
                return r.status, json.loads(r.read()), r.headers.get("Content-Type", "")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read()), exc.headers.get("Content-Type", "")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(tmp_path: Path, db: Path | str, config: str = "") -> Iterator[Api]:
    """`egresswatch serve` on a free port over ``db`` (a SQLite file, or any database URL)."""
    url = db if isinstance(db, str) else f"sqlite:///{db}"
    port = free_port()
    (tmp_path / "api.toml").write_text(config)
    proc = subprocess.Popen(
        [sys.executable, "-m", "egresswatch", "serve", "--listen", f"127.0.0.1:{port}",
         "--db", url, "--config", str(tmp_path / "api.toml")],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    api = Api(f"http://127.0.0.1:{port}", url)
    deadline = time.monotonic() + 20
    while True:
        try:
            urllib.request.urlopen(api.url + "/healthz", timeout=1).read()
            break
        except OSError:
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr
            time.sleep(0.1)
    try:
        yield api
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    assert CAPTURE.exists(), CAPTURE
    db = tmp_path_factory.mktemp("api") / "api.db"
    subprocess.run([sys.executable, "-m", "egresswatch", "replay", str(CAPTURE), "--db",
                    f"sqlite:///{db}", "--quiet"], check=True)  # fmt: skip
    return db


@pytest.fixture
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new database of the backend ``request.param`` names."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.db'}"
    return fresh_postgres_database(request.getfixturevalue("postgres_url"))


BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(scope="module", params=BACKENDS)
def url(
    request: pytest.FixtureRequest, replayed: Path, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """The replayed capture's database, on SQLite and then on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{replayed}"
    url = fresh_postgres_database(request.getfixturevalue("postgres_url"))
    subprocess.run([sys.executable, "-m", "egresswatch", "replay", str(CAPTURE), "--db", url,
                    "--quiet"], check=True)  # fmt: skip
    return url


@pytest.fixture
def api(url: str, tmp_path: Path) -> Iterator[Api]:
    yield from serve(tmp_path, url)


def test_pages_follow_their_cursors_to_exactly_the_clis_listing(api: Api) -> None:
    listing = [sys.executable, "-m", "egresswatch", "flows", "--json", "--limit", "0"]
    cli = subprocess.run([*listing, "--db", api.database], capture_output=True,
                         text=True, check=True).stdout.splitlines()  # fmt: skip
    expected = [json.loads(line) for line in cli]
    assert len(expected) > 3
    items, cursor, pages = [], "", 0
    while cursor is not None:
        status, body, kind = api.get(
            f"/api/v1/flows?limit=2{'&cursor=' + cursor if cursor else ''}"
        )
        assert status == 200 and kind == "application/json"
        items += body["items"]
        cursor, pages = body["next_cursor"], pages + 1
    assert items == expected and pages == (len(expected) + 1) // 2
    status, one, _ = api.get(f"/api/v1/flows/{expected[0]['uid']}")
    assert status == 200 and one == expected[0]


def test_errors_are_problem_json(api: Api) -> None:
    status, body, kind = api.get("/api/v1/flows/Cnosuchflow")
    assert (status, kind, body["status"]) == (404, "application/problem+json", 404)
    status, body, _ = api.get("/api/v1/flows?limit=0")
    assert status == 422 and "limit" in body["detail"]
    status, body, _ = api.get("/api/v1/flows?cursor=garbage")
    assert status == 422 and "cursor" in body["detail"]


def test_tokens_read_only_and_read_write(replayed: Path, tmp_path: Path) -> None:
    config = ('[[api.tokens]]\ntoken = "dashboard-read"\naccess = "read"\n'
              '[[api.tokens]]\ntoken = "owner-write"\naccess = "write"\n')  # fmt: skip
    for api in serve(tmp_path, replayed, config):
        assert api.get("/api/v1/flows")[0] == 401
        assert api.get("/api/v1/flows", "wrong")[0] == 401
        assert api.get("/api/v1/flows", "dashboard-read")[0] == 200
        assert api.call("POST", "/api/v1/alerts/Anone/ack", "dashboard-read")[0] == 403
        assert api.call("POST", "/api/v1/alerts/Anone/ack", "owner-write")[0] == 404


def test_a_public_address_without_tokens_is_refused(replayed: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "egresswatch", "serve", "--listen",
                           "0.0.0.0:8787", "--db", f"sqlite:///{replayed}"],
                          capture_output=True, text=True, timeout=30, check=False)  # fmt: skip
    assert done.returncode == 2 and "add a token" in done.stderr


@pytest.mark.parametrize("empty_database", BACKENDS, indirect=True)
def test_alerts_listed_acknowledged_and_their_evidence(empty_database: str, tmp_path: Path) -> None:
    database = Database(empty_database)
    database.upgrade()
    database.write_alerts([alert(T0, "1")], 3600)
    database.close()
    for api in serve(tmp_path, empty_database):
        status, body, _ = api.get("/api/v1/alerts?acknowledged=false")
        assert status == 200 and [a["uid"] for a in body["items"]] == ["A1"]
        assert body["items"][0]["flow"]["container_name"] == "ollama"
        assert api.call("POST", "/api/v1/alerts/A1/ack")[0] == 200
        assert api.get("/api/v1/alerts?acknowledged=false")[1]["items"] == []
        assert [a["uid"] for a in api.get("/api/v1/alerts?acknowledged=true")[1]["items"]] == ["A1"]
        assert api.get("/api/v1/alerts/A1/pcap")[0] == 404  # no packets kept for this one


def test_a_dashboard_on_a_configured_origin_may_call_the_api_and_others_may_not(
    tmp_path: Path, replayed: Path
) -> None:
    """CORS: a browser dashboard served from an origin in ``api.cors_origins`` may read the API
    (its preflight is allowed, the answers name it); any other origin is not."""
    for api in serve(tmp_path, replayed, '[api]\ncors_origins = ["https://grafana.example"]\n'):
        for origin, allowed in (("https://grafana.example", True), ("https://evil.example", False)):
            asks = {"Origin": origin, "Access-Control-Request-Method": "GET"}
            preflight = urllib.request.Request(api.url + "/api/v1/flows", method="OPTIONS",
                                               headers=asks)  # fmt: skip
            try:
                with urllib.request.urlopen(preflight) as r:
                    status = r.status
            except urllib.error.HTTPError as e:
                status = e.code
            assert (status == 200) is allowed, (origin, status)
            read = urllib.request.Request(api.url + "/api/v1/flows", headers={"Origin": origin})
            with urllib.request.urlopen(read) as r:
                said = r.headers.get("Access-Control-Allow-Origin")
            assert said == (origin if allowed else None), (origin, said)
