"""How flows and DNS answers look on a terminal and in JSON Lines."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

from egresswatch.timestamps import rfc3339

_TIME_FIELDS = ("first_seen", "last_seen")


def flow_json(row: dict[str, Any]) -> str:
    """One flow as a JSON object: the record's field names, times in RFC 3339 UTC."""
    out = dict(row)
    out["duration"] = round(row["last_seen"] - row["first_seen"], 6)
    for name in _TIME_FIELDS:
        out[name] = rfc3339(row[name])
    return json.dumps(out, separators=(",", ":"))


def human_bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def _endpoint(ip: str, port: int, proto: str) -> str:
    host = f"[{ip}]" if ":" in ip else ip
    return host if proto not in ("tcp", "udp") else f"{host}:{port}"


_COLUMNS = (
    "LAST SEEN (UTC)",
    "DURATION",
    "DIRECTION",
    "CONTAINER",
    "PROTO",
    "SOURCE",
    "DESTINATION",
    "WHERE",
    "OUT",
    "IN",
    "STATE",
)


def flow_table(rows: Iterable[dict[str, Any]], out: TextIO) -> int:
    """Write an aligned table; returns how many flows it showed."""
    lines = []
    for r in rows:
        dest = _endpoint(r["dst_ip"], r["dst_port"], r["protocol"])
        if r.get("server_name"):
            dest += f" ({r['server_name']})"
        lines.append(
            (
                rfc3339(r["last_seen"])[:19].replace("T", " "),
                f"{r['last_seen'] - r['first_seen']:.1f}s",
                r["direction"],
                r.get("container_name") or "-",
                r["protocol"],
                _endpoint(r["src_ip"], r["src_port"], r["protocol"]),
                dest,
                _place(r),
                f"{human_bytes(r['bytes_out'])}/{r['packets_out']}p",
                f"{human_bytes(r['bytes_in'])}/{r['packets_in']}p",
                r["state"] + ("" if r["closed"] else " (open)"),
            )
        )
    return _table(_COLUMNS, lines, out, "no flows match")


def _place(r: dict[str, Any]) -> str:
    """Country and AS of the remote end: ``CN AS4837``, ``-`` when unknown."""
    parts = [r.get("country") or "", f"AS{r['asn']}" if r.get("asn") else ""]
    return " ".join(p for p in parts if p) or "-"


_DNS_COLUMNS = ("TIME (UTC)", "CLIENT", "RESOLVER", "QUERY", "TYPE", "RCODE", "ANSWERS")


def dns_json(row: dict[str, Any]) -> str:
    """One DNS answer as a JSON object, the time in RFC 3339 UTC."""
    return json.dumps({**row, "time": rfc3339(row["time"])}, separators=(",", ":"))


def dns_table(rows: Iterable[dict[str, Any]], out: TextIO) -> int:
    """Write an aligned table of DNS answers; returns how many it showed."""
    lines = [
        (
            rfc3339(r["time"])[:19].replace("T", " "),
            r["client"],
            r["resolver"],
            r["query"],
            r["qtype"],
            r["rcode"],
            ", ".join(r["answers"]) or "-",
        )
        for r in rows
    ]
    return _table(_DNS_COLUMNS, lines, out, "no DNS answers match")


def _table(
    columns: tuple[str, ...], lines: Sequence[tuple[str, ...]], out: TextIO, empty: str
) -> int:
    if not lines:
        out.write(empty + "\n")
        return 0
    widths = [max(len(c), *(len(line[i]) for line in lines)) for i, c in enumerate(columns)]
    for line in (columns, *lines):
        out.write("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())
        out.write("\n")
    return len(lines)


_ALERT_COLUMNS = ("LAST (UTC)", "SEVERITY", "COUNT", "ACK", "RULE", "SUMMARY", "UID")


def alert_json(row: dict[str, Any]) -> str:
    out = {**row, "time": rfc3339(row["time"]), "last_time": rfc3339(row["last_time"])}
    return json.dumps(out, separators=(",", ":"))


def alert_table(rows: Iterable[dict[str, Any]], out: TextIO) -> int:
    lines = [
        (
            rfc3339(r["last_time"])[:19].replace("T", " "),
            r["severity"],
            str(r["count"]),
            "yes" if r["acknowledged"] else "-",
            r["rule"],
            r["summary"],
            r["uid"],
        )
        for r in rows
    ]
    return _table(_ALERT_COLUMNS, lines, out, "no alerts")
