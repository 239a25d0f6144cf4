"""Which interfaces to watch: Docker's bridge networks and the host's uplinks.

Docker's own answer comes first (its Engine API names every bridge network's device, whatever it
is called); without the socket, the bridges Docker creates are recognised by name in sysfs
(``docker0``, ``br-<network id>``). Uplinks are the interfaces holding a default route.
"""

from __future__ import annotations

import logging
from pathlib import Path

from egresswatch.dockerapi import DOCKER_SOCKET, DockerApi, DockerApiError

_log = logging.getLogger(__name__)


class InterfaceFinder:
    """Finds the interfaces to capture on. OS locations are parameters, for tests."""

    def __init__(
        self,
        *,
        sys_class_net: Path = Path("/sys/class/net"),
        proc_net: Path = Path("/proc/net"),
        docker_socket: Path = DOCKER_SOCKET,
    ) -> None:
        self._sys = sys_class_net
        self._proc = proc_net
        self._docker = docker_socket
        self._docker_failed = False

    def find(self) -> dict[str, str]:
        """Interface name -> why it is watched ("bridge" or "uplink"), for those present now."""
        found = {name: "uplink" for name in self.uplinks()}
        found.update({name: "bridge" for name in self.bridges()})
        return {name: why for name, why in sorted(found.items()) if (self._sys / name).exists()}

    def bridges(self) -> set[str]:
        """Docker's bridge network devices."""
        from_docker = self._docker_bridges()
        if from_docker is not None:
            return from_docker
        return {
            path.parent.name
            for path in self._sys.glob("*/bridge")
            if path.parent.name == "docker0" or path.parent.name.startswith("br-")
        }

    def bridges_among(self, names: list[str]) -> frozenset[str]:
        """Those of ``names`` that are bridges (Docker's or not)."""
        return frozenset(name for name in names if (self._sys / name / "bridge").is_dir())

    def uplinks(self) -> set[str]:
        """Interfaces holding an IPv4 or IPv6 default route."""
        names: set[str] = set()
        for line in _lines(self._proc / "route")[1:]:
            fields = line.split()
            if len(fields) >= 8 and fields[1] == "00000000" and fields[7] == "00000000":
                names.add(fields[0])
        for line in _lines(self._proc / "ipv6_route"):
            fields = line.split()
            # (the kernel's unreachable default route sits on lo)
            default = len(fields) >= 10 and fields[0] == "0" * 32 and fields[1] == "00"
            if default and fields[9] != "lo":
                names.add(fields[9])
        return names

    def _docker_bridges(self) -> set[str] | None:
        """Bridge device names from the Docker Engine API; None when Docker is not reachable."""
        if not self._docker.exists():
            return None
        try:
            networks = DockerApi(self._docker, timeout=2.0).get(
                '/networks?filters={"driver":["bridge"]}'
            )
        except DockerApiError as exc:
            if not self._docker_failed:
                _log.warning("%s; finding bridges in sysfs", exc)
            self._docker_failed = True
            return None
        self._docker_failed = False
        names = set()
        for net in networks or []:
            options = net.get("Options") or {}
            names.add(options.get("com.docker.network.bridge.name") or f"br-{net['Id'][:12]}")
        return names


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="ascii").splitlines()
    except OSError:
        return []
