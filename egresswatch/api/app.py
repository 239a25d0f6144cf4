"""The FastAPI application: read-only views of the database, and acknowledging alerts.

List endpoints answer ``{"items": [...], "next_cursor": ...}`` with the CLI's JSON field names;
times are RFC 3339 UTC; errors are RFC 9457 problem+json.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse

from egresswatch.api.auth import Tokens
from egresswatch.cli.render import alert_json, flow_json
from egresswatch.config import Settings
from egresswatch.errors import StoreError
from egresswatch.store import AlertFilter, Database, DnsFilter, FlowFilter
from egresswatch.timestamps import rfc3339

PAGE_MAX = 1000


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

    @app.get("/api/v1/flows")
    def flows(
        _: Read,
        since: float | None = None,
        until: float | None = None,
        direction: str | None = None,
        dst: str | None = None,
        protocol: str | None = None,
        port: int | None = None,
        container: str | None = None,
        cursor: str | None = None,
        limit: Annotated[int, Query(ge=1, le=PAGE_MAX)] = 100,
    ) -> Response:
        before = _cursor(cursor)
        flt = FlowFilter(since=since, until=until, direction=direction, dst=dst,
                         protocol=protocol, port=port, container=container, before=before,
                         limit=limit + 1)  # fmt: skip
        rows = list(_checked(lambda: database.flows(flt)))
        more = len(rows) > limit
        rows = rows[:limit]
        nxt = _encode(rows[-1]["last_seen"], rows[-1]["uid"]) if more and rows else None
        return _page([flow_json(r) for r in rows], nxt)

    @app.get("/api/v1/flows/{uid}")
    def flow(uid: str, _: Read) -> Response:
        return _one(database.flow(uid), flow_json, f"no flow {uid}")

    @app.get("/api/v1/alerts")
    def alerts(
        _: Read,
        since: float | None = None,
        acknowledged: bool | None = None,
        limit: Annotated[int, Query(ge=1, le=PAGE_MAX)] = 100,
    ) -> Response:
        flt = AlertFilter(since=since, unacknowledged=acknowledged is False,
                          acknowledged_only=acknowledged is True, limit=limit)  # fmt: skip
        return _page([alert_json(r) for r in _checked(lambda: database.alerts(flt))], None)

    @app.get("/api/v1/alerts/{uid}")
    def alert(uid: str, _: Read) -> Response:
        return _one(database.alert(uid), alert_json, f"no alert {uid}")

    @app.post("/api/v1/alerts/{uid}/ack")
    def acknowledge(uid: str, _: Write) -> dict[str, Any]:
        if not database.acknowledge([uid]):
            raise HTTPException(404, f"no alert {uid}")
        return {"uid": uid, "acknowledged": True}

    @app.get("/api/v1/alerts/{uid}/pcap")
    def pcap(uid: str, _: Read) -> Response:
        data = database.alert_evidence(uid)
        if data is None:
            raise HTTPException(404, f"no packets kept for alert {uid}")
        return Response(
            data,
            media_type="application/vnd.tcpdump.pcap",
            headers={"Content-Disposition": f'attachment; filename="{uid}.pcap"'},
        )

    @app.get("/api/v1/dns")
    def dns(
        _: Read,
        name: str | None = None,
        ip: str | None = None,
        since: float | None = None,
        limit: Annotated[int, Query(ge=1, le=PAGE_MAX)] = 100,
    ) -> Response:
        flt = DnsFilter(name=name, ip=ip, since=since, limit=limit)
        rows = _checked(lambda: database.dns(flt))
        return _page([json.dumps({**r, "time": rfc3339(r["time"])}) for r in rows], None)

    return app


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
