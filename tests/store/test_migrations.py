"""Alembic migrations on a real SQLite file and a real PostgreSQL server (see pgserver.py)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import make_url

from egresswatch.flows.record import Direction, FlowRecord
from egresswatch.store import migrate
from egresswatch.store.database import Database
from egresswatch.store.models import Base
from egresswatch.store.queries import FlowFilter


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database(db_url)
    yield database
    database.close()


def tables(db: Database) -> set[str]:
    return set(inspect(db.engine).get_table_names())


def a_flow(uid: str = "Cmigrate1") -> FlowRecord:
    return FlowRecord(
        uid=uid, first_seen=100.0, last_seen=101.0, interface="eth0", direction=Direction.EGRESS,
        ip_proto=6, protocol="tcp", src_ip="10.0.0.2", src_port=40000, dst_ip="93.184.216.34",
        dst_port=443, packets_out=3, bytes_out=180, packets_in=2, bytes_in=120, state="SF",
        history="ShADdFf", closed=True,
    )  # fmt: skip


def test_upgrade_creates_the_schema_in_an_empty_database(db: Database) -> None:
    assert db.revision() is None
    assert "flows" not in tables(db)

    assert db.upgrade() == migrate.HEAD

    assert db.revision() == migrate.HEAD
    assert {"flows", "alembic_version"} <= tables(db)


def test_second_upgrade_is_a_no_op_that_keeps_the_data(db: Database) -> None:
    db.upgrade()
    db.write_flows([a_flow()])

    assert db.upgrade() == migrate.HEAD

    assert db.revision() == migrate.HEAD
    assert [f["uid"] for f in db.flows(FlowFilter())] == ["Cmigrate1"]


def upgrade_with_alembic(db: Database) -> None:
    config = migrate.alembic_config()
    with db.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")


def test_models_and_migrations_agree(db: Database) -> None:
    """Autogenerate against a database built by the migrations must find nothing to do: so the
    one-step creation of new databases (from the models) equals migrating them."""
    upgrade_with_alembic(db)
    assert db.revision() == migrate.HEAD
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    assert differences == []


def test_models_and_an_empty_database_differ(db: Database) -> None:
    """The autogenerate check above can fail: on an empty database it sees the missing tables."""
    with db.engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    added = [d[1].name for d in differences if isinstance(d, tuple) and d[0] == "add_table"]
    assert sorted(added) == [
        "alerts", "containers", "daemon_status", "destinations", "dns", "dns_addresses",
        "flow_hour_changes", "flow_hours", "flows", "outbox",
    ]  # fmt: skip


def downgrade_to_base(db: Database) -> None:
    config = migrate.alembic_config()
    with db.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "base")


def test_downgrade_to_base_and_upgrade_again(db: Database) -> None:
    db.upgrade()
    db.write_flows([a_flow("Cbefore")])

    downgrade_to_base(db)
    assert db.revision() is None
    assert "flows" not in tables(db)

    assert db.upgrade() == migrate.HEAD
    assert db.revision() == migrate.HEAD
    db.write_flows([a_flow("Cafter")])
    assert [f["uid"] for f in db.flows(FlowFilter())] == ["Cafter"]


def test_sqlite_is_in_wal_mode(sqlite_url: str) -> None:
    db = Database(sqlite_url)
    try:
        db.upgrade()
        with db.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    finally:
        db.close()
    # WAL is a property of the file: a plain connection that sets nothing sees it too.
    path = make_url(sqlite_url).database
    assert path is not None
    plain = sqlite3.connect(path)
    try:
        assert plain.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        plain.close()


def test_head_constant_is_alembics_head() -> None:
    """``migrate.HEAD`` spares Alembic's import at start; it must name the newest migration."""
    from alembic.script import ScriptDirectory

    assert ScriptDirectory.from_config(migrate.alembic_config()).get_current_head() == migrate.HEAD
