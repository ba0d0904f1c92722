"""``tickdb.Orders``: order entry over the gateway's order port (ZeroMQ), the fast path.

    with tickdb.Orders("http://127.0.0.1:8000") as orders:     # or the port's tcp:// address
        order = orders.submit("A1", "AAPL", "buy", 100, 189.50)
        orders.cancel("A1", order["clordid"])
        ids = [orders.send_new("A1", "MSFT", "buy", 10, 400.0 + i / 100) for i in range(100)]
        answers = orders.collect(ids)                          # pipelined: one answer per id

Same requests, rules and answers as HTTP (``docs/orders.md``); a refusal raises
``OrderRejected``. One ``Orders`` is for one thread. With ``[curve]`` on, ``curve=`` (a
``tickdb.curve_links.CurveClient``, or ``TICKDB_CURVE_KEY`` and ``TICKDB_CURVE_SERVER_KEY``)
gives the key of an identity with ``trade`` on the accounts it sends for.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Sequence
from typing import Any

import orjson
import zmq
from zmq.utils.monitor import recv_monitor_message

from gateway.client_errors import GatewayError
from gateway.order_client import OrderRejected, new_order_fields
from tickdb.curve_links import CurveClient, client_keys

# How often a wait with several gateways looks at the connection's events: a killed
# gateway's drop is seen within this, and its unanswered requests go to the next one.
_CHECK_MS = 5
# A dropped connection, or a connection attempt that failed (nothing listening).
_DROPS = zmq.EVENT_DISCONNECTED | zmq.EVENT_CLOSED


def _resolve(address: str, token: str | None) -> str:
    if not address.startswith("http"):
        return address
    from gateway.client import Client

    with Client(address, timeout_s=10, token=token) as client:
        where = client.order_request("GET", "/orders-stream")
    if not where.get("order_port"):
        raise GatewayError("unavailable", f"the gateway at {address} has no order port", 503)
    return str(where["order_port"])


def _answer(body: dict[str, Any]) -> dict[str, Any]:
    """An answer's order, or the refusal it carries raised."""
    if body.get("ok"):
        return dict(body.get("order") or body)
    if body.get("error") == "rejected":
        raise OrderRejected(str(body["code"]), str(body["message"]), 422, body.get("order"))
    status = 403 if body.get("error") == "forbidden" else 400
    raise GatewayError(str(body.get("code")), str(body.get("message")), status)


class _Port:
    """One gateway's order port: a DEALER and, when watched, its monitor (which says when
    the connection drops).

    A watched port never reconnects (``RECONNECT_IVL`` -1; the client replaces a dropped
    port with a fresh socket). That bounds its monitor's queue to a few events, which
    matters: libzmq's I/O thread sends monitor events with a blocking send, so a monitor
    nobody reads (the ports the client is not using) that queued an event per reconnect
    attempt to a stopped gateway would, once its pipe filled, block the I/O thread and
    every socket of the client for good. A lone port is not watched: it reconnects.
    """

    def __init__(
        self, ctx: zmq.Context[Any], address: str, curve: CurveClient | None, watch: bool
    ) -> None:
        self.address = address
        self.socket: zmq.Socket[Any] = ctx.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.setsockopt(zmq.RCVHWM, 0)  # answers wait here until collected
        if curve is not None:
            curve.apply(self.socket)
        self.monitor: zmq.Socket[Any] | None = None
        if watch:
            self.socket.setsockopt(zmq.RECONNECT_IVL, -1)
            self.monitor = self.socket.get_monitor_socket(_DROPS)
        self.socket.connect(address)

    def dropped(self) -> bool:
        """Whether the connection dropped (or was never made) since the last look."""
        lost = False
        while self.monitor is not None:
            try:
                recv_monitor_message(self.monitor, zmq.NOBLOCK)
            except zmq.Again:
                break
            lost = True
        return lost

    def close(self) -> None:
        if self.monitor is not None:
            self.socket.disable_monitor()
            self.monitor.close(0)
        self.socket.close(0)


