"""Which addresses are "this box": decides a flow's direction."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from egresswatch.flows.record import Direction


class LocalNetworks:
    """A set of networks, matched against raw 4- or 16-byte addresses."""

    def __init__(self, networks: Iterable[str]) -> None:
        self._v4: list[tuple[int, int]] = []
        self._v6: list[tuple[int, int]] = []
        for text in networks:
            net = ipaddress.ip_network(text, strict=False)
            mask, base = int(net.netmask), int(net.network_address)
            (self._v4 if net.version == 4 else self._v6).append((mask, base))

    def contains(self, addr: bytes) -> bool:
        """True when the raw address lies in one of the networks."""
        value = int.from_bytes(addr, "big")
        nets = self._v4 if len(addr) == 4 else self._v6
        return any(value & mask == base for mask, base in nets)

    def direction(self, initiator: bytes, responder: bytes) -> Direction:
        """The direction of a flow from ``initiator`` to ``responder``."""
        src_local, dst_local = self.contains(initiator), self.contains(responder)
        if src_local:
            return Direction.INTERNAL if dst_local else Direction.EGRESS
        return Direction.INGRESS if dst_local else Direction.TRANSIT
