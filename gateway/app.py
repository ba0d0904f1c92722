"""The gateway's HTTP API (FastAPI; OpenAPI at ``/docs``). See ``docs/gateway.md``."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any, Literal, TypeVar

from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway import formats
from gateway.audit_api import audit_routes
from gateway.auth_http import HttpAuth, install_auth_errors, path_param
from gateway.client_limits import ClientQueries, ClientQueriesCollector, QueryAdmission
from gateway.console import mount_console
from gateway.errors import HTTP_STATUS, QueryError
from gateway.fix_ops import FixCollector, fix_routes
from gateway.health import backend_health
from gateway.http_access import GatewayAccess
from gateway.merge import GatewayResult
from gateway.metrics import GatewayMetrics
from gateway.openapi import (
    ADMISSION_RESPONSES,
    PLAN_KINDS,
    QUERY_ERROR_PATHS,
    QUERY_RESPONSES,
    ErrorBody,
    error_responses,
    exactly_one_string_of,
    install,
)
from gateway.orders_api import bad_order_request, order_routes
from gateway.qpath import QPath
from gateway.router import Router
from queries.q import TranslationError
from tickdb.auth import AuthConfig, Authorizer

log = logging.getLogger("gateway.query")
T = TypeVar("T")


class QueryRequest(BaseModel):
    """Exactly one of ``sql`` and ``q``."""

    model_config = ConfigDict(json_schema_extra=exactly_one_string_of("sql", "q"))

    sql: str | None = Field(
        None, description="One read-only DuckDB SQL statement over the logical tables."
    )
    q: str | None = Field(
        None, description="A q-sql query (see docs/q.md), translated to SQL; instead of sql."
    )
    format: Literal["json", "arrow", "csv"] | None = Field(
        None, description="Result encoding; overrides the Accept header."
    )
    max_rows: int | None = Field(None, ge=0, description="Row limit (capped by the gateway's).")
    timeout_s: float | None = Field(
        None, ge=0.001, description="Time limit, 1 ms at least (capped likewise)."
    )
    allow_partial: bool = Field(
        False,
        description="If a backend fails, answer from the others and flag the result "
        "partial instead of failing.",
    )

    @model_validator(mode="after")
    def _one_query(self) -> QueryRequest:
        if (self.sql is None) == (self.q is None):
            raise ValueError("give exactly one of sql and q")
        return self


def error_response(exc: QueryError) -> JSONResponse:
    log.warning(
        "query failed (%s): %s", exc.kind, str(exc).splitlines()[0][:300] if str(exc) else ""
    )
    return JSONResponse(
        {"error": exc.kind, "message": str(exc)}, status_code=HTTP_STATUS.get(exc.kind, 500)
    )


def q_error_response(exc: TranslationError) -> JSONResponse:
    # A q query outside the subset is a bad query; the position points the user at it.
    log.warning("q query refused: %s", str(exc).splitlines()[0][:300])
    return JSONResponse(
        {"error": "bad_query", "message": str(exc), "position": exc.position}, status_code=400
    )


def create_app(
    router: Router,
    *,
    refresh_s: float = 1.0,
    orders: Any = None,
    tp_address: str | None = None,
    order_port: str | None = None,
    users: Mapping[str, str] | None = None,
    client_queries: ClientQueries | None = None,
    auth: HttpAuth | None = None,
) -> FastAPI:
    """The app; ``orders`` is the gateway's ``OrderPath`` (None: order routes answer 503);
    ``users`` is the console's stand-in check (``gateway.console.access``);
    ``client_queries`` counts queries per client, shared with the kdb+ port (None: its own);
    ``auth`` checks every route (None: ``[auth] mode = "none"``, every route open)."""
    metrics = GatewayMetrics(router.topology, router.executor)
    auth = auth or HttpAuth(Authorizer(AuthConfig()))
    access = GatewayAccess(auth, router)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        router.topology.start(refresh_s)
        yield
        router.close()

    app = FastAPI(
        title="tickdb gateway",
        lifespan=lifespan,
        description="One logical table per name across today (RDBs), past days "
        "(HDBs) and every shard, with a `date` column.",
    )
    app.exception_handler(RequestValidationError)(invalid_request)
    app.exception_handler(StarletteHTTPException)(http_error)
    running = client_queries or ClientQueries(router.limits.client_queries)
    metrics.registry.register(ClientQueriesCollector(running))
    app.add_middleware(
        QueryAdmission,
        max_query_chars=router.limits.max_query_chars,
        queries=running,
        identify=auth.counted_user if auth is not None else None,
    )
    install(app, auth_on=auth.enabled)
    install_auth_errors(app)
    app.include_router(
        order_routes(
            lambda: orders.router if orders is not None else None, tp_address, order_port, auth
        )
    )
    fix_acceptor = lambda: orders.fix if orders is not None else None  # noqa: E731
    app.include_router(fix_routes(fix_acceptor, auth))
    app.include_router(audit_routes(auth))
    metrics.registry.register(FixCollector(fix_acceptor))
    add_query_routes(app, router, metrics, access)
    add_catalog_routes(app, router, access)
    add_health_routes(app, router, metrics, access)
    mount_console(
        app, router, metrics, tp_address, users, access if auth is not None else None, orders
    )
    return app


async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    """A malformed request is a bad query too: 400 with what was wrong, like DuckDB's."""
    problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
    return _malformed(request, problems)


