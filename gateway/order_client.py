"""The order half of ``tickdb.Client``: submit, cancel, replace, cancel-all, orders,
positions, admin risk requests, and an iterator of an account's order events.

    with tickdb.Client() as client:
        order = client.submit("A1", "AAPL", "buy", 100, 189.50)
        client.cancel("A1", order["clordid"])
        for event in client.order_events("A1"):   # order and fill rows, live
            ...

A refused request raises ``OrderRejected`` with its typed ``code`` (``docs/risk.md``) and
the order as the gateway recorded it. ``submit`` chooses the ClOrdID when none is given, so
a retry after a timeout (the client's HTTP layer retries a dropped connection once) is the
same request and never creates a second order.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from gateway.client_errors import GatewayError, Reply

if TYPE_CHECKING:
    from tickerplant.subscriber import Start, Subscriber


class OrderRejected(GatewayError):
    """The gateway refused an order request: ``code`` says why, ``order`` is its state."""

    def __init__(self, code: str, message: str, status: int, order: dict[str, Any] | None):
        super().__init__("rejected", message, status)
        self.code = code
        self.order = order


def _check(reply: Reply) -> Any:
    if reply.is_success:
        return reply.json()
    try:
        body = reply.json()
    except ValueError:
        raise GatewayError("internal", reply.text[:500], reply.status) from None
    if body.get("error") == "rejected":
        raise OrderRejected(str(body["code"]), str(body["message"]), reply.status, body["order"])
    kind = str(body.get("code") or body.get("error") or "bad_request")
    raise GatewayError(kind, str(body.get("message") or body), reply.status)


def new_order_fields(
    account: str,
    sym: str,
    side: str,
    qty: int,
    price: float | None,
    tif: str,
    strategy: str,
    clordid: str | None,
) -> dict[str, Any]:
    """A new order's fields as HTTP and the order port both take them; a ClOrdID is chosen
    here when none is given, so a retry of the same call is the same request."""
    return {
        "account": account,
        "sym": sym,
        "side": side,
        "qty": qty,
        "price": price,
        "type": "market" if price is None else "limit",
        "tif": tif,
        "strategy": strategy,
        "clordid": clordid or uuid.uuid4().hex[:20],
    }


class OrderMethods:
    """Mixed into ``Client``; needs its ``get`` and ``post``."""

    def get(self, path: str) -> Reply:  # pragma: no cover - provided by Client
        raise NotImplementedError

    def post(
        self, path: str, body: dict[str, Any], *, accept: str | None = None
    ) -> Reply:  # pragma: no cover - provided by Client
        raise NotImplementedError

    def order_request(self, method: str, path: str, body: Any = None) -> Any:
        reply = self.post(path, body) if method == "POST" else self.get(path)
        return _check(reply)

    def submit(
        self,
        account: str,
        sym: str,
        side: str,
        qty: int,
        price: float | None = None,
        *,
        tif: str = "day",
        strategy: str = "",
        clordid: str | None = None,
        intended: bool = False,
        wait: bool = True,
    ) -> dict[str, Any]:
        """A limit order (or market with ``price=None``); returns its state after the
        venue's first answer: accepted, filled, or canceled (IOC/FOK). ``wait=False``
        returns once it is sequenced (pending_new); the answer comes as events."""
        body = new_order_fields(account, sym, side, qty, price, tif, strategy, clordid)
        body.update(intended=intended, wait=wait)
        return dict(_check(self.post("/orders", body)))

    def cancel(
        self, account: str, clordid: str, *, cancel_clordid: str | None = None
    ) -> dict[str, Any]:
        """Cancel the order ``clordid``; ``cancel_clordid`` names the request (a retry with
        the same one is answered without a second cancel)."""
        body = {
            "account": account,
            "orig_clordid": clordid,
            "clordid": cancel_clordid or uuid.uuid4().hex[:20],
        }
        return dict(_check(self.post("/orders/cancel", body)))

    def replace(
        self,
        account: str,
        clordid: str,
        *,
        qty: int | None = None,
        price: float | None = None,
        new_clordid: str | None = None,
    ) -> dict[str, Any]:
        """New total quantity and/or price; the order is known by ``new_clordid`` after."""
        body = {
            "account": account,
            "orig_clordid": clordid,
            "clordid": new_clordid or uuid.uuid4().hex[:20],
            "qty": qty,
            "price": price,
        }
        return dict(_check(self.post("/orders/replace", body)))

    def cancel_all(self, account: str = "", strategy: str = "", sym: str = "") -> dict[str, Any]:
        body = {"account": account, "strategy": strategy, "sym": sym}
        return dict(_check(self.post("/orders/cancel-all", body)))

    def orders(self, account: str = "", open_only: bool = False) -> list[dict[str, Any]]:
        flag = "true" if open_only else "false"
        return list(_check(self.get(f"/orders?account={account}&open={flag}")))

    def order(self, account: str, clordid: str) -> dict[str, Any]:
        return dict(_check(self.get(f"/orders/{account}/{clordid}")))

    def positions(self, account: str = "") -> list[dict[str, Any]]:
        return list(_check(self.get(f"/positions?account={account}")))

    def risk(self) -> dict[str, Any]:
        return dict(_check(self.get("/risk")))

    def set_limits(self, changes: dict[str, Any], account: str | None = None) -> dict[str, Any]:
        return dict(_check(self.post("/risk/limits", {"account": account, "changes": changes})))

    def set_trading_state(self, state: str, account: str | None = None) -> dict[str, Any]:
        return dict(_check(self.post("/risk/state", {"state": state, "account": account})))

    def kill(self, account: str | None = None, strategy: str | None = None) -> dict[str, Any]:
        body = {"account": account, "strategy": strategy}
        return dict(_check(self.post("/risk/kill", body)))

    def resume(self, account: str | None = None, strategy: str | None = None) -> dict[str, Any]:
        body = {"account": account, "strategy": strategy}
        return dict(_check(self.post("/risk/resume", body)))

    def order_events(self, account: str, *, start: Start = "live") -> Subscriber:
        """The account's ``order`` and ``fill`` updates over ZeroMQ, straight from the
        tickerplant (filtered there: other accounts' rows never reach this process).

        Subscribed when this returns; iterate it for ``Update``s, and ``close()`` it."""
        from tickerplant.subscriber import Subscriber

        where = _check(self.get("/orders-stream"))
        if not where.get("tickerplant"):
            raise GatewayError("unavailable", "this gateway takes no orders", 503)
        return Subscriber(
            where["tickerplant"], tables=list(where["tables"]), accounts=[account], start=start
        )
