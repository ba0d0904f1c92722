"""The web console: a single page served at ``/`` (built from ``console/`` into ``static/``,
no CDN) and the few routes it needs beyond the gateway's API. See ``docs/console.md``.

The page itself holds no data; every call it makes carries the user's credentials, and
the console's own routes go through the one check in ``gateway.console.access``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio
import zmq
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import (
    FileResponse,
    JSONResponse,
    PlainTextResponse,
    Response,
    StreamingResponse,
)
from fastapi.staticfiles import StaticFiles

from gateway.console import live, recent
from gateway.console.access import Principal, console_check
from gateway.console.export import EXPORT_RESPONSES, ExportRequest, run_export
from gateway.console.ops import ops_status
from gateway.http_access import GatewayAccess
from gateway.metrics import GatewayMetrics
from gateway.qpath import QPath
from gateway.router import Router
from tickdb.auth import Identity
from tickerplant.discovery import TickerplantUnavailable
from tickerplant.subscriber import Subscriber, SubscriptionError

STATIC = Path(__file__).parent / "static"
NOT_BUILT = "the console is not built: run `make console` (needs npm) and restart the gateway"


def _names(raw: str) -> list[str] | None:
    names = [n.strip() for n in raw.split(",") if n.strip()]
    return names or None


def mount_console(
    app: FastAPI,
    router: Router,
    metrics: GatewayMetrics,
    tp_address: str | None,
    users: Mapping[str, str] | None = None,
    access: GatewayAccess | None = None,
    orders: Any = None,
) -> None:
    """The page at ``/`` and ``/console/*``: session, export, live, ops. ``access``: the
    API's checks (``[auth]``): an export needs read on its query's tables, a live stream
    on the tables it follows. ``orders``: the gateway's ``OrderPath``, whose order flow
    tells the operations view how each venue answers (None: no venues shown)."""
    auth = access.auth if access is not None else None
    check = console_check(users, auth)
    exporters = [Depends(check)] + ([Depends(access.query)] if access is not None else [])
    errors = recent.install()
    qpath = QPath(router)
    ctx: zmq.Context = zmq.Context.instance()
    api = APIRouter(prefix="/console", tags=["console"])

    @api.get("/session")
    def session(principal: Principal = Depends(check)) -> dict[str, Any]:  # noqa: B008
        """Who the credentials name and their roles: the login page's check."""
        return {**principal.to_json(), "tickerplant": tp_address, "today": _today(router)}

    @api.post(
        "/export", dependencies=exporters, responses=EXPORT_RESPONSES, response_class=Response
    )
    def export(body: ExportRequest) -> Any:
        """Run a query and answer its result as a CSV, Arrow or Parquet file."""
        return run_export(router, qpath, body)

    @api.get("/ops", dependencies=[Depends(check)])
    def ops() -> dict[str, Any]:
        """Components, lags, heartbeats, end-of-day states, tickerplant counters, errors."""
        return ops_status(router, metrics, ctx, tp_address, errors, venue_rows)

    def venue_rows(now: float) -> list[dict[str, Any]]:
        if orders is None:
            return []
        open_orders = orders.router.orders(open_only=True)
        return orders.stream.venues.rows(router.topology.shard_count(), open_orders, now)

    @api.get("/live")
    async def live_rows(
        request: Request,
        principal: Principal = Depends(check),  # noqa: B008
        tables: str = Query("", description="Comma-separated tables; empty: every table."),
        syms: str = Query("", description="Comma-separated syms; empty: every sym."),
        accounts: str = Query("", description="Comma-separated accounts (order flow)."),
    ) -> Any:
        """Rows as they are published, as server-sent events (``hello``, ``rows``, ``eod``)."""
        wanted = _names(tables)
        if auth is not None and auth.enabled:
            identity = auth.authorizer.identity(principal.user or "")
            refused = _unreadable(identity, wanted, router) if identity else "read"
            if identity is not None and refused:
                raise auth.refuse(request, identity, refused)
        if not tp_address:
            return JSONResponse(
                {"error": "unavailable", "message": "this gateway has no tickerplant (--tp)"},
                503,
            )

        def subscribe() -> Subscriber:
            return Subscriber(
                tp_address,
                tables=wanted,
                syms=_names(syms),
                accounts=_names(accounts),
                timeout_s=5.0,
            )

        try:
            sub = await anyio.to_thread.run_sync(subscribe)
        except SubscriptionError as exc:
            return JSONResponse({"error": "bad_query", "message": str(exc)}, 400)
        except (TickerplantUnavailable, ConnectionError) as exc:
            return JSONResponse({"error": "unavailable", "message": str(exc)}, 503)
        return StreamingResponse(
            live.stream(sub, wanted),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    app.include_router(api)
    _mount_page(app)


def _unreadable(identity: Identity, wanted: list[str] | None, router: Router) -> str:
    """What of a live stream's tables ``identity`` may not read ("" when it may read them
    all; no tables named means every table)."""
    names = wanted or sorted(router.catalog.columns)
    denied = [t for t in names if not identity.may("read", t)]
    return f"read {', '.join(denied)}" if denied else ""


def _today(router: Router) -> str:
    """The live session date: the RDBs' (the roll calendar's), else UTC's."""
    for state in router.topology.states:
        if state.role == "rdb" and state.info is not None and state.info.date is not None:
            return state.info.date.isoformat()
    return dt.datetime.now(dt.UTC).date().isoformat()


def _mount_page(app: FastAPI) -> None:
    """``/`` answers the page; ``/console/assets`` its scripts and styles (hashed names,
    so they may be cached for good)."""
    index = STATIC / "index.html"

    @app.get("/", include_in_schema=False)
    def page() -> Any:
        if not index.exists():
            return PlainTextResponse(NOT_BUILT, 503)
        return FileResponse(index, headers={"Cache-Control": "no-cache"})

    assets = STATIC / "assets"
    if assets.is_dir():
        app.mount("/console/assets", StaticFiles(directory=assets), name="console-assets")
