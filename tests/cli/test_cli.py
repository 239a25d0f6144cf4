"""The command line as a user runs it: replay a capture into SQLite, then query the flows."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from scapy.utils import wrpcapng

from egresswatch.cli.main import main
from egresswatch.store.migrate import HEAD
from tests.packets import handshake_and_close, udp, write_pcap

CONTRACT = [
    "uid",
    "first_seen",
    "last_seen",
    "interface",
    "direction",
    "protocol",
    "src_ip",
    "src_port",
    "dst_ip",
    "dst_port",
    "packets_out",
    "bytes_out",
    "packets_in",
    "bytes_in",
    "state",
    "history",
    "server_name",
    "name_source",
    "country",
    "city",
    "asn",
    "as_org",
    "container_id",
    "container_name",
    "image",
    "pid",
    "process",
    "exe",
    "cmdline",
    "user",
    "user_id",
]


@pytest.fixture
def wikipedia(peers: Path) -> Path:
    return peers / "zeek" / "wikipedia" / "wikipedia.pcap"


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ew.db'}"


def flows_json(capsys: pytest.CaptureFixture[str], *args: str) -> list[dict[str, object]]:
    capsys.readouterr()
    assert main(["flows", "--json", *args]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_replay_then_flows(wikipedia: Path, db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", str(wikipedia), "--db", db]) == 0
    summary = capsys.readouterr().out
    assert "136 packets" in summary and "34 flows written" in summary
    assert "skipped 10 packets: not_ip 10" in summary
    rows = flows_json(capsys, "--db", db, "--limit", "0")
    assert len(rows) == 34
    assert all(set(CONTRACT) <= set(r) for r in rows)
    assert rows[0]["last_seen"] >= rows[-1]["last_seen"]  # newest first
    assert str(rows[0]["first_seen"]).endswith("Z")
    assert len(flows_json(capsys, "--db", db)) == 34  # default limit 50
    assert len(flows_json(capsys, "--db", db, "--limit", "5")) == 5


def test_filters(wikipedia: Path, db: str, capsys: pytest.CaptureFixture[str]) -> None:
    main(["replay", str(wikipedia), "--db", db, "--quiet"])
    http = flows_json(capsys, "--db", db, "--limit", "0", "--protocol", "tcp", "--port", "80")
    assert http and all(r["protocol"] == "tcp" and r["dst_port"] == 80 for r in http)
    wikimedia = flows_json(capsys, "--db", db, "--limit", "0", "--dst", "208.80.152.0/24")
    assert wikimedia and all(str(r["dst_ip"]).startswith("208.80.152.") for r in wikimedia)
    assert flows_json(capsys, "--db", db, "--limit", "0", "--dst", "208.80.152.3") == [
        r for r in wikimedia if r["dst_ip"] == "208.80.152.3"
    ]
    v6 = flows_json(capsys, "--db", db, "--limit", "0", "--dst", "ff02::/16")
    assert v6 and all(str(r["dst_ip"]).startswith("ff02:") for r in v6)
    internal = flows_json(capsys, "--db", db, "--limit", "0", "--direction", "internal")
    assert internal and all(r["direction"] == "internal" for r in internal)
    late = flows_json(capsys, "--db", db, "--limit", "0", "--since", "2011-03-18T19:06:12Z")
    early = flows_json(capsys, "--db", db, "--limit", "0", "--until", "2011-03-18T19:06:12Z")
    assert late and early and len(late) < 34 and len(early) < 34
    assert flows_json(capsys, "--db", db, "--since", "1h") == []  # the capture is from 2011


def test_table_output(wikipedia: Path, db: str, capsys: pytest.CaptureFixture[str]) -> None:
    main(["replay", str(wikipedia), "--db", db, "--quiet"])
    capsys.readouterr()
    assert main(["flows", "--db", db, "--limit", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["LAST", "SEEN", "(UTC)"] and len(lines) == 4


def test_pcapng_and_gzip_give_the_same_flows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    packets = [*handshake_and_close(), udp()]
    plain = write_pcap(tmp_path / "c.pcap", packets)
    ng = tmp_path / "c.pcapng"
    wrpcapng(str(ng), packets)
    gz = tmp_path / "c.pcap.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    results = []
    for i, path in enumerate((plain, ng, gz)):
        db = f"sqlite:///{tmp_path / f'{i}.db'}"
        assert main(["replay", str(path), "--db", db, "--quiet", "--interface", "eth0"]) == 0
        rows = flows_json(capsys, "--db", db, "--limit", "0")
        results.append(
            sorted((r["protocol"], r["packets_out"], r["bytes_out"], r["state"]) for r in rows)
        )
    assert results[0] == results[1] == results[2] == [("tcp", 6, 258, "SF"), ("udp", 1, 48, "S0")]


def test_replaying_twice_does_not_duplicate(
    wikipedia: Path, db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["replay", str(wikipedia), "--db", db, "--quiet"])
    main(["replay", str(wikipedia), "--db", db, "--quiet"])
    assert len(flows_json(capsys, "--db", db, "--limit", "0")) == 34


def test_damaged_capture_keeps_what_was_read(
    wikipedia: Path, tmp_path: Path, db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(wikipedia.read_bytes()[:20000])  # ends in the middle of a frame
    assert main(["replay", str(cut), "--db", db]) == 0
    assert len(flows_json(capsys, "--db", db, "--limit", "0")) > 20


def test_not_a_capture_file(tmp_path: Path, db: str, capsys: pytest.CaptureFixture[str]) -> None:
    bogus = tmp_path / "notes.txt"
    bogus.write_text("hello")
    assert main(["replay", str(bogus), "--db", db]) == 2
    assert "is not a pcap or pcapng file" in capsys.readouterr().err
    assert main(["replay", str(tmp_path / "missing.pcap"), "--db", db]) == 2
    assert "cannot open capture file" in capsys.readouterr().err


def test_bad_filter_is_named(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["flows", "--db", db, "--since", "yesterday"]) == 2
    assert "'yesterday' is neither a duration" in capsys.readouterr().err
    assert main(["flows", "--db", db, "--dst", "10.0.0.0/33"]) == 2


def test_bad_config_names_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "egresswatch.toml"
    config.write_text("[flows]\nactive_timeout = -5\n")
    assert main(["flows", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "flows.active_timeout" in err and "EGRESSWATCH_FLOWS__ACTIVE_TIMEOUT" in err


def test_database_from_the_environment(
    wikipedia: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("EGRESSWATCH_DB", f"sqlite:///{tmp_path / 'env.db'}")
    assert main(["replay", str(wikipedia), "--quiet"]) == 0
    assert (tmp_path / "env.db").exists()
    assert len(flows_json(capsys, "--limit", "0")) == 34


def test_db_upgrade_and_revision(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "revision", "--db", db]) == 0
    assert "empty" in capsys.readouterr().out
    assert main(["db", "upgrade", "--db", db]) == 0
    assert "(head)" in capsys.readouterr().out
    assert main(["db", "revision", "--db", db]) == 0
    assert capsys.readouterr().out.strip() == HEAD


def test_installed_command(wikipedia: Path, db: str) -> None:
    """The console script, as a user's shell runs it."""
    exe = shutil.which("egresswatch", path=str(Path(sys.executable).parent))
    assert exe, "egresswatch is not installed in this environment"
    done = subprocess.run(
        [exe, "replay", str(wikipedia), "--db", db], capture_output=True, text=True, check=True
    )
    assert "34 flows written" in done.stdout
    listing = subprocess.run(
        [exe, "flows", "--db", db, "--json", "--limit", "0"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert len(listing.stdout.splitlines()) == 34


def test_one_or_two_processes_give_the_same_flows(
    peers: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pcap = peers / "zeek" / "teredo" / "Teredo.pcap"
    results = []
    for workers in ("1", "2"):
        db = f"sqlite:///{tmp_path / f'w{workers}.db'}"
        assert main(["replay", str(pcap), "--db", db, "--quiet", "--workers", workers]) == 0
        results.append(
            sorted(
                json.dumps(r, sort_keys=True)
                for r in flows_json(capsys, "--db", db, "--limit", "0")
            )
        )
    assert results[0] == results[1] and len(results[0]) == 21
