"""Store fixtures: a real SQLite file, and a real PostgreSQL server started once per session."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from egresswatch.store.database import Database
from tests.store.pgserver import postgres_server

_database_names = itertools.count(1)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite file that does not exist yet, in its own directory."""
    return f"sqlite:///{tmp_path / 'egresswatch.db'}"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of an empty database on a throwaway PostgreSQL server (started by pgserver.py)."""
    with postgres_server() as url:
        yield url


def fresh_postgres_database(server_url: str) -> str:
    """Create a new, empty database on the test server and return its URL (one per test)."""
    name = f"egw_{next(_database_names)}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    """The URL of an empty database: a SQLite file, then a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return fresh_postgres_database(request.getfixturevalue("postgres_url"))


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    """An empty database (SQLite, then PostgreSQL) upgraded to the newest schema."""
    database = Database(db_url)
    database.upgrade()
    yield database
    database.close()
