"""The FastAPI application: read-only views of the database, and acknowledging alerts.

List endpoints answer ``{"items": [...], "next_cursor": ...}`` with the CLI's JSON field names;
times are RFC 3339 UTC; errors are RFC 9457 problem+json.
"""

from __future__ import annotations

import base64
import json
import math
import time
from collections.abc import Callable, Iterator
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, PlainTextResponse

from egresswatch.api import schemas
from egresswatch.api.auth import Tokens
from egresswatch.api.health import metrics, readiness
from egresswatch.cli.render import alert_json, flow_json
from egresswatch.config import Settings
from egresswatch.errors import StoreError
from egresswatch.flows.record import Direction
from egresswatch.policy.model import Severity
from egresswatch.store import AlertFilter, Database, DnsFilter, FlowFilter, TotalsFilter
from egresswatch.timestamps import parse_time, rfc3339


def _reader(request: Request) -> str:
    access: str | None = request.app.state.tokens.access(request.headers.get("Authorization"))
    if access is None:
        raise HTTPException(401, "a valid bearer token is needed")
    return access


def _writer(access: Annotated[str, Depends(_reader)]) -> str:
    if access != "write":
        raise HTTPException(403, "this token may read only")
    return access


Read = Annotated[str, Depends(_reader)]
Write = Annotated[str, Depends(_writer)]
When = Annotated[
    str | None,
    Query(description="RFC 3339 time, a duration before now (30m, 2h, 7d) or epoch seconds"),
]
Limit = Annotated[int, Query(ge=1, le=1000)]
Big = Annotated[int | None, Query(ge=0, le=2**63 - 1)]
READ = schemas.problems(401, 422, 503)
ONE = schemas.problems(401, 404, 422, 503)
PCAP = {"description": "A pcap file", "content": {"application/vnd.tcpdump.pcap": {}}}


