"""``egresswatch geoip status`` as an operator runs it: in-process, and as the installed command."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from egresswatch.cli.geoip import add_geoip_option, geoip_paths
from egresswatch.cli.main import main
from egresswatch.config import Settings
from tests.geo.mmdb import location, maxmind_test_db, write_mmdb

EGRESSWATCH = Path(sys.executable).parent / "egresswatch"


@pytest.fixture
def no_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty config file, so neither /etc/egresswatch nor the environment changes the paths."""
    for name in list(os.environ):
        if name.startswith("EGRESSWATCH_"):
            monkeypatch.delenv(name)
    config = tmp_path / "egresswatch.toml"
    config.write_text("")
    return config


def status(capsys: pytest.CaptureFixture[str], config: Path, *args: str) -> str:
    capsys.readouterr()
    assert main(["geoip", "status", "--config", str(config), *args]) == 0
    return capsys.readouterr().out


def test_status_with_databases(
    tmp_path: Path, no_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    maxmind_test_db("GeoLite2-City-Test", first)
    maxmind_test_db("GeoLite2-Country-Test", second)
    maxmind_test_db("GeoLite2-ASN-Test", second)
    (second / "broken.mmdb").write_bytes(b"not a database")
    out = status(capsys, no_config, "--geoip-dir", str(first), "--geoip-dir", str(second))
    lines = out.splitlines()
    assert lines[1].split() == [str(first), "directory"]
    assert lines[2].split() == [str(second), "directory"]
    databases = [line.split() for line in lines[lines.index("Databases:") + 1 :][:3]]
    assert [d[:4] for d in databases] == [
        ["in", "use", "city", "GeoLite2-City"],
        ["in", "use", "asn", "GeoLite2-ASN"],
        ["unused", "country", "GeoLite2-Country", "built"],
    ]
    assert databases[0][-1] == str(first / "GeoLite2-City-Test.mmdb")
    assert f"{second / 'broken.mmdb'}: not a valid MaxMind DB" in out
    assert "no GeoIP database found" not in out
    assert "country and city from GeoLite2-City built" in out


def test_status_without_databases(
    tmp_path: Path, no_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = status(capsys, no_config, "--geoip-dir", str(tmp_path / "missing"))
    assert f"{tmp_path / 'missing'}  missing" in out
    assert "  no GeoIP database found" in out
    assert "geoipupdate" in out and "DB-IP" in out and "never downloads" in out


def test_status_json(tmp_path: Path, no_config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_mmdb(tmp_path / "own.mmdb", "DBIP-Country-Lite", {"192.0.2.0/24": location("CN")})
    doc = json.loads(status(capsys, no_config, "--geoip-dir", str(tmp_path), "--json"))
    assert doc["found"] is True
    assert doc["paths"] == [{"path": str(tmp_path), "is": "directory"}]
    [db] = doc["databases"]
    assert db["kind"] == "country" and db["database_type"] == "DBIP-Country-Lite"
    assert db["in_use"] is True and db["ip_version"] == 6 and db["build_time"].endswith("Z")
    assert doc["problems"] == []
    assert "no ASN database" in doc["summary"]

    empty = json.loads(status(capsys, no_config, "--geoip-dir", str(tmp_path / "x"), "--json"))
    assert empty["found"] is False and empty["databases"] == []
    assert empty["summary"].startswith("No GeoIP database found")


def test_config_paths_are_the_default(
    tmp_path: Path, no_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    maxmind_test_db("GeoLite2-ASN-Test", tmp_path / "GeoIP")
    no_config.write_text(f'[geoip]\npaths = ["{tmp_path / "GeoIP"}"]\n')
    doc = json.loads(status(capsys, no_config, "--json"))
    assert [d["database_type"] for d in doc["databases"]] == ["GeoLite2-ASN"]


def test_option_helpers_for_other_commands(tmp_path: Path, no_config: Path) -> None:
    parser = argparse.ArgumentParser()
    add_geoip_option(parser)
    settings = Settings(geoip={"paths": [tmp_path / "configured"]})
    assert geoip_paths(parser.parse_args([]), settings) == [tmp_path / "configured"]
    args = parser.parse_args(["--geoip-dir", "/a", "--geoip-dir", "/b.mmdb"])
    assert geoip_paths(args, settings) == [Path("/a"), Path("/b.mmdb")]
    assert geoip_paths(argparse.Namespace(), settings) == [tmp_path / "configured"]


@pytest.mark.parametrize("with_databases", [True, False])
def test_installed_command(tmp_path: Path, no_config: Path, with_databases: bool) -> None:
    """The real console script in a child process, as an operator types it."""
    if with_databases:
        maxmind_test_db("GeoIP2-City-Test", tmp_path / "GeoIP")
        maxmind_test_db("GeoLite2-ASN-Test", tmp_path / "GeoIP")
    command = [str(EGRESSWATCH), "geoip", "status", "--config", str(no_config)]
    command += ["--geoip-dir", str(tmp_path / "GeoIP")]
    env = {k: v for k, v in os.environ.items() if not k.startswith("EGRESSWATCH_")}
    text = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60, check=True)
    assert text.stderr == ""
    as_json = subprocess.run(
        [*command, "--json"], capture_output=True, text=True, env=env, timeout=60, check=True
    )
    doc = json.loads(as_json.stdout)
    if with_databases:
        assert "GeoIP2-City" in text.stdout and "no GeoIP database found" not in text.stdout
        assert [d["kind"] for d in doc["databases"] if d["in_use"]] == ["city", "asn"]
    else:
        assert "no GeoIP database found" in text.stdout
        assert doc["found"] is False
