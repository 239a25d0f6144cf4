"""Running the API under uvicorn: on its own (``egresswatch serve``) or beside the capture in
the daemon's process (``egresswatch run --listen``)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import uvicorn

from egresswatch.api.app import create_app
from egresswatch.api.auth import listen_address
from egresswatch.config import Settings
from egresswatch.errors import ConfigError, StoreError
from egresswatch.store import Database

_log = logging.getLogger(__name__)


def with_listen(settings: Settings, listen: str | None) -> Settings:
    """``--listen`` over the config's ``api.listen``; checks it (a public address needs
    tokens) so that a bad one stops the command before anything starts."""
    if listen:
        api = settings.api.model_copy(update={"listen": listen})
        settings = settings.model_copy(update={"api": api})
    listen_address(settings.api)
    return settings


def serve(settings: Settings) -> None:
    """Serve until SIGTERM or SIGINT (uvicorn's own handlers)."""
    host, port = listen_address(settings.api)
    database = Database(settings.db)
    try:
        database.upgrade()
        _warm_in_background(database)
        uvicorn.run(create_app(settings, database), host=host, port=port,
                    log_level=settings.log_level.lower(), access_log=False)  # fmt: skip
    finally:
        database.close()


def serve_in_thread(settings: Settings) -> Callable[[], None]:
    """Serve from a thread (the database is already upgraded); returns what stops it."""
    host, port = listen_address(settings.api)
    database = Database(settings.db)
    config = uvicorn.Config(create_app(settings, database), host=host, port=port,
                            log_level=settings.log_level.lower(), access_log=False)  # fmt: skip
    server = uvicorn.Server(config)  # outside the main thread it installs no signal handlers
    thread = threading.Thread(target=server.run, name="api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    if not server.started:  # uvicorn has logged why (the address in use, ...)
        server.should_exit = True
        database.close()
        raise ConfigError(f"api.listen: cannot serve the REST API on {host}:{port}")
    _log.info("REST API on http://%s:%d/api/v1", host, port)
    _warm_in_background(database)

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=5)
        database.close()

    return stop


def _warm_in_background(database: Database) -> None:
    def warm() -> None:
        try:
            database.warm(time.time())
        except StoreError as exc:  # only a slower first request: the API answers anyway
            _log.warning("could not sum the totals ahead: %s", exc)

    threading.Thread(target=warm, name="api-warm", daemon=True).start()
