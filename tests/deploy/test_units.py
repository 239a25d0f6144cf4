"""The systemd units' hardening, as systemd itself scores it (`systemd-analyze security`,
offline: no running systemd needed), and the scores docs/deploy.md quotes."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNITS = sorted((ROOT / "deploy" / "systemd").glob("*.service"))


@pytest.mark.parametrize("unit", UNITS, ids=[u.name for u in UNITS])
def test_each_unit_scores_ok_or_better_and_the_docs_say_so(unit: Path) -> None:
    done = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", str(unit)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d) (\w+)", done.stdout)
    assert found, done.stdout + done.stderr
    score, level = float(found.group(1)), found.group(2)
    assert level in ("PERFECT", "SAFE", "OK") and score <= 4.9, done.stdout
    assert f"`{unit.name}`: {found.group(1)} {level}" in (ROOT / "docs/deploy.md").read_text()
