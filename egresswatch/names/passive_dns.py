"""Passive DNS: the answers seen on the wire, and which name each client looked up per address.

A flow is named after DNS only by an answer its own client received before the flow started and
that was still valid then (TTL plus a grace period): another host's lookup of a shared CDN address
says nothing about what this client wanted.
"""

from __future__ import annotations

import hashlib
from itertools import islice
from typing import NamedTuple

from egresswatch.names.dns import DnsMessage, rcode_name, type_name

_PER_ADDRESS = 4  # answers remembered per (client, address): the latest few names that led there


class DnsAnswer(NamedTuple):
    """One DNS response, as stored in the ``dns`` table and shown by ``egresswatch dns``.

    A NamedTuple rather than a dataclass: thousands a second cross from the decoding process,
    and tuples pickle several times faster.
    """

    uid: str
    """Stable id of the answer (replaying a capture twice stores it once)."""
    time: float
    """When the response was seen, seconds since the epoch (UTC)."""
    client: str
    """Address the response went to: the host or container that asked."""
    resolver: str
    """Address the response came from."""
    query: str
    """The name asked for (lower case, no trailing dot)."""
    qtype: str
    """Query type: A, AAAA, HTTPS, ... (TYPE<n> for unnamed types)."""
    rcode: str
    """Response code: NOERROR, NXDOMAIN, SERVFAIL, ... (the number for unnamed codes)."""
    answers: tuple[str, ...]
    """Addresses and CNAME targets in the answer section, in order."""
    ttl: int | None
    """Smallest TTL among the answers (seconds); None without answers."""
    resolved: tuple[tuple[str, int], ...]
    """(address, TTL) the query name resolved to, following CNAMEs: what names flows."""

    @classmethod
    def of(cls, message: DnsMessage, time: float, *, client: str, resolver: str) -> DnsAnswer:
        records = message.answers
        query = message.query
        material = f"{time:.6f}|{client}|{resolver}|{message.id}|{query}|{message.qtype}"
        return cls(
            "D" + hashlib.blake2b(material.encode(), digest_size=12).hexdigest(),
            time,
            client,
            resolver,
            query,
            type_name(message.qtype),
            rcode_name(message.rcode),
            tuple([record.value for record in records]),
            min([record.ttl for record in records]) if records else None,
            tuple(message.resolved()),
        )


class PassiveDns:
    """Client-scoped address -> name memory, bounded to ``size`` (client, address) pairs.

    When full, the half of the pairs first seen longest ago is forgotten at once: cheaper than
    keeping an exact LRU order on every answer, and an address still in use is soon answered
    again.
    """

    def __init__(self, *, size: int = 100_000, grace: float = 300.0) -> None:
        self._size = size
        self._grace = grace
        # (client, address) -> [(answer time, valid until, name)], newest last
        self._seen: dict[tuple[str, str], list[tuple[float, float, str]]] = {}
        self.forgotten = 0
        """Pairs dropped because the memory was full (a metric)."""

    def __len__(self) -> int:
        return len(self._seen)

    def add(self, answer: DnsAnswer) -> None:
        """Remember the addresses an answer gave its client."""
        seen, client, at, query = self._seen, answer.client, answer.time, answer.query
        for address, ttl in answer.resolved:
            entries = seen.get((client, address))
            if entries is None:
                if len(seen) >= self._size:
                    self._forget_half()
                entries = seen[(client, address)] = []
            elif len(entries) >= _PER_ADDRESS:
                del entries[0]
            entries.append((at, at + ttl + self._grace, query))

    def _forget_half(self) -> None:
        old = list(islice(self._seen, max(1, len(self._seen) // 2)))
        for key in old:
            del self._seen[key]
        self.forgotten += len(old)

    def name(self, client: str, address: str, at: float) -> str | None:
        """The name ``client`` looked up and got ``address`` for, valid at time ``at``."""
        entries = self._seen.get((client, address))
        if not entries:
            return None
        for answered, until, name in reversed(entries):
            if answered <= at <= until:
                return name
        return None
