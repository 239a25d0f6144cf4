"""What the API answers, as OpenAPI schemas (``/openapi.json``, ``/docs``).

The routes render their JSON themselves, with the CLI's renderers (the same field names, and
no per-row validation cost on pages of a thousand flows); these models describe those answers
for clients and for the schema tests that check every answer against them.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

from pydantic import BaseModel, create_model

from egresswatch.flows.record import FlowRecord

_RFC3339 = {"first_seen", "last_seen"}


def _flow_model() -> type[BaseModel]:
    """A flow as ``egresswatch flows --json`` prints it: the record's fields, times as RFC 3339
    text, and ``duration`` in seconds."""
    hints = typing.get_type_hints(FlowRecord)
    fields: dict[str, Any] = {}
    for f in dataclasses.fields(FlowRecord):
        kind = str if f.name in _RFC3339 else hints[f.name]
        fields[f.name] = (kind, ...)
    fields["duration"] = (float, ...)
    return create_model("Flow", **fields)


Flow = _flow_model()


class FlowPage(BaseModel):
    items: list[Flow]  # type: ignore[valid-type]
    next_cursor: str | None
    """Pass back as ``cursor`` for the next page; null on the last one."""


class Alert(BaseModel):
    uid: str
    time: str
    last_time: str
    rule: str
    severity: str
    summary: str
    dedup_key: str
    count: int
    flow_uid: str
    flow: dict[str, Any]
    """Every field of the flow that raised it (times as epoch seconds)."""
    acknowledged: bool
    evidence: bool
    """Whether its first packets were kept (``/alerts/{uid}/pcap``)."""
    container: str | None
    source: str | None
    """Who, for an alert raised by no single flow (``dns tunnel``: the client address;
    ``image changed``: the container); null otherwise (the flow says)."""
    destination: str | None
    """To what, for an alert raised by no single flow (the domain; the image)."""


class AlertPage(BaseModel):
    items: list[Alert]
    next_cursor: None


class Acknowledged(BaseModel):
    uid: str
    acknowledged: bool


class DnsAnswer(BaseModel):
    time: str
    client: str
    resolver: str
    query: str
    qtype: str
    rcode: str
    answers: list[Any]
    ttl: int | None


class DnsPage(BaseModel):
    items: list[DnsAnswer]
    next_cursor: None


class Destination(BaseModel):
    """One group's totals; only the key of the grouping asked for is present."""

    server_name: str | None = None
    dst_ip: str | None = None
    """For ``group_by=server_name``: the address of a destination without a name."""
    country: str | None = None
    asn: int | None = None
    as_org: str | None = None
    container: str | None = None
    process: str | None = None
    flows: int
    packets_out: int
    bytes_out: int
    packets_in: int
    bytes_in: int
    first_seen: str
    last_seen: str


class DestinationPage(BaseModel):
    items: list[Destination]
    next_cursor: None


class Posture(BaseModel):
    risks: list[str]
    explained: list[str]
    cap_add: list[str] | None = None


class Egress(BaseModel):
    flows: int
    bytes_out: int
    bytes_in: int
    destinations: int
    countries: list[str]
    last_seen: str


class Container(BaseModel):
    container_id: str | None
    name: str
    image: str | None
    first_seen: str | None
    last_seen: str | None
    network_mode: str | None
    privileged: bool | None
    host_pid: bool | None
    docker_socket: bool | None
    cap_add: list[str] | None
    posture: Posture
    egress: Egress | None


class ContainerPage(BaseModel):
    items: list[Container]
    next_cursor: None


class Readiness(BaseModel):
    ready: bool
    hosts: list[dict[str, Any]]
    """Each host's status (see docs/api.md), with ``problems`` and ``warnings``."""
    outbox: dict[str, Any]


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    detail: str


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries for error answers, as problem+json."""
    why = {401: "No or bad token", 403: "A read-only token", 404: "No such thing",
           422: "A bad parameter", 503: "The database is unavailable"}  # fmt: skip
    content = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    return {s: {"model": Problem, "description": why[s], "content": content} for s in statuses}
