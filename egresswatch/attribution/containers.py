"""Which container held an address when: the map flows are attributed with.

Addresses are reused: a container that stops frees its address for the next one. So every
address keeps the intervals during which each container held it, and a flow is attributed by
its address *and* its start time. A container that lived two seconds stays findable after it
is gone, for ``keep`` seconds.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Container:
    """What Docker says about a container."""

    id: str
    """Full 64-hex-digit container id."""
    name: str
    """Name without the leading slash (``ollama``, ``dify-api-1``)."""
    image: str
    """Image as the container was created from (``ollama/ollama:latest``)."""
    image_id: str = ""
    """Image id (``sha256:...``): what the tag pointed at when the container was created."""
    labels: dict[str, str] = field(default_factory=dict)
    """Container labels, Compose's ``com.docker.compose.project`` / ``.service`` included."""
    network_mode: str = ""
    """``bridge``, ``host``, ``none``, ``container:<id>`` or a network name."""
    privileged: bool = False
    host_pid: bool = False
    """Shares the host's process namespace (``--pid host``)."""
    docker_socket: bool = False
    """Has Docker's API socket mounted: it can start containers nobody declared."""
    cap_add: frozenset[str] = frozenset()
    """Capabilities added beyond Docker's default set (``NET_ADMIN``, ``SYS_ADMIN``, ...)."""


@dataclass(slots=True)
class _Tenure:
    since: float
    until: float
    container: Container


class ContainerMap:
    """Address -> the container that held it at a time. Thread-safe: the Docker inventory
    updates it from its own thread while flows are attributed in the pipeline's."""

    def __init__(self, *, keep: float = 3600.0, per_address: int = 8) -> None:
        self._keep = keep
        self._per_address = per_address
        self._by_address: dict[str, list[_Tenure]] = {}
        self._by_id: dict[str, Container] = {}
        self._image_of: dict[str, str] = {}
        """container name -> the image id it last ran: a container recreated under its name from
        another image is an image change (an auto-update pulled new code)."""
        self._image_changes: list[tuple[Container, str, float]] = []
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._by_address)

    def holds(self, container: Container, addresses: list[str], since: float) -> None:
        """``container`` holds ``addresses`` from ``since`` on (until ``released``). An address
        it held before and no longer lists is released at ``since``."""
        with self._lock:
            self._by_id[container.id] = container
            before = self._image_of.get(container.name)
            if container.image_id and before and before != container.image_id:
                self._image_changes.append((container, before, since))
            if container.image_id:
                self._image_of[container.name] = container.image_id
            for address, tenures in self._by_address.items():
                last = tenures[-1]
                if last.container.id == container.id and address not in addresses:
                    last.until = min(last.until, since)
            for address in addresses:
                tenures = self._by_address.setdefault(address, [])
                if tenures and tenures[-1].container.id == container.id:
                    last = tenures[-1]
                    last.container, last.until = container, math.inf
                    continue
                if tenures:  # a new holder: the previous one has let it go by now
                    tenures[-1].until = min(tenures[-1].until, since)
                tenures.append(_Tenure(since, math.inf, container))
                del tenures[: -self._per_address]

    def released(self, container_id: str, at: float) -> None:
        """``container_id`` stopped at ``at``: its addresses are no longer its after that."""
        with self._lock:
            for tenures in self._by_address.values():
                last = tenures[-1]
                if last.container.id == container_id:
                    last.until = min(last.until, at)

    def at(self, address: str, when: float) -> Container | None:
        """The container that held ``address`` at ``when``; None if none did (or unknown)."""
        tenures = self._by_address.get(address)
        if not tenures:
            return None
        with self._lock:
            for tenure in reversed(tenures):
                if tenure.since <= when <= tenure.until:
                    return tenure.container
        return None

    def take_image_changes(self) -> list[tuple[Container, str, float]]:
        """(container, the image id its name ran before, when) since the last call."""
        with self._lock:
            out, self._image_changes = self._image_changes, []
        return out

    def by_id(self, container_id: str) -> Container | None:
        """A container Docker told of, by id (also one on the host's network)."""
        return self._by_id.get(container_id)

    def forget(self, now: float) -> None:
        """Drop tenures that ended more than ``keep`` seconds before ``now``."""
        with self._lock:
            for address in list(self._by_address):
                kept = [t for t in self._by_address[address] if now - t.until <= self._keep]
                if kept:
                    self._by_address[address] = kept
                else:
                    del self._by_address[address]
            if len(self._by_id) > 4 * len(self._by_address) + 1024:  # ids of long-gone ones
                held = {t.container.id for ts in self._by_address.values() for t in ts}
                self._by_id = {k: v for k, v in self._by_id.items() if k in held}
