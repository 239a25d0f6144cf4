"""What is posted: a Slack Block Kit message, a digest of many, or the alert as signed JSON."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any

_ICON = {"low": ":information_source:", "medium": ":warning:", "high": ":rotating_light:",
         "critical": ":rotating_light:"}  # fmt: skip
_FIELDS_MAX = 10  # Slack: at most 10 fields in a section
_TEXT_MAX = 3000  # Slack: at most 3000 characters in a section's text


def slack_message(alert: dict[str, Any]) -> dict[str, Any]:
    """One alert as a Slack incoming-webhook message: ``text`` (notifications, and clients
    without blocks) and blocks with severity, container, process, destination, place, bytes,
    rule and uid."""
    flow = alert["flow"]
    if flow:
        destination = f"{flow['dst_ip']}:{flow['dst_port']}"
        if flow.get("server_name"):
            destination = f"{flow['server_name']} ({destination})"
        place = " ".join(p for p in (flow.get("country") or "", _asn(flow)) if p) or "unknown"
        container = flow.get("container_name") or (flow.get("container_id") or "")[:12] or "host"
        process = f"{flow['process']} (pid {flow['pid']})" if flow.get("process") else "unknown"
        volume = f"{flow['bytes_out']:,} B / {flow['bytes_in']:,} B"
    else:  # raised by DNS answers or Docker, not by one flow: the summary says who and what
        destination, place, process, volume = "see summary", "-", "-", "-"
        container = alert.get("container") or "-"
    fields = [
        ("Severity", alert["severity"]),
        ("Rule", alert["rule"]),
        ("Container", container),
        ("Process", process),
        ("Destination", destination),
        ("Country / AS", place),
        ("Sent / received", volume),
        ("First seen", _time(alert["time"])),
        ("Count", str(alert.get("count", 1))),
        ("Alert", alert["uid"]),
    ]
    title = f"{_ICON.get(alert['severity'], '')} egresswatch: {alert['rule']}".strip()
    return {
        "text": f"egresswatch {alert['severity']}: {alert['summary']}"[:_TEXT_MAX],
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": _escaped(alert["summary"])[:_TEXT_MAX]},
            },
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": f"*{name}*\n{_escaped(value)}"[:2000]}
                    for name, value in fields[:_FIELDS_MAX]
                ],
            },
        ],
    }


def slack_digest(alerts: list[dict[str, Any]]) -> dict[str, Any]:
    """Many alerts at once (a flood) as one message: counts by rule, the first few summaries."""
    by_rule: dict[str, int] = {}
    for a in alerts:
        by_rule[a["rule"]] = by_rule.get(a["rule"], 0) + 1
    lines = [f"• {count} x {_escaped(rule)}" for rule, count in sorted(by_rule.items())]
    sample = "\n".join(f"• {_escaped(a['summary'])}" for a in alerts[:5])
    text = f"egresswatch: {len(alerts)} alerts at once (a digest; `egresswatch alerts` lists all)"
    return {
        "text": text,
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": text[:150]}},
            {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)[:_TEXT_MAX]}},
            {"type": "section", "text": {"type": "mrkdwn", "text": sample[:_TEXT_MAX]}},
        ],
    }


def json_body(alerts: list[dict[str, Any]]) -> bytes:
    """The generic webhook's body: ``{"alerts": [...]}`` with every field of each alert."""
    return json.dumps({"alerts": alerts}, separators=(",", ":"), sort_keys=True).encode()


def signature(secret: str, body: bytes) -> str:
    """``sha256=<hex>``: HMAC-SHA256 of the body, for X-Egresswatch-Signature."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _escaped(text: str) -> str:
    """Names come from the traffic (SNI, Host, DNS): no ``<!channel>`` or disguised links."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _asn(flow: dict[str, Any]) -> str:
    if not flow.get("asn"):
        return ""
    return f"AS{flow['asn']}" + (f" {flow['as_org']}" if flow.get("as_org") else "")


def _time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