def create_app(settings: Settings, database: Database) -> FastAPI:
    """The app. (Long only because every route is registered here, each a closure over
    ``database``: one place lists the whole API.)"""
    app = FastAPI(title="egresswatch", version="1", docs_url="/docs")
    app.state.tokens = Tokens(settings.api)
    if settings.api.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.api.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization"],
        )

    @app.exception_handler(HTTPException)
    async def problem(_request: Request, exc: HTTPException) -> JSONResponse:
        return _problem(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        where = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        return _problem(422, where)

    @app.exception_handler(StoreError)
    async def store_down(_request: Request, exc: StoreError) -> JSONResponse:
        return _problem(503, str(exc))

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/api/v1/flows", responses={200: {"model": schemas.FlowPage}, **READ})
    def flows(
        _: Read,
        since: When = None,
        until: When = None,
        direction: Direction | None = None,
        dst: Annotated[str | None, Query(description="responder address or CIDR")] = None,
        protocol: str | None = None,
        port: Annotated[int | None, Query(ge=0, le=65535)] = None,
        container: Annotated[str | None, Query(description="name, or id (or its start)")] = None,
        process: str | None = None,
        server_name: Annotated[str | None, Query(description="name or glob: *.example.com")] = None,
        country: Annotated[str | None, Query(min_length=2, max_length=2)] = None,
        asn: Big = None,
        min_bytes_out: Big = None,
        cursor: str | None = None,
        limit: Limit = 100,
    ) -> Response:
        before = _cursor(cursor)
        flt = FlowFilter(since=_when(since, "since"), until=_when(until, "until"),
                         direction=direction, dst=dst, protocol=protocol, port=port,
                         container=container, process=process, server_name=server_name,
                         country=country, asn=asn, min_bytes_out=min_bytes_out, before=before,
                         limit=limit + 1)  # fmt: skip
        rows = list(_checked(lambda: database.flows(flt)))
        more = len(rows) > limit
        rows = rows[:limit]
        nxt = _encode(rows[-1]["last_seen"], rows[-1]["uid"]) if more and rows else None
        return _page([flow_json(r) for r in rows], nxt)

    @app.get("/api/v1/flows/{uid}", responses={200: {"model": schemas.Flow}, **ONE})
    def flow(uid: str, _: Read) -> Response:
        return _one(database.flow(uid), flow_json, f"no flow {uid}")

    @app.get("/api/v1/alerts", responses={200: {"model": schemas.AlertPage}, **READ})
    def alerts(
        _: Read,
        since: When = None,
        severity: Annotated[Severity | None, Query(description="this or higher")] = None,
        rule: str | None = None,
        container: str | None = None,
        acknowledged: bool | None = None,
        limit: Limit = 100,
    ) -> Response:
        flt = AlertFilter(since=_when(since, "since"), severity=severity, rule=rule,
                          container=container, unacknowledged=acknowledged is False,
                          acknowledged_only=acknowledged is True, limit=limit)  # fmt: skip
        return _page([alert_json(r) for r in _checked(lambda: database.alerts(flt))], None)

    @app.get("/api/v1/alerts/{uid}", responses={200: {"model": schemas.Alert}, **ONE})
    def alert(uid: str, _: Read) -> Response:
        return _one(database.alert(uid), alert_json, f"no alert {uid}")

    @app.post(
        "/api/v1/alerts/{uid}/ack",
        responses={
            200: {"model": schemas.Acknowledged},
            **schemas.problems(401, 403, 404, 422, 503),
        },
    )
    def acknowledge(uid: str, _: Write) -> dict[str, Any]:
        if not database.acknowledge([uid]):
            raise HTTPException(404, f"no alert {uid}")
        return {"uid": uid, "acknowledged": True}

    @app.get("/api/v1/alerts/{uid}/pcap", response_class=Response, responses={200: PCAP, **ONE})
    def pcap(uid: str, _: Read) -> Response:
        data = database.alert_evidence(uid)
        if data is None:
            raise HTTPException(404, f"no packets kept for alert {uid}")
        return Response(
            data,
            media_type="application/vnd.tcpdump.pcap",
            headers={"Content-Disposition": f'attachment; filename="{uid}.pcap"'},
        )

    @app.get("/api/v1/dns", responses={200: {"model": schemas.DnsPage}, **READ})
    def dns(
        _: Read,
        name: Annotated[str | None, Query(description="query name or glob")] = None,
        ip: Annotated[str | None, Query(description="an address the answer held")] = None,
        since: When = None,
        until: When = None,
        limit: Limit = 100,
    ) -> Response:
        flt = DnsFilter(name=name, ip=ip, since=_when(since, "since"), until=_when(until, "until"),
                        limit=limit)  # fmt: skip
        rows = _checked(lambda: database.dns(flt))
        return _page([json.dumps({**r, "time": rfc3339(r["time"])}) for r in rows], None)

    @app.get("/api/v1/destinations", responses={200: {"model": schemas.DestinationPage}, **READ})
    def destinations(
        _: Read,
        since: When = "24h",
        until: When = None,
        group_by: Literal["server_name", "country", "asn", "container", "process"] = "server_name",
        direction: Direction | None = None,
        container: Annotated[str | None, Query(description="a container's name")] = None,
        limit: Limit = 50,
    ) -> Response:
        flt = TotalsFilter(group_by=group_by, since=_when(since, "since"),
                           until=_when(until, "until"), direction=direction,
                           container=container, limit=limit)  # fmt: skip
        rows = _checked(lambda: database.totals(flt))
        return _page([json.dumps(_times(r)) for r in rows], None)

    @app.get("/api/v1/containers", responses={200: {"model": schemas.ContainerPage}, **READ})
    def containers(_: Read, since: When = None) -> Response:
        rows = database.containers(_when(since, "since"))
        return _page([json.dumps(_container(r)) for r in rows], None)

    @app.get(
        "/readyz",
        responses={
            200: {"model": schemas.Readiness},
            503: {"model": schemas.Readiness, "description": "Not ready"},
        },
    )
    def readyz() -> JSONResponse:
        ready, hosts = readiness(database.status(), time.time())
        outbox, oldest = database.outbox_backlog()
        body = {
            "ready": ready,
            "hosts": [_times(h) for h in hosts],
            "outbox": {"pending": outbox, "oldest": rfc3339(oldest) if oldest else None},
        }
        return JSONResponse(body, status_code=200 if ready else 503)  # fmt: skip

    @app.get("/metrics", response_class=PlainTextResponse)
    def prometheus() -> PlainTextResponse:
        text = metrics(database.status(), time.time(), database.alert_counts(),
                       database.outbox_backlog())  # fmt: skip
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4; charset=utf-8")

    return app


_RISKS = {
    "privileged": "privileged: can change the host's network, firewall and this monitor",
    "host_network": "host network: its traffic is the host's, told apart only by process",
    "host_pid": "host PID namespace: can see and signal the host's processes",
    "docker_socket": "Docker socket mounted: can start containers nobody declared",
}


def _container(row: dict[str, Any]) -> dict[str, Any]:
    """A container with its posture: the ways it could escape or blind monitoring."""
    out = _times(row)
    risks = []
    if row["privileged"]:
        risks.append("privileged")
    if row["network_mode"] == "host":
        risks.append("host_network")
    if row["host_pid"]:
        risks.append("host_pid")
    if row["docker_socket"]:
        risks.append("docker_socket")
    out["posture"] = {"risks": risks, "explained": [_RISKS[r] for r in risks]}
    if row["cap_add"]:
        out["posture"]["cap_add"] = row["cap_add"]
    return out


def _times(row: dict[str, Any]) -> dict[str, Any]:
    """Epoch-second fields as RFC 3339, in nested objects too."""
    return {
        k: _times(v) if isinstance(v, dict)
        else rfc3339(v) if k in _TIME_FIELDS and v is not None
        else v
        for k, v in row.items()
    }  # fmt: skip


_TIME_FIELDS = {"first_seen", "last_seen", "updated", "started", "last_packet"}


def _when(text: str | None, name: str) -> float | None:
    if text is None:
        return None
    try:
        when = float(text)
    except ValueError:
        try:
            return parse_time(text, time.time())
        except ValueError as exc:
            raise HTTPException(422, f"{name}: {exc}") from exc
    if not math.isfinite(when):
        raise HTTPException(422, f"{name}: {text!r} is not a time")
    return when


def _checked(rows: Callable[[], Iterator[dict[str, Any]]]) -> Iterator[dict[str, Any]]:
    try:
        yield from rows()
    except ValueError as exc:  # a filter the store refused (a bad CIDR, ...)
        raise HTTPException(422, str(exc)) from exc


def _one(
    row: dict[str, Any] | None, render: Callable[[dict[str, Any]], str], missing: str
) -> Response:
    if row is None:
        raise HTTPException(404, missing)
    return Response(render(row), media_type="application/json")


def _page(items: list[str], next_cursor: str | None) -> Response:
    """Items already rendered as JSON by the CLI's renderers: the same field names."""
    body = '{"items":[' + ",".join(items) + '],"next_cursor":' + json.dumps(next_cursor) + "}"
    return Response(body, media_type="application/json")


def _encode(last_seen: float, uid: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([last_seen, uid]).encode()).decode()


def _cursor(text: str | None) -> tuple[float, str] | None:
    if text is None:
        return None
    try:
        last_seen, uid = json.loads(base64.urlsafe_b64decode(text.encode()))
        return float(last_seen), str(uid)
    except (ValueError, TypeError) as exc:
        raise HTTPException(422, "cursor: not one this API gave") from exc


def _problem(status: int, detail: str) -> JSONResponse:
    titles = {401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 422: "Invalid request",
              503: "Database unavailable"}  # fmt: skip
    return JSONResponse({"type": "about:blank", "title": titles.get(status, "Error"),
                         "status": status, "detail": detail},
                        status_code=status, media_type="application/problem+json")  # fmt: skip
