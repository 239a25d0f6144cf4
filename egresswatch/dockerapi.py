"""The Docker Engine API over its unix socket: the few GETs egresswatch makes, and the event
stream. Plain http.client: no Docker SDK for three endpoints."""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

DOCKER_SOCKET = Path("/var/run/docker.sock")


class DockerApiError(OSError):
    """Docker did not answer, or not with JSON."""


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float | None) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(str(self._path))
        self.sock = sock


class DockerApi:
    """GETs against the Engine API at ``socket_path``."""

    def __init__(self, socket_path: Path = DOCKER_SOCKET, *, timeout: float = 5.0) -> None:
        self.socket_path = socket_path
        self._timeout = timeout

    def get(self, path: str) -> Any:
        """The JSON answer to ``GET path``; None for 404 (a container gone meanwhile)."""
        conn = _UnixConnection(self.socket_path, self._timeout)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException) as exc:
            raise DockerApiError(f"Docker API at {self.socket_path}: {exc}") from exc
        finally:
            conn.close()
        if response.status == 404:
            return None
        if response.status != 200:
            raise DockerApiError(
                f"Docker API at {self.socket_path}: {path}: HTTP {response.status}"
            )
        try:
            return json.loads(body)
        except ValueError as exc:
            raise DockerApiError(f"Docker API at {self.socket_path}: {path}: not JSON") from exc

    def events(self, query: str) -> Iterator[dict[str, Any]]:
        """``GET /events?<query>``: one event per line, for as long as Docker keeps it open."""
        conn = _UnixConnection(self.socket_path, None)
        try:
            conn.request("GET", f"/events?{query}")
            response = conn.getresponse()
            if response.status != 200:
                raise DockerApiError(
                    f"Docker API at {self.socket_path}: events: HTTP {response.status}"
                )
            while line := response.readline():
                if line.strip():
                    yield json.loads(line)
        except (OSError, ValueError, http.client.HTTPException) as exc:
            raise DockerApiError(f"Docker API at {self.socket_path}: events: {exc}") from exc
        finally:
            conn.close()
