"""An alert: one rule broken by one flow (and its repeats, counted)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from egresswatch.flows.record import FlowRecord


@dataclass(frozen=True, slots=True, kw_only=True)
class Alert:
    """What the owner is told. Repeats (same ``dedup_key``) within the policy's suppression
    window add to the stored alert's count instead of raising a new one."""

    uid: str
    """Stable alert id ("A" + 20 characters), from the dedup key and the first flow."""
    time: float
    """When the flow that raised it started, seconds since the epoch."""
    rule: str
    """``<scope>: denied destination``, ``<scope>: not allowed``, ``upload``, ..."""
    severity: str
    """low, medium, high or critical."""
    summary: str
    """One line for a human: who, to where, how much, why."""
    dedup_key: str
    """Same rule, same source (container or process or address), same destination."""
    flow: FlowRecord | None
    """The flow that raised it (the first one, for a repeated alert); None for what DNS
    answers raised (tunnelling), which ``source`` and ``destination`` then say."""
    source: str = ""
    """Who: the container, process or address (when there is no flow)."""
    destination: str = ""
    """To what: the domain (when there is no flow)."""
    evidence: bytes | None = None
    """The flow's first packets as a pcap file (live only; None when not kept)."""
    container: str | None = None
    """The container it is about, when no flow says so (``image changed``)."""

    @property
    def container_name(self) -> str | None:
        """The container it is about: its flow's (name, else id), else ``container``."""
        if self.flow is not None:
            return self.flow.container_name or self.flow.container_id
        return self.container


Routes = Callable[[Alert], list[int]]
"""An alert -> the keys of the webhooks it is queued for."""
Destinations = Sequence[tuple[str, str, float]]
"""(source, destination, first seen) pairs first reached: what first-seen is judged against."""


def alert_uid(dedup_key: str, flow_uid: str) -> str:
    return "A" + hashlib.blake2b(f"{dedup_key}|{flow_uid}".encode(), digest_size=10).hexdigest()
