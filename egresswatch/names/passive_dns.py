"""Passive DNS: the answers seen on the wire, and which name each client looked up per address.

A flow is named after DNS only by an answer its own client received before the flow started and
that was still valid then (TTL plus a grace period): another host's lookup of a shared CDN address
says nothing about what this client wanted.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass

from egresswatch.names.dns import DnsMessage, rcode_name, type_name

_PER_ADDRESS = 4  # answers remembered per (client, address): the latest few names that led there


@dataclass(frozen=True, slots=True, kw_only=True)
class DnsAnswer:
    """One DNS response, as stored in the ``dns`` table and shown by ``egresswatch dns``."""

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
        answers = tuple(record.value for record in message.answers)
        ttls = [record.ttl for record in message.answers]
        material = f"{time:.6f}|{client}|{resolver}|{message.id}|{message.query}|{message.qtype}"
        return cls(
            uid="D" + hashlib.blake2b(material.encode(), digest_size=12).hexdigest(),
            time=time,
            client=client,
            resolver=resolver,
            query=message.query,
            qtype=type_name(message.qtype),
            rcode=rcode_name(message.rcode),
            answers=answers,
            ttl=min(ttls) if ttls else None,
            resolved=tuple(message.resolved()),
        )


class PassiveDns:
    """Client-scoped address -> name memory, bounded to ``size`` (client, address) pairs."""

    def __init__(self, *, size: int = 100_000, grace: float = 300.0) -> None:
        self._size = size
        self._grace = grace
        # (client, address) -> [(answer time, valid until, name)], newest last
        self._seen: OrderedDict[tuple[str, str], list[tuple[float, float, str]]] = OrderedDict()
        self.forgotten = 0
        """Pairs dropped because the memory was full (a metric)."""

    def __len__(self) -> int:
        return len(self._seen)

    def add(self, answer: DnsAnswer) -> None:
        """Remember the addresses an answer gave its client."""
        for address, ttl in answer.resolved:
            key = (answer.client, address)
            entries = self._seen.get(key)
            if entries is None:
                entries = self._seen[key] = []
                if len(self._seen) > self._size:
                    self._seen.popitem(last=False)
                    self.forgotten += 1
            else:
                self._seen.move_to_end(key)
            entries.append((answer.time, answer.time + ttl + self._grace, answer.query))
            del entries[:-_PER_ADDRESS]

    def name(self, client: str, address: str, at: float) -> str | None:
        """The name ``client`` looked up and got ``address`` for, valid at time ``at``."""
        entries = self._seen.get((client, address))
        if not entries:
            return None
        for answered, until, name in reversed(entries):
            if answered <= at <= until:
                return name
        return None
