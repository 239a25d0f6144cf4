"""Docker's containers, kept current from its event stream: who holds which address.

At start every running container is inspected; from then on each ``start`` and network
``connect`` event is inspected at once (a container that lives two seconds is still caught),
and ``die`` / ``disconnect`` end its hold on its addresses at the event's own time. If Docker
goes away the stream is reopened every few seconds, with a full listing again.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from egresswatch.attribution.containers import Container, ContainerMap
from egresswatch.dockerapi import DockerApi, DockerApiError

_log = logging.getLogger(__name__)
_EVENTS = json.dumps({"type": ["container", "network"]}, separators=(",", ":"))
_RETRY = 5.0  # seconds between attempts while Docker cannot be reached


class DockerInventory:
    """Feeds ``containers`` from the Docker Engine API, in a thread of its own."""

    def __init__(
        self,
        api: DockerApi,
        containers: ContainerMap,
        seen: Callable[[list[tuple[Container, float]]], None] | None = None,
    ) -> None:
        self._api = api
        self.containers = containers
        self._seen = seen
        """Told of each container (and when) as it starts or is first listed, and as it dies."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="docker", daemon=True)
        self.ready = threading.Event()
        """Set once the running containers have been listed (or Docker found unreachable)."""
        self.failures = 0
        self.reachable: bool | None = None
        """Whether Docker answered the last attempt (None: not tried yet)."""

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()  # the event stream ends with the process: the thread is a daemon

    def _run(self) -> None:
        warned = False
        while not self._stop.is_set():
            try:
                self._listen()
            except DockerApiError as exc:
                self.failures += 1
                self.reachable = False
                if not warned:
                    _log.warning("%s; containers not attributed until it answers", exc)
                    warned = True
            self.ready.set()
            self._stop.wait(_RETRY)

    def _listen(self) -> None:
        since = _now_text()  # events from the listing on: nothing falls between the two
        for summary in self._api.get("/containers/json") or []:
            self.inspect(summary["Id"])
        self.reachable = True
        self.ready.set()
        for event in self._api.events(f"since={since}&filters={_EVENTS}"):
            if self._stop.is_set():
                return
            self._apply(event)

    def _apply(self, event: dict[str, Any]) -> None:
        kind, action = event.get("Type"), event.get("Action", "")
        actor = event.get("Actor") or {}
        at = event.get("timeNano", 0) / 1e9 or float(event.get("time", 0))
        if kind == "container":
            if action == "start":
                self.inspect(actor.get("ID", ""))
            elif action == "die":
                self.containers.released(actor.get("ID", ""), at)
                gone = self.containers.by_id(actor.get("ID", ""))
                if gone is not None and self._seen is not None:
                    self._seen([(gone, at)])
        elif kind == "network" and action in ("connect", "disconnect"):
            self.inspect((actor.get("Attributes") or {}).get("container", ""), at)

    def inspect(self, container_id: str, at: float | None = None) -> None:
        """Read one container and record the addresses it holds now."""
        info = self._api.get(f"/containers/{container_id}/json") if container_id else None
        if not info or not info.get("State", {}).get("Running"):
            return
        container = container_from(info)
        since = at if at is not None else _time(info["State"].get("StartedAt", ""))
        self.containers.holds(container, addresses(info), since)
        if self._seen is not None:
            now = time.time()
            self._seen([(container, since or now), (container, now)])  # started, and seen now


def container_from(info: dict[str, Any]) -> Container:
    """A Container from ``GET /containers/{id}/json``."""
    config, host = info.get("Config") or {}, info.get("HostConfig") or {}
    return Container(
        id=info["Id"],
        name=info.get("Name", "").lstrip("/"),
        image=config.get("Image", ""),
        image_id=info.get("Image", ""),
        labels=dict(config.get("Labels") or {}),
        network_mode=host.get("NetworkMode", ""),
        privileged=bool(host.get("Privileged")),
        host_pid=host.get("PidMode") == "host",
        docker_socket=any(
            str(m.get("Source", "")).endswith("/docker.sock")
            or str(m.get("Destination", "")).endswith("/docker.sock")
            for m in info.get("Mounts") or []
        ),
        cap_add=frozenset(c.upper().removeprefix("CAP_") for c in host.get("CapAdd") or []),
    )


def addresses(info: dict[str, Any]) -> list[str]:
    """Every IPv4 and IPv6 address the container has on its networks."""
    found = []
    for net in ((info.get("NetworkSettings") or {}).get("Networks") or {}).values():
        for key in ("IPAddress", "GlobalIPv6Address"):
            if net.get(key):
                found.append(net[key])
    return found


def _time(text: str) -> float:
    """Docker's RFC 3339 times have nanoseconds; Python reads microseconds."""
    if not text or text.startswith("0001-"):
        return 0.0
    head, _, frac = text.rstrip("Z").partition(".")
    micros = (frac + "000000")[:6]
    return datetime.fromisoformat(f"{head}.{micros}+00:00").timestamp()


def _now_text() -> str:
    return f"{datetime.now().timestamp():.9f}"
