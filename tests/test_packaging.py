"""The installed package (the quickstart's non-editable install) has every module: each package
directory is listed in pyproject.toml, with the data files the code opens."""

from __future__ import annotations

import tomllib

from tests.conftest import REPO


def test_every_package_is_installed() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = {
        ".".join(init.parent.relative_to(REPO).parts)
        for init in (REPO / "egresswatch").rglob("__init__.py")
    }
    assert found <= listed, f"missing from pyproject.toml: {sorted(found - listed)}"
    data = config["package-data"]
    assert "default.yaml" in data["egresswatch.policy"]
    assert "bpf/connect.bpf.o" in data["egresswatch.attribution"]