class Orders:
    def __init__(
        self,
        address: str | Sequence[str] = "http://127.0.0.1:8000",
        *,
        timeout_s: float = 10.0,
        token: str | None = None,
        curve: CurveClient | None = None,
    ) -> None:
        # Several gateways (a list or a comma-separated string): requests go to the first;
        # when its connection drops, every request not yet answered is sent again to the
        # next one (safe: the gateways share ClOrdIDs, so a retry is answered with the
        # order it already made).
        # The token (or TICKDB_TOKEN) is for the HTTP look-up of the order port's address.
        given = address.split(",") if isinstance(address, str) else list(address)
        self.addresses = [_resolve(a.strip(), token) for a in given if a.strip()]
        if not self.addresses:
            raise ValueError(f"no order port address in {address!r}")
        self.timeout_s = timeout_s
        self._ctx = zmq.Context()
        self._curve = client_keys(curve)
        watch = len(self.addresses) > 1
        self._ports = [_Port(self._ctx, a, self._curve, watch) for a in self.addresses]
        self._current = 0
        self._ids = itertools.count(1)
        self._early: dict[Any, dict[str, Any]] = {}  # answers that came before asked for
        self._unanswered: dict[Any, bytes] = {}  # sent, not answered: resent on failover
        self.failovers = 0

    @property
    def address(self) -> str:
        return self._ports[self._current].address

    @property
    def _socket(self) -> zmq.Socket[Any]:
        return self._ports[self._current].socket

    def _fail_over(self) -> None:
        """The current gateway's connection dropped: go on with the next, sending it every
        request still unanswered."""
        self._replace(self._current)
        self._current = (self._current + 1) % len(self._ports)
        if self._ports[self._current].dropped():  # it too dropped while not in use
            self._replace(self._current)
        self.failovers += 1
        for body in self._unanswered.values():
            self._socket.send(body)

    def _replace(self, index: int) -> None:
        """A fresh socket to a dropped port's gateway (a watched port never reconnects)."""
        old = self._ports[index]
        self._ports[index] = _Port(self._ctx, old.address, self._curve, watch=True)
        old.close()

    # -- pipelined -------------------------------------------------------------------------
    def send(self, op: str, wait: bool = True, **fields: Any) -> int:
        """Send a request without waiting; returns its id for ``collect``."""
        request_id = next(self._ids)
        body = orjson.dumps({"op": op, "id": request_id, "wait": wait, **fields})
        if len(self._ports) > 1:
            self._unanswered[request_id] = body
        self._socket.send(body)
        return request_id

    def send_new(
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
        wait: bool = True,
    ) -> int:
        fields = new_order_fields(account, sym, side, qty, price, tif, strategy, clordid)
        return self.send("new", wait, **fields)

    def collect(self, ids: list[int], timeout_s: float | None = None) -> list[dict[str, Any]]:
        """The raw answers to ``ids``, in the order given (``ok`` says which are refusals)."""
        deadline = time.monotonic() + (self.timeout_s if timeout_s is None else timeout_s)
        wanted = set(ids)
        while not wanted <= self._early.keys():
            remaining = deadline - time.monotonic()
            port = self._ports[self._current]
            wait_ms = int(remaining * 1000) if len(self._ports) == 1 else _CHECK_MS
            if remaining <= 0:
                missing = len(wanted - self._early.keys())
                hint = " (is this client's CURVE key refused?)" if self._curve else ""
                message = f"{missing} answers missing from {self.address}{hint}"
                raise GatewayError("timeout", message, 0)
            if not port.socket.poll(max(1, min(wait_ms, int(remaining * 1000)))):
                if len(self._ports) > 1 and port.dropped():
                    self._fail_over()
                continue
            body = orjson.loads(port.socket.recv())
            self._early[body.get("id")] = body
            self._unanswered.pop(body.get("id"), None)
        return [self._early.pop(i) for i in ids]

    # -- one request at a time ----------------------------------------------------------------
    def _call(self, op: str, wait: bool = True, **fields: Any) -> dict[str, Any]:
        (body,) = self.collect([self.send(op, wait, **fields)])
        return _answer(body)

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
        wait: bool = True,
    ) -> dict[str, Any]:
        """The order after the venue's first answer (``wait=False``: once sequenced)."""
        ids = [
            self.send_new(
                account,
                sym,
                side,
                qty,
                price,
                tif=tif,
                strategy=strategy,
                clordid=clordid,
                wait=wait,
            )
        ]
        return _answer(self.collect(ids)[0])

    def cancel(
        self, account: str, clordid: str, *, cancel_clordid: str | None = None
    ) -> dict[str, Any]:
        return self._call(
            "cancel",
            account=account,
            orig_clordid=clordid,
            clordid=cancel_clordid or uuid.uuid4().hex[:20],
        )

    def replace(
        self,
        account: str,
        clordid: str,
        *,
        qty: int | None = None,
        price: float | None = None,
        new_clordid: str | None = None,
    ) -> dict[str, Any]:
        return self._call(
            "replace",
            account=account,
            orig_clordid=clordid,
            clordid=new_clordid or uuid.uuid4().hex[:20],
            qty=qty,
            price=price,
        )

    def cancel_all(self, account: str = "", strategy: str = "", sym: str = "") -> dict[str, Any]:
        return self._call("cancel_all", account=account, strategy=strategy, sym=sym)

    def close(self) -> None:
        for port in self._ports:
            port.close()
        self._ctx.term()

    def __enter__(self) -> Orders:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
