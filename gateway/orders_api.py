"""HTTP routes of the order path: entry, cancel, replace, cancel-all, orders, positions, risk.

Every refusal is a JSON body ``{"error", "code", "message", "order"}``: ``code`` is the typed
reason (``docs/risk.md``), and the refusal is recorded in the ``order`` table when it names
an order. See ``docs/orders.md``.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from gateway.order_router import (
    OrderRejected,
    OrderRouter,
    OrdersUnavailable,
    order_dict,
)
from orders.model import (
    CancelRequest,
    MassCancel,
    NewOrder,
    OrdType,
    ReplaceRequest,
    Side,
    TimeInForce,
)
from orders.risk import TradingState

log = logging.getLogger(__name__)


class OrderIn(BaseModel):
    account: str = Field(min_length=1, max_length=64)
    sym: str = Field(min_length=1, max_length=64)
    side: Side
    qty: int = Field(description="Quantity; must be positive (else a bad_quantity reject).")
    price: float | None = Field(None, description="Limit price on the sym's tick; none for market.")
    type: OrdType = OrdType.LIMIT
    tif: TimeInForce = TimeInForce.DAY
    strategy: str = Field("", max_length=64)
    clordid: str | None = Field(
        None,
        max_length=64,
        description="Client order id, unique per account and day; a retry "
        "with the same one returns the original order. Generated when left out.",
    )
    intended: bool = Field(False, description="Skip the duplicate-order-by-content check.")
    wait: bool = Field(
        True,
        description="Wait for the venue's first answer; false returns once the request is "
        "sequenced (status pending_new) and the answer comes as order events.",
    )


class CancelIn(BaseModel):
    account: str = Field(min_length=1, max_length=64)
    orig_clordid: str = Field(min_length=1, max_length=64)
    clordid: str | None = Field(None, max_length=64)


class ReplaceIn(BaseModel):
    account: str = Field(min_length=1, max_length=64)
    orig_clordid: str = Field(min_length=1, max_length=64)
    clordid: str | None = Field(None, max_length=64, description="The order's id from now on.")
    qty: int | None = Field(None, description="New total quantity, filled part included.")
    price: float | None = None


class MassCancelIn(BaseModel):
    account: str = Field("", max_length=64)
    strategy: str = Field("", max_length=64)
    sym: str = Field("", max_length=64)


class ScopeIn(BaseModel):
    account: str | None = Field(None, max_length=64, description="None: every account.")
    strategy: str | None = Field(None, max_length=64)


class LimitsIn(BaseModel):
    account: str | None = Field(None, max_length=64, description="None: the defaults.")
    changes: dict[str, Any]


class StateIn(BaseModel):
    state: Literal["active", "reducing", "halted"]
    account: str | None = Field(None, max_length=64, description="None: global.")


class RejectBody(BaseModel):
    error: str
    code: str
    message: str
    order: dict[str, Any] | None = None


REJECTS: dict[int | str, dict[str, Any]] = {
    422: {"model": RejectBody, "description": "refused by a risk check or the order's state"},
    503: {"model": RejectBody, "description": "the order path is not running"},
}


def _new_id() -> str:
    return uuid.uuid4().hex[:20]


def rejected(exc: OrderRejected) -> JSONResponse:
    return JSONResponse(
        {
            "error": "rejected",
            "code": str(exc.code),
            "message": str(exc),
            "order": order_dict(exc.order) if exc.order is not None else None,
        },
        status_code=422,
    )


def bad_order_request(request: Request, problems: str) -> JSONResponse:
    """A malformed order-path request: 400, and a line in the log (it names no order, so
    there is nothing to record in the ``order`` table)."""
    log.warning("bad request to %s: %s", request.url.path, problems)
    return JSONResponse(
        {"error": "bad_request", "code": "bad_request", "message": problems, "order": None},
        status_code=400,
    )


def unavailable(message: str) -> JSONResponse:
    return JSONResponse(
        {"error": "unavailable", "code": "orders_unavailable", "message": message, "order": None},
        status_code=503,
    )


def order_routes(
    get_router: Any, tp_address: str | None, order_port: str | None = None
) -> APIRouter:
    """The routes; ``get_router()`` is the gateway's OrderRouter or None (orders off)."""
    api = APIRouter(tags=["orders"])

    def router_or_503() -> OrderRouter:
        router = get_router()
        if router is None:
            raise OrdersUnavailable("orders are off: this gateway has no tickerplant (--tp)")
        return router

    def guarded(call: Any) -> Any:
        try:
            return call(router_or_503())
        except OrderRejected as exc:
            return rejected(exc)
        except OrdersUnavailable as exc:
            return unavailable(str(exc))

    @api.post("/orders", responses=REJECTS)
    def submit(body: OrderIn) -> Any:
        """Submit an order: risk checks, then the venue of its sym; returns its state."""
        req = NewOrder(
            account=body.account,
            sym=body.sym,
            clordid=body.clordid or _new_id(),
            side=body.side,
            qty=body.qty,
            ord_type=body.type,
            price=body.price,
            tif=body.tif,
            strategy=body.strategy,
        )

        def run(router: OrderRouter) -> Any:
            result = router.submit(req, intended=body.intended, wait=body.wait)
            return {**order_dict(result.order), "duplicate": result.duplicate}

        return guarded(run)

    @api.post("/orders/cancel", responses=REJECTS)
    def cancel(body: CancelIn) -> Any:
        """Cancel an order by its ClOrdID."""
        req = CancelRequest(body.account, "", body.clordid or _new_id(), body.orig_clordid)
        return guarded(lambda router: order_dict(router.cancel(req)))

    @api.post("/orders/replace", responses=REJECTS)
    def replace(body: ReplaceIn) -> Any:
        """Change an order's price and/or total quantity (a price change or a larger
        quantity loses time priority)."""
        req = ReplaceRequest(
            body.account,
            "",
            body.clordid or _new_id(),
            body.orig_clordid,
            qty=body.qty,
            price=body.price,
        )
        return guarded(lambda router: order_dict(router.replace(req)))

    @api.post("/orders/cancel-all", responses=REJECTS)
    def cancel_all(body: MassCancelIn) -> Any:
        """Cancel every open order of an account, strategy or sym (or everything)."""
        req = MassCancel(account=body.account, strategy=body.strategy, sym=body.sym)
        req = MassCancel(req.account, req.strategy, req.sym, clordid=_new_id())

        def run(router: OrderRouter) -> Any:
            orders = router.mass_cancel(req)
            return {"canceled": sum(1 for o in orders if not o.is_open), "orders": len(orders)}

        return guarded(run)

    @api.get("/orders", responses=REJECTS)
    def orders(
        account: str = Query(""),
        open_only: bool = Query(False, alias="open", description="Only working orders."),
    ) -> Any:
        """Orders of the trading day (and working GTC orders), newest last."""
        return guarded(
            lambda router: [order_dict(o) for o in router.orders(account, open_only=open_only)]
        )

    @api.get("/orders/{account}/{clordid}", responses={404: {"model": RejectBody}, **REJECTS})
    def order(account: str, clordid: str) -> Any:
        """One order's status, by any of its ClOrdIDs."""

        def run(router: OrderRouter) -> Any:
            found = router.order(account, clordid)
            if found is None:
                return JSONResponse(
                    {
                        "error": "not_found",
                        "code": "unknown_order",
                        "message": f"no order {clordid!r} for account {account!r} today",
                        "order": None,
                    },
                    404,
                )
            return order_dict(found)

        return guarded(run)

    @api.get("/positions", responses=REJECTS)
    def positions(account: str = Query("")) -> Any:
        """Position, average price and realized/unrealized P&L per account and sym."""

        def run(router: OrderRouter) -> Any:
            with router.lock:
                return [p.to_dict() for p in router.risk.positions.positions(account or None)]

        return guarded(run)

    @api.get("/orders-stream")
    def stream() -> Any:
        """Where to subscribe for order events (the tickerplant and the tables), and the
        order-entry port of ``tickdb.Orders``."""
        return {"tickerplant": tp_address, "tables": ["order", "fill"], "order_port": order_port}

    # -- admin risk requests ------------------------------------------------------------------
    @api.get("/risk", responses=REJECTS)
    def risk_status() -> Any:
        """Limits (defaults and per account), trading states, kill switches, counters."""

        def run(router: OrderRouter) -> Any:
            with router.lock:
                return router.risk.status()

        return guarded(run)

    def admin(action: str, body: BaseModel, change: Any) -> Any:
        account = getattr(body, "account", None)
        strategy = getattr(body, "strategy", None)

        def run(router: OrderRouter) -> Any:
            with router.lock:
                try:
                    applied = change(router.risk)
                except ValueError as exc:
                    raise OrderRejected("bad_limits", str(exc)) from None
                # The request itself is what a restarted gateway re-applies.
                detail = {"request": body.model_dump(), "applied": applied}
                router.admin(action, account or "", strategy or "", detail)
            if action == "kill":
                targets = router.mass_cancel(
                    MassCancel(account or "", strategy or "", "", clordid=_new_id())
                )
                detail = {**detail, "canceled": sum(1 for o in targets if not o.is_open)}
            return detail

        return guarded(run)

    @api.post("/risk/limits", responses=REJECTS)
    def set_limits(body: LimitsIn) -> Any:
        """Change limits of an account (or the defaults) at runtime; recorded."""
        return admin("limits", body, lambda r: r.set_limits(body.account, body.changes))

    @api.post("/risk/state", responses=REJECTS)
    def set_state(body: StateIn) -> Any:
        """Trading state of an account or global: active, reducing or halted; recorded."""
        return admin(
            "state", body, lambda r: r.set_trading_state(TradingState(body.state), body.account)
        )

    @api.post("/risk/kill", responses=REJECTS)
    def kill(body: ScopeIn) -> Any:
        """Kill switch (account, strategy or global): refuse new orders, cancel every
        working order on every venue."""
        return admin("kill", body, lambda r: r.kill(account=body.account, strategy=body.strategy))

    @api.post("/risk/resume", responses=REJECTS)
    def resume(body: ScopeIn) -> Any:
        """Re-enable trading after a kill or a throttle halt; recorded."""
        return admin(
            "resume", body, lambda r: r.resume(account=body.account, strategy=body.strategy)
        )

    return api
