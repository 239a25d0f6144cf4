"""Schemathesis against the app's own /openapi.json: every operation it declares, called in-process
(ASGI) with a write token over a SQLite file the real pipeline filled from a peer capture (the
same replay as test_api) plus two alerts, answers without a server error and as its schema says
(status code, content type, body). A route added to the app is tested as soon as it is declared."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeAlias

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from pydantic import SecretStr
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from egresswatch.api.app import create_app
from egresswatch.config import ApiSettings, ApiToken, Settings
from egresswatch.store import Database, FlowFilter
from tests.api.test_api import CAPTURE, replayed
from tests.store.test_alerts_store import T0, alert

__all__ = ["replayed"]  # the fixture, imported to be used here

TOKEN = "schemathesis-owner"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
EXTREMES = ("nan", "inf", "-inf", "1e400", "9223372036854775808", "-9223372036854775809")
"""Query values random strings almost never are: the edges of float and of SQLite's INTEGER."""

Operation: TypeAlias = schemathesis.APIOperation[Any, Any, Any, Any]


def no_undeclared_server_error(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case[Any]
) -> bool | None:
    """``not_a_server_error``, except for a 5xx the operation declares: that one is its contract
    (``/readyz`` answers 503 while no capture daemon reports), not a crash."""
    if str(response.status_code) in case.operation.responses.status_codes:
        return None
    return not_a_server_error(ctx, response, case)


CHECKS = [
    no_undeclared_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def _settings() -> Settings:
    return Settings(api=ApiSettings(tokens=[ApiToken(token=SecretStr(TOKEN), access="write")]))


# The schema is read here, at import, from an app over an in-memory database that is never opened:
# /openapi.json depends on the routes alone. Every call goes to the `app` fixture's app instead.
# (schemathesis.pytest.from_fixture would read it from that fixture, but schemathesis 4.32 uses
# pytest's Node._nodeid, which pytest 9 no longer has.)
schema = schemathesis.openapi.from_asgi(
    "/openapi.json", create_app(_settings(), Database("sqlite://"))
)


def _declared() -> list[Operation]:
    """Every operation in the schema (one schemathesis cannot read fails the import, named)."""
    found = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise result.err()
        found.append(result.ok())
    return found


operations = _declared()


@pytest.fixture(scope="module")
def database(replayed: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    """A copy of the replayed file (acknowledging writes) with two alerts, A2 with its packets."""
    path = tmp_path_factory.mktemp("schema") / "schema.db"
    shutil.copyfile(replayed, path)
    db = Database(f"sqlite:///{path}")
    kept = dataclasses.replace(alert(T0, "2", key="upload"), evidence=CAPTURE.read_bytes())
    db.write_alerts([alert(T0, "1"), kept], 3600)
    yield db
    db.close()


@pytest.fixture(scope="module")
def app(database: Database) -> FastAPI:
    return create_app(_settings(), database)


@schema.parametrize()
@settings(max_examples=40, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])  # fmt: skip
def test_any_request_is_answered_as_the_schema_says(
    case: schemathesis.Case[Any], app: FastAPI
) -> None:
    case.call_and_validate(app=app, headers=AUTH, checks=CHECKS)


def test_rows_that_exist_are_answered_as_the_schema_says(app: FastAPI, database: Database) -> None:
    """Generated uids find nothing, so every ``{uid}`` route is also called with the uids of rows
    that exist (each uid on every route: a flow's is not an alert's, and answers 404 there, which
    the test above checks), and each 200 answer is checked."""
    uids = [r["uid"] for r in database.flows(FlowFilter(limit=2))] + ["A1", "A2"]
    found = set()
    for operation in operations:
        for uid in uids if "{uid}" in operation.path else []:
            case = operation.Case(path_parameters={"uid": uid})
            response = case.call(app=app, headers=AUTH)
            if response.status_code == 200:
                case.validate_response(response, checks=CHECKS)
                found.add(uid)
    assert found == set(uids)


@pytest.mark.parametrize(
    "operation", [op for op in operations if len(op.query)], ids=lambda op: op.label
)
def test_extreme_numbers_in_any_query_parameter_are_no_server_error(
    operation: Operation, app: FastAPI
) -> None:
    crashes = []
    for name in (parameter.name for parameter in operation.query):
        for value in EXTREMES:
            case = operation.Case(query={name: value})
            try:
                case.call_and_validate(app=app, headers=AUTH, checks=[no_undeclared_server_error])
            except Exception as exc:  # the app's own exception, or schemathesis's failure
                crashes.append(f"{name}={value}: {type(exc).__name__}: {exc}")
    assert not crashes, "\n".join(crashes)
