"""Alembic, driven from code: ``egresswatch db upgrade`` and the automatic upgrade at start.

Alembic is imported only when there is something to migrate: most starts find the database at
HEAD with one query, which keeps ``egresswatch flows`` and ``replay`` quick to start.
"""

from __future__ import annotations

import logging
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import OperationalError, ProgrammingError, SQLAlchemyError

from egresswatch.errors import StoreError
from egresswatch.store.models import Base

if TYPE_CHECKING:
    from alembic.config import Config

HEAD = "0008"
"""The newest migration in migrations/versions (tests/store checks it against Alembic's head)."""


def script_location() -> Path:
    """The migrations folder (the repo's ``migrations/``, installed as egresswatch.migrations)."""
    return Path(str(resources.files("egresswatch.migrations")))


def alembic_config() -> Config:
    from alembic.config import Config  # noqa: PLC0415 - see the module docstring

    config = Config()
    config.set_main_option("script_location", str(script_location()))
    return config


def upgrade(engine: Engine) -> str:
    """Apply pending migrations; returns the revision now in force.

    An empty database gets the current schema in one step (the models, which a test holds equal
    to the migrations) and is stamped HEAD, the way Alembic's cookbook creates new databases.
    """
    revision = current(engine)
    if revision == HEAD:
        return HEAD
    if revision is None and _is_empty(engine):
        try:
            with engine.begin() as conn:
                Base.metadata.create_all(conn)
                conn.execute(
                    text(
                        "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, "
                        "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))"
                    )
                )
                conn.execute(text("INSERT INTO alembic_version VALUES (:v)"), {"v": HEAD})
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot create the database schema: {exc}") from exc
        return HEAD
    # Alembic narrates every step at INFO; egresswatch reports the outcome itself.
    logging.getLogger("alembic").setLevel(max(logging.WARNING, logging.getLogger().level))
    from alembic import command  # noqa: PLC0415 - see the module docstring

    config = alembic_config()
    try:
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
    except SQLAlchemyError as exc:
        raise StoreError(f"database migration failed: {exc}") from exc
    return HEAD


def _is_empty(engine: Engine) -> bool:
    with engine.connect() as conn:
        return not inspect(conn).get_table_names()


def current(engine: Engine) -> str | None:
    """The revision recorded in the database, None for an empty one."""
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except (OperationalError, ProgrammingError):
        return None  # no alembic_version table yet
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read the database's migration revision: {exc}") from exc
