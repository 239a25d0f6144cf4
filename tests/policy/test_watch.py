"""The daemon's policy in force: loaded, watched for changes, reloaded (a broken file keeps the
old one), with a warning for rules by place that no GeoIP database can match."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from egresswatch.policy.watch import PolicyWatch
from tests.policy.test_policy import COUNTRY_RULES


def test_a_policy_is_watched_reloaded_and_a_broken_one_keeps_the_old(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(COUNTRY_RULES)
    watch = PolicyWatch({"asn"})  # an ASN database only: the country rule cannot match
    with caplog.at_level(logging.WARNING):
        policy = watch.load(path)
    assert [s.name for s in policy.scopes] == ["no-china", "vendor"]
    assert [r.getMessage() for r in caplog.records] == [
        "policy: scope 'no-china' names countries, and there is no GeoIP City or Country "
        "database: those rules match nothing (docs/geoip.md)"
    ]
    assert not watch.changed(path)

    path.write_text("scopes: [{name: only]\n")  # broken
    os.utime(path, (1, 1))
    assert watch.changed(path)
    assert watch.reload(path, "test") is None
    assert not watch.changed(path)  # not read again until it changes again

    path.write_text("scopes: [{name: only}]\n")
    os.utime(path, (2, 2))
    watch.geoip_kinds = {"city", "asn"}
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        reloaded = watch.reload(path, "test")
    assert reloaded is not None and [s.name for s in reloaded.scopes] == ["only"]
    assert caplog.records == []
    assert watch.changed(tmp_path / "other.yaml")  # another file configured
