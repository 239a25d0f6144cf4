"""Times on the command line: durations and RFC 3339."""

from __future__ import annotations

import pytest

from egresswatch.timestamps import parse_time, rfc3339


@pytest.mark.parametrize(
    ("text", "seconds_ago"),
    [("90s", 90), ("30m", 1800), ("2h", 7200), ("1.5d", 129600), ("1w", 604800)],
)
def test_durations_count_back_from_now(text: str, seconds_ago: float) -> None:
    assert parse_time(text, now=1_000_000.0) == 1_000_000.0 - seconds_ago


def test_rfc3339_round_trip() -> None:
    assert rfc3339(1_700_000_000.25) == "2023-11-14T22:13:20.250000Z"
    assert parse_time("2023-11-14T22:13:20.25Z", now=0) == 1_700_000_000.25
    assert parse_time("2023-11-14T23:13:20.25+01:00", now=0) == 1_700_000_000.25
    assert parse_time("2023-11-14T22:13:20.25", now=0) == 1_700_000_000.25  # no zone: UTC


def test_nonsense_is_explained() -> None:
    with pytest.raises(ValueError, match="neither a duration"):
        parse_time("last tuesday", now=0)
