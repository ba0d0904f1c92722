"""HTTP routes of the order path: entry, cancel, replace, cancel-all, orders, positions, risk.

Every refusal is a JSON body ``{"error", "code", "message", "order"}``: ``code`` is the typed
reason (``docs/risk.md``), and the refusal is recorded in the ``order`` table when it names
an order. See ``docs/orders.md``.

Who may (``[auth]``, ``docs/security.md``): entry, cancel, replace and status need ``trade``
on the order's account; lists, positions and a cancel-all without an account cover only the
identity's accounts; ``/orders-stream`` needs ``trade`` on some account; ``/risk`` and its
changes need ``admin``. Each order and admin request is an audit record (who, what, from
where, and how it ended).
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from gateway.auth_http import HttpAuth, path_param
from gateway.openapi import BAD_REQUEST, RejectBody
from gateway.order_json import order_dict
from gateway.order_router import OrderRejected, OrderRouter, OrdersUnavailable
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
from tickdb.auth import AuthConfig, Authorizer, Identity

log = logging.getLogger(__name__)


class OrderIn(BaseModel):
    account: str = Field(min_length=1, max_length=64)
    sym: str = Field(min_length=1, max_length=64)
    side: Side
    qty: int = Field(description="Quantity; must be positive (else a bad_quantity reject).")
    # Finite, as the order port's JSON and FIX take it: an infinite price could not even be
    # written back in the reject's JSON answer.
    price: float | None = Field(
        None, allow_inf_nan=False, description="Limit price on the sym's tick; none for market."
    )
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
    price: float | None = Field(None, allow_inf_nan=False)


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


REJECTS: dict[int | str, dict[str, Any]] = {
    400: BAD_REQUEST,
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


def _outcome(answer: Any) -> dict[str, Any]:
    """What an order or admin request's answer says, for its audit record: a refusal's
    code, or the order's status."""
    if isinstance(answer, JSONResponse):
        body = json.loads(bytes(answer.body))
        return {"ok": False, "result": body.get("code") or body.get("error")}
    if isinstance(answer, dict) and "status" in answer:
        return {"ok": True, "result": answer["status"], "order_id": answer.get("order_id")}
    return {"ok": True}


