"""Alembic, driven from code: ``egresswatch db upgrade`` and the automatic upgrade at start."""

from __future__ import annotations

import logging
from importlib import resources
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from egresswatch.errors import StoreError


def script_location() -> Path:
    """The migrations folder (the repo's ``migrations/``, installed as egresswatch.migrations)."""
    return Path(str(resources.files("egresswatch.migrations")))


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(script_location()))
    return config


def head() -> str:
    """The newest revision the code knows."""
    revision = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert revision is not None
    return revision


def upgrade(engine: Engine) -> str:
    config = alembic_config()
    # Alembic narrates every step at INFO; egresswatch reports the outcome itself.
    logging.getLogger("alembic").setLevel(max(logging.WARNING, logging.getLogger().level))
    try:
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
    except SQLAlchemyError as exc:
        raise StoreError(f"database migration failed: {exc}") from exc
    return head()


def current(engine: Engine) -> str | None:
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read the database's migration revision: {exc}") from exc