def _malformed(request: Request, problems: str) -> JSONResponse:
    if request.url.path not in QUERY_ERROR_PATHS:
        return bad_order_request(request, problems)
    return error_response(QueryError("bad_query", f"invalid request: {problems}"))


# The error kind of FastAPI's and Starlette's own refusals, by status.
HTTP_KINDS = {
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
}


async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    """FastAPI's and Starlette's own refusals (a body that is not JSON at all, an unknown
    path, a method not allowed) in the gateway's error shape, not ``{"detail": ...}``."""
    if exc.status_code == 400:
        return _malformed(request, str(exc.detail))
    kind = HTTP_KINDS.get(exc.status_code, "http_error")
    return JSONResponse(
        {"error": kind, "message": str(exc.detail)},
        status_code=exc.status_code,
        headers=exc.headers,
    )


def add_query_routes(
    app: FastAPI, router: Router, metrics: GatewayMetrics, access: GatewayAccess
) -> None:
    """``POST /query`` (SQL or q, counted in the metrics) and ``POST /query/plan``."""
    qpath = QPath(router)
    readers = [Depends(access.query)]  # read on every table the query reads

    @app.post("/query", responses=QUERY_RESPONSES, response_class=Response, dependencies=readers)
    def query(
        body: QueryRequest,
        format: Literal["json", "arrow", "csv"] | None = Query(
            None, description="Result encoding; the body's format wins; else Accept."
        ),
        accept: str | None = Header(None),
    ) -> Response:
        """Run SQL or q; JSON, Arrow IPC stream or CSV by ``format`` or ``Accept``."""
        try:
            fmt = formats.choose(body.format or format, accept)
        except ValueError as exc:
            return error_response(QueryError("bad_query", str(exc)))
        started = time.monotonic()
        limits: dict[str, Any] = {
            "timeout_s": body.timeout_s,
            "max_rows": body.max_rows,
            "allow_partial": body.allow_partial,
        }
        keys: tuple[str, ...] = ()
        try:
            if body.q is not None:
                answer = qpath.run(body.q, **limits)
                result, keys = answer.result, answer.keys
            else:
                result = router.run_sql(str(body.sql), **limits)
        except TranslationError as exc:
            metrics.queries.labels("none", "bad_query").inc()
            return q_error_response(exc)
        except QueryError as exc:
            metrics.queries.labels("none", exc.kind).inc()
            return error_response(exc)
        metrics.queries.labels(result.plan, "partial" if result.partial else "ok").inc()
        metrics.seconds.labels(result.plan).observe(time.monotonic() - started)
        metrics.rows.inc(result.table.num_rows)
        return _encoded(result, fmt, keys)

    @app.post(
        "/query/plan",
        responses={**error_responses(PLAN_KINDS), **ADMISSION_RESPONSES},
        dependencies=readers,
    )
    def plan(body: QueryRequest) -> Any:
        """How the query would run: the mode, each backend query and the merge query."""
        try:
            if body.q is not None:
                translation, planned = qpath.plan(body.q)
                return {"sql": translation.sql, **planned.explain()}
            return router.plan(str(body.sql)).explain()
        except TranslationError as exc:
            return q_error_response(exc)
        except QueryError as exc:
            return error_response(exc)


