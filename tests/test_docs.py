"""The generated reference pages in docs/ match the code they are generated from."""

from __future__ import annotations

import importlib.util

import pytest

from tests.conftest import REPO

spec = importlib.util.spec_from_file_location("docs_generate", REPO / "docs" / "generate.py")
assert spec and spec.loader
generate = importlib.util.module_from_spec(spec)
spec.loader.exec_module(generate)


@pytest.mark.parametrize("page", sorted(generate.PAGES))
def test_reference_page_is_current(page: str) -> None:
    on_disk = (REPO / "docs" / page).read_text()
    assert on_disk == generate.PAGES[page](), f"docs/{page} is stale: run docs/generate.py"


@pytest.mark.parametrize(
    ("module", "cls"),
    [("flows/record.py", "FlowRecord"), ("names/passive_dns.py", "DnsAnswer")],
)
def test_every_record_field_is_documented(module: str, cls: str) -> None:
    fields = generate.field_docs(REPO / "egresswatch" / module, cls)
    assert [name for name, _, _, doc in fields if not doc] == []