def order_routes(
    get_router: Any,
    tp_address: str | None,
    order_port: str | None = None,
    auth: HttpAuth | None = None,
) -> APIRouter:
    """The routes; ``get_router()`` is the gateway's OrderRouter or None (orders off)."""
    api = APIRouter(tags=["orders"])
    auth = auth or HttpAuth(Authorizer(AuthConfig()))
    anyone = Depends(auth.identity)
    traders = Depends(auth.require_role("trade"))
    admins = Depends(auth.require("admin"))

    def accounts_of(who: Identity) -> frozenset[str] | None:
        """The accounts ``who`` may trade; None: every one."""
        role = who.role("trade")
        if not auth.enabled or (role is not None and role.resources is None):
            return None
        return role.resources if role is not None else frozenset()

    def audited(
        request: Request, who: Identity, action: str, detail: dict[str, Any], answer: Any
    ) -> Any:
        if not auth.audit.enabled:
            return answer
        auth.record(
            request,
            who.name,
            action,
            **{k: v for k, v in detail.items() if v is not None},
            **_outcome(answer),
        )
        return answer

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
    def submit(body: OrderIn, request: Request, who: Identity = anyone) -> Any:
        """Submit an order: risk checks, then the venue of its sym; returns its state."""
        auth.check(request, who, "trade", body.account)
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

        fields = body.model_dump(include={"account", "sym", "side", "qty", "price", "type", "tif"})
        return audited(request, who, "order.new", {**fields, "clordid": req.clordid}, guarded(run))

    @api.post("/orders/cancel", responses=REJECTS)
    def cancel(body: CancelIn, request: Request, who: Identity = anyone) -> Any:
        """Cancel an order by its ClOrdID."""
        auth.check(request, who, "trade", body.account)
        req = CancelRequest(body.account, "", body.clordid or _new_id(), body.orig_clordid)
        answer = guarded(lambda router: order_dict(router.cancel(req)))
        detail = {"account": body.account, "orig_clordid": body.orig_clordid}
        return audited(request, who, "order.cancel", {**detail, "clordid": req.clordid}, answer)

    @api.post("/orders/replace", responses=REJECTS)
    def replace(body: ReplaceIn, request: Request, who: Identity = anyone) -> Any:
        """Change an order's price and/or total quantity (a price change or a larger
        quantity loses time priority)."""
        auth.check(request, who, "trade", body.account)
        req = ReplaceRequest(
            body.account,
            "",
            body.clordid or _new_id(),
            body.orig_clordid,
            qty=body.qty,
            price=body.price,
        )
        answer = guarded(lambda router: order_dict(router.replace(req)))
        detail = {**body.model_dump(exclude={"clordid"}), "clordid": req.clordid}
        return audited(request, who, "order.replace", detail, answer)

    @api.post("/orders/cancel-all", responses=REJECTS)
    def cancel_all(body: MassCancelIn, request: Request, who: Identity = traders) -> Any:
        """Cancel every open order of an account, strategy or sym (or everything); without
        an account, of every account the caller may trade."""
        if body.account:
            auth.check(request, who, "trade", body.account)
        allowed = accounts_of(who)
        scopes = [body.account] if body.account or allowed is None else sorted(allowed)
        reqs = [MassCancel(a, body.strategy, body.sym, clordid=_new_id()) for a in scopes]

        def run(router: OrderRouter) -> Any:
            orders = [o for req in reqs for o in router.mass_cancel(req)]
            return {"canceled": sum(1 for o in orders if not o.is_open), "orders": len(orders)}

        detail = {**body.model_dump(), "accounts": scopes if allowed is not None else None}
        return audited(request, who, "order.cancel_all", detail, guarded(run))

    @api.get("/orders", responses=REJECTS)
    def orders(
        request: Request,
        account: str = Query(""),
        open_only: bool = Query(False, alias="open", description="Only working orders."),
        who: Identity = traders,
    ) -> Any:
        """Orders of the trading day (and working GTC orders), newest last; without an
        account, of every account the caller may trade."""
        if account:
            auth.check(request, who, "trade", account)
        allowed = accounts_of(who)

        def run(router: OrderRouter) -> Any:
            found = router.orders(account, open_only=open_only)
            return [order_dict(o) for o in found if allowed is None or o.account in allowed]

        return guarded(run)

    @api.get(
        "/orders/{account}/{clordid}",
        responses={404: {"model": RejectBody}, **REJECTS},
        dependencies=[Depends(auth.require("trade", path_param("account")))],
    )
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
    def positions(request: Request, account: str = Query(""), who: Identity = traders) -> Any:
        """Position, average price and realized/unrealized P&L per account and sym; without
        an account, of every account the caller may trade."""
        if account:
            auth.check(request, who, "trade", account)
        allowed = accounts_of(who)

        def run(router: OrderRouter) -> Any:
            with router.lock:
                found = router.risk.positions.positions(account or None)
                return [p.to_dict() for p in found if allowed is None or p.account in allowed]

        return guarded(run)

    @api.get("/orders-stream", dependencies=[traders])
    def stream() -> Any:
        """Where to subscribe for order events (the tickerplant and the tables), and the
        order-entry port of ``tickdb.Orders``."""
        return {"tickerplant": tp_address, "tables": ["order", "fill"], "order_port": order_port}

    # -- admin risk requests ------------------------------------------------------------------
    @api.get("/risk", responses=REJECTS, dependencies=[admins])
    def risk_status() -> Any:
        """Limits (defaults and per account), trading states, kill switches, counters."""

        def run(router: OrderRouter) -> Any:
            with router.lock:
                return router.risk.status()

        return guarded(run)

    def admin(request: Request, who: Identity, action: str, body: BaseModel, change: Any) -> Any:
        answer = apply(action, body, change)
        if auth.audit.enabled:  # rare, and each one matters: on disk before the answer
            detail = {**body.model_dump(), **_outcome(answer)}
            auth.record(request, who.name, f"admin.{action}", sync=True, **detail)
        return answer

    def apply(action: str, body: BaseModel, change: Any) -> Any:
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
    def set_limits(body: LimitsIn, request: Request, who: Identity = admins) -> Any:
        """Change limits of an account (or the defaults) at runtime; recorded."""
        return admin(
            request, who, "limits", body, lambda r: r.set_limits(body.account, body.changes)
        )

    @api.post("/risk/state", responses=REJECTS)
    def set_state(body: StateIn, request: Request, who: Identity = admins) -> Any:
        """Trading state of an account or global: active, reducing or halted; recorded."""
        return admin(
            request,
            who,
            "state",
            body,
            lambda r: r.set_trading_state(TradingState(body.state), body.account),
        )

    @api.post("/risk/kill", responses=REJECTS)
    def kill(body: ScopeIn, request: Request, who: Identity = admins) -> Any:
        """Kill switch (account, strategy or global): refuse new orders, cancel every
        working order on every venue."""
        return admin(
            request,
            who,
            "kill",
            body,
            lambda r: r.kill(account=body.account, strategy=body.strategy),
        )

    @api.post("/risk/resume", responses=REJECTS)
    def resume(body: ScopeIn, request: Request, who: Identity = admins) -> Any:
        """Re-enable trading after a kill or a throttle halt; recorded."""
        return admin(
            request,
            who,
            "resume",
            body,
            lambda r: r.resume(account=body.account, strategy=body.strategy),
        )

    return api