def add_catalog_routes(app: FastAPI, router: Router, access: GatewayAccess) -> None:
    """``GET /tables`` and ``GET /tables/{name}``: the logical tables and where rows are."""

    readable_tables = Depends(access.readable)

    @app.get("/tables")
    async def tables(readable: list[str] = readable_tables) -> list[dict[str, Any]]:
        """Every logical table (the caller may read) with its columns and row counts by tier."""
        return await _beside_queries(lambda: [_table(router, name) for name in readable])

    @app.get(
        "/tables/{name}",
        responses={404: {"model": ErrorBody}},
        dependencies=[Depends(access.auth.require("read", path_param("name")))],
    )
    async def table(name: str) -> Any:
        """One table: columns (q types), row counts by tier and by backend, dates held."""
        return await _beside_queries(lambda: _one_table(router, name))


def _one_table(router: Router, name: str) -> Any:
    if name not in router.catalog.columns:
        return JSONResponse(
            {
                "error": "not_found",
                "message": f"no table {name!r}; known: {', '.join(sorted(router.catalog.columns))}",
            },
            404,
        )
    return _table(router, name, detail=True)


def add_health_routes(
    app: FastAPI, router: Router, metrics: GatewayMetrics, access: GatewayAccess
) -> None:
    """``GET /health`` (every backend, 503 if one is down) and ``GET /metrics``."""

    show_backends = Depends(access.health_detail)

    @app.get("/health")
    async def health(detail: bool = show_backends) -> JSONResponse:
        """Every backend and each of its replicas: up or not, current, sequence lag, last
        heartbeat, parts routed and failed over. 503 if a backend has no replica up. With
        auth on, only ``{"status"}`` unless the caller may read or administer.

        Reads only what the topology thread keeps: answered on the event loop, it never
        waits for a thread that queries may be holding."""
        backends = [backend_health(s) for s in router.topology.states]
        ok = all(b["up"] for b in backends)
        # A replica down while another serves its backend: every query is still answered.
        down = sum(not r["up"] for b in backends for r in b["replicas"])
        body: dict[str, Any] = {"status": "ok" if ok else "degraded"}
        if detail:
            body["replicas_down"] = down
            body["backends"] = backends
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get("/metrics", response_class=Response, dependencies=[Depends(access.monitor)])
    async def prometheus() -> Response:
        body = await _beside_queries(metrics.render)
        return Response(body, media_type="text/plain; version=0.0.4")


# Metrics and the catalog answer on threads of their own, never behind queries (which hold
# the worker threads of sync routes for up to their time limit).
_STATUS_THREADS = ThreadPoolExecutor(2, thread_name_prefix="gateway-status")


async def _beside_queries(work: Callable[[], T]) -> T:
    return await asyncio.get_running_loop().run_in_executor(_STATUS_THREADS, work)


def _encoded(result: GatewayResult, fmt: str, keys: tuple[str, ...]) -> Response:
    body = formats.encode(result, fmt)
    headers = formats.headers(result)
    if keys:
        # A keyed q result (select ... by): Arrow carries the keys in its schema metadata
        # (tickdb.keys); JSON gets a "keys" member and every format the header.
        headers["X-Tickdb-Keys"] = ",".join(keys)
        if fmt == "json":
            body = b'{"keys":' + json.dumps(list(keys)).encode() + b"," + body[1:]
    return Response(body, media_type=formats.FORMATS[fmt], headers=headers)


def _table(router: Router, name: str, detail: bool = False) -> dict[str, Any]:
    rows = {"rdb": 0, "hdb": 0}
    per_backend = []
    for state in router.topology.states:
        meta = state.tables().get(name)
        if meta is None:
            continue
        rows[state.role] = rows.get(state.role, 0) + meta.rows
        per_backend.append(
            {
                "backend": state.name,
                "role": state.role,
                "shard": state.shard.to_json() if state.shard else None,
                "rows": meta.rows,
                "dates": [d.isoformat() for d in meta.dates],
            }
        )
    out: dict[str, Any] = {
        "name": name,
        "columns": router.catalog.columns[name] + [("date", "date")],
        "rows": rows,
    }
    if detail:
        out["backends"] = per_backend
    return out
