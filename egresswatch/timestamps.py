"""Times as people write them (RFC 3339, "2h ago") and as the store keeps them (epoch seconds)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def rfc3339(ts: float) -> str:
    """Epoch seconds as RFC 3339 UTC with microseconds: ``2026-11-23T10:00:00.123456Z``."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str, now: float) -> float:
    """``2h``/``30m``/``7d`` (that long before ``now``) or an RFC 3339 time, as epoch seconds.

    A time without a zone is taken as UTC. Raises ValueError with a message for people.
    """
    match = _DURATION.match(text)
    if match:
        return now - float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    try:
        parsed = datetime.fromisoformat(text.strip().replace("z", "Z"))
    except ValueError:
        raise ValueError(
            f"{text!r} is neither a duration (30m, 2h, 7d) nor an RFC 3339 time "
            "(2026-11-23T10:00:00Z)"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()
