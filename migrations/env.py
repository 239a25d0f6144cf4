"""Alembic environment: run by ``egresswatch db upgrade`` with a live connection, or by the
``alembic`` command line with ``-x url=...``."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from egresswatch.store.models import Base

config = context.config
target_metadata = Base.metadata


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _migrate(connection)
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url"
    )
    with create_engine(url).connect() as conn:
        _migrate(conn)
        conn.commit()


def _migrate(connection: object) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite cannot ALTER most things; batch mode copies the table
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run()
