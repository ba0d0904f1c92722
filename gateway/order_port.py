"""The gateway's order-entry port: the fast path for programs (``tickdb.Orders``).

HTTP costs a request/response cycle and a thread hand-off per order; this ZeroMQ ROUTER
socket takes a stream of requests on a kept connection, as a FIX session does. The order
stream's thread serves it (``OrderStream.attach``), between applying the venues' answers:
each turn it drains every request already queued (up to ``MAX_RUN``), runs them through the
same ``OrderRouter`` as HTTP (same risk checks, same state, same ClOrdID rules) and sends
the whole run to the tickerplant as one ``order_request`` batch, so under load the
tickerplant and the venues see few, larger messages and at low load a run is one order.
The answers the flow brings are sent by the same thread as soon as they are applied: no
hand-off to another thread, whose wake-up and turn at the interpreter lock cost ~0.1 ms at
the median and milliseconds under load.

Wire format (``docs/orders.md``): a client DEALER sends one frame of JSON per request,
``{"op": "new"|"cancel"|"replace"|"cancel_all", "id": <any>, "wait": bool, ...fields}``
with the fields of the HTTP bodies. Each request gets one reply frame of JSON:
``{"id", "ok": true, "order": {...}}`` once the venue answered (or at once with
``"wait": false``), or ``{"id", "ok": false, "error", "code", "message", "order"}``.
Messages over ``MAX_REQUEST_BYTES`` are refused unread.

With ``[curve]`` on the port is a CURVE server for identities with a ``trade`` role, and
each request needs ``trade`` on its account (a refusal: ``"error": "forbidden"``).
"""

from __future__ import annotations

import logging
import uuid
from enum import StrEnum
from typing import Any

import orjson
import zmq

from gateway.order_json import order_dict
from gateway.order_router import OrderRejected, OrderRouter, OrdersUnavailable
from gateway.order_stream import OrderStream
from gateway.order_wait import has_input
from orders.model import (
    CancelRequest,
    MassCancel,
    NewOrder,
    Order,
    OrdStatus,
    OrdType,
    ReplaceRequest,
    Side,
    TimeInForce,
)
from orders.rows import Request
from tickdb.auth import Identity
from tickdb.curve_links import CurveLinks
from tickdb.listen import bind

log = logging.getLogger(__name__)

# Plain ints: pyzmq's ``send_multipart``/``recv_multipart`` combine flag enums and ask
# ``RCVMORE`` through an enum per frame, ~2x the cost of the receives and sends themselves.
_NOBLOCK, _SNDMORE = int(zmq.NOBLOCK), int(zmq.SNDMORE)
MAX_RUN = 1000  # requests sent to the tickerplant as one batch, at most
MAX_REQUEST_BYTES = 64 * 1024
ANSWER_BUFFER = 100_000
PENDING = frozenset({OrdStatus.PENDING_NEW, OrdStatus.PENDING_CANCEL, OrdStatus.PENDING_REPLACE})


class BadRequest(ValueError):
    pass


def _text(body: dict[str, Any], key: str, default: str | None = None) -> str:
    value = body.get(key, default)
    if value is None:
        if default is None:
            raise BadRequest(f"missing field {key!r}")
        return default
    if not isinstance(value, str) or len(value) > 64:
        raise BadRequest(f"{key}: expected a string of at most 64 characters")
    return value


def _int(body: dict[str, Any], key: str, required: bool = True) -> int | None:
    value = body.get(key)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"{key}: expected an integer, got {value!r}")
    return value


def _price(body: dict[str, Any]) -> float | None:
    value = body.get("price")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRequest(f"price: expected a number, got {value!r}")
    return float(value)


def _choice(body: dict[str, Any], key: str, kind: type[StrEnum], default: str | None) -> Any:
    value = body.get(key, default)
    member = kind._value2member_map_.get(value) if isinstance(value, str) else None
    if member is not None:  # a dict lookup, where the enum's call costs a microsecond
        return member
    try:
        return kind(str(value))
    except ValueError:
        known = ", ".join(m.value for m in kind)
        raise BadRequest(f"{key}: expected one of {known}, got {value!r}") from None


def parse_new(body: dict[str, Any]) -> NewOrder:
    return NewOrder(
        account=_text(body, "account"),
        sym=_text(body, "sym"),
        clordid=_text(body, "clordid", "") or uuid.uuid4().hex[:20],
        side=_choice(body, "side", Side, None),
        qty=_int(body, "qty") or 0,
        ord_type=_choice(body, "type", OrdType, "limit"),
        price=_price(body),
        tif=_choice(body, "tif", TimeInForce, "day"),
        strategy=_text(body, "strategy", ""),
    )


def refusal(who: Identity, body: dict[str, Any]) -> str:
    """Why ``who`` may not make the request ``body`` ("" when it may): ``trade`` on its
    account; a cancel_all of every account needs ``trade`` on all of them."""
    account = body.get("account")
    if body.get("op") == "cancel_all" and not account:
        role = who.role("trade")
        if role is not None and role.resources is None:
            return ""
        return f"{who.name!r} may cancel only its own accounts: name one (account)"
    if not isinstance(account, str) or who.may("trade", account):
        return ""  # no account: a bad request, said as such
    return f"{who.name!r} may not trade account {account}"


def _error(corr: Any, error: str, code: str, message: str) -> dict[str, Any]:
    return {
        "id": corr,
        "ok": False,
        "error": error,
        "code": code,
        "message": message,
        "order": None,
    }


class OrderPort:
    """The port's socket and its requests' state; served by ``stream``'s thread."""

    def __init__(
        self,
        router: OrderRouter,
        address: str,
        stream: OrderStream,
        curve: CurveLinks | None = None,
    ) -> None:
        self.router = router
        self._stream = stream
        self._ctx = zmq.Context()
        self._socket = self._ctx.socket(zmq.ROUTER)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.MAXMSGSIZE, MAX_REQUEST_BYTES)
        # Answers queued per client before ZeroMQ drops them: a client that pipelines
        # thousands of requests reads their answers later (tickdb.Orders.collect).
        self._socket.setsockopt(zmq.SNDHWM, ANSWER_BUFFER)
        self._curve = curve
        self._secure = curve is not None and curve.serve(self._socket, "order", "trade")
        bind(self._socket, address, "gateway.order_port (--order-port)")
        self.endpoint: str = self._socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self._answered: list[Order] = []
        self._held: list[tuple[bytes, bytes]] = []
        # REQ clients with a request in flight: their answer goes back in REQ's envelope
        # (an empty frame before the body). REQ sends one request at a time, so an entry
        # lives until its answer is sent.
        self._req_peers: set[bytes] = set()
        # Orders someone waits for -> (identity, request id) of each waiter.
        self._waiters: dict[int, list[tuple[bytes, Any]]] = {}
        self.requests = 0
        self.bad_requests = 0
        self.forbidden = 0
        router.listeners.append(self._on_order)

    @property
    def socket(self) -> zmq.Socket:
        return self._socket

    def start(self) -> OrderPort:
        self._stream.attach(self)
        return self

    # -- called on the stream's thread, with the router's lock held -----------------------
    def _on_order(self, order: Order) -> None:
        if id(order) in self._waiters and order.status not in PENDING:
            self._answered.append(order)

    # -- on the stream's thread ------------------------------------------------------------------
    def _reply(self, identity: bytes, body: dict[str, Any]) -> None:
        # Held until the run is journaled: an answer is a promise the request is safe.
        self._held.append((identity, orjson.dumps(body)))

    def _send(self, identity: bytes, raw: bytes) -> None:
        """One reply: ``send_multipart([identity, raw])``, frame by frame (with REQ's empty
        delimiter between them for a REQ client)."""
        self._socket.send(identity, _SNDMORE)
        if identity in self._req_peers:
            self._req_peers.discard(identity)
            self._socket.send(b"", _SNDMORE)
        self._socket.send(raw)

    def _send_held(self) -> None:
        held, self._held = self._held, []
        for identity, raw in held:
            self._send(identity, raw)

    def _receive(self) -> tuple[zmq.Frame, zmq.Frame] | None:
        """One request's frames (routing id, body), frame by frame as ``recv_multipart``
        would take them: a DEALER's two, or a REQ's three (an empty delimiter before the
        body). None for a message of another shape, read whole. zmq.Again when none waits."""
        socket = self._socket
        head = socket.recv(_NOBLOCK, copy=False)
        if not head.more:  # a ROUTER's message always has its routing id and one more
            return None
        body = frame = socket.recv(_NOBLOCK, copy=False)
        if not frame.more:
            return head, body
        after_head = 1
        while frame.more:  # the frames of a message arrive together
            frame = socket.recv(_NOBLOCK, copy=False)
            after_head += 1
        if after_head == 2 and len(body) == 0:  # REQ's envelope: empty delimiter, body
            self._req_peers.add(head.bytes)
            return head, frame
        return None

    def _handle(
        self, identity: bytes, raw: bytes, outbox: list[Request], who: Identity | None = None
    ) -> tuple[Order, Any] | None:
        """Apply one request; returns (order, request id) when its answer is still due.
        ``who``: its sender, with CURVE on."""
        self.requests += 1
        corr: Any = None
        try:
            body = orjson.loads(raw)
            if not isinstance(body, dict):
                raise BadRequest("a request is a JSON object")
            corr = body.get("id")
            if self._secure and (denied := refusal(who, body) if who else "no identity"):
                self.forbidden += 1
                log.warning("order port: forbidden: %s", denied)
                self._reply(identity, _error(corr, "forbidden", "forbidden", denied))
                return None
            op = body.get("op")
            wait = bool(body.get("wait", True))
            router = self.router
            if op == "new":
                result = router.submit(
                    parse_new(body),
                    intended=bool(body.get("intended", False)),
                    wait=False,
                    outbox=outbox,
                )
                order = result.order
                if result.duplicate:
                    wait = False
            elif op == "cancel":
                order = router.cancel(
                    CancelRequest(
                        _text(body, "account"),
                        "",
                        _text(body, "clordid", "") or uuid.uuid4().hex[:20],
                        _text(body, "orig_clordid"),
                    ),
                    wait=False,
                    outbox=outbox,
                )
            elif op == "replace":
                order = router.replace(
                    ReplaceRequest(
                        _text(body, "account"),
                        "",
                        _text(body, "clordid", "") or uuid.uuid4().hex[:20],
                        _text(body, "orig_clordid"),
                        qty=_int(body, "qty", required=False),
                        price=_price(body),
                    ),
                    wait=False,
                    outbox=outbox,
                )
            elif op == "cancel_all":
                # Everything before it in this run must reach the venues first.
                router.send_many(outbox)
                outbox.clear()
                targets = router.mass_cancel(
                    MassCancel(
                        _text(body, "account", ""),
                        _text(body, "strategy", ""),
                        _text(body, "sym", ""),
                        clordid=uuid.uuid4().hex[:20],
                    ),
                    wait=False,
                )
                self._reply(identity, {"id": corr, "ok": True, "orders": len(targets)})
                return None
            else:
                raise BadRequest(f"op: expected new, cancel, replace or cancel_all, got {op!r}")
        except (BadRequest, orjson.JSONDecodeError, UnicodeDecodeError) as exc:
            self.bad_requests += 1
            log.warning("order port: bad request: %s", exc)
            self._reply(identity, _error(corr, "bad_request", "bad_request", str(exc)))
            return None
        except OrderRejected as exc:
            self._reply(
                identity,
                {
                    "id": corr,
                    "ok": False,
                    "error": "rejected",
                    "code": str(exc.code),
                    "message": str(exc),
                    "order": order_dict(exc.order) if exc.order is not None else None,
                },
            )
            return None
        except OrdersUnavailable as exc:
            self._reply(identity, _error(corr, "unavailable", "orders_unavailable", str(exc)))
            return None
        if not wait or order.status not in PENDING:
            self._reply(identity, {"id": corr, "ok": True, "order": order_dict(order)})
            return None
        return order, corr

    def serve_requests(self) -> bool:
        """Take the requests waiting on the socket (the caller saw one); whether the socket
        may have input its ``ZMQ_EVENTS`` would show (more requests, or a reply was sent
        on it since it was found empty)."""
        try:
            return self._serve_requests()
        except zmq.ZMQError as exc:
            log.error("order port: %s", exc)
        except Exception:  # never lose the port to one request
            log.exception("order port: request failed")
        return True

    def _serve_requests(self) -> bool:
        outbox: list[Request] = []
        due: list[tuple[bytes, Order, Any]] = []
        socket = self._socket
        secure, curve, who = self._secure, self._curve, None
        drained = False
        with self.router.lock:
            for n in range(MAX_RUN):
                # After the first, whether another waits is asked without a receive that
                # fails (an exception per turn, several µs, more with cold caches).
                if n and not has_input(socket):
                    drained = True
                    break
                try:
                    frames = self._receive()
                except zmq.Again:
                    drained = True
                    break
                if frames is None:  # neither a DEALER's message nor a REQ's: no reply
                    self.bad_requests += 1  # can reach a client that sends these
                    log.warning("order port: a message of another shape, not answered")
                    continue
                head, body = frames
                if secure:  # the routing id's frame also says who sent it (ZAP)
                    who = curve.identity_of(head) if curve is not None else None
                identity, raw = head.bytes, body.bytes
                pending = self._handle(identity, raw, outbox, who)
                if pending is not None:
                    due.append((identity, *pending))
            # Waiters are registered before the run is sent: no answer can come first.
            for identity, order, corr in due:
                self._waiters.setdefault(id(order), []).append((identity, corr))
            self.router.send_many(outbox)
        # Outside the lock, so HTTP and FIX requests go on meanwhile: answers given now (a
        # refusal, or a sequenced request with "wait": false) wait for the journal.
        if self._held:
            self.router.durable()
            self._send_held()
            return True
        return not drained

    def serve_answers(self) -> bool:
        """Reply to the waited-for orders the flow just answered (from journaled events:
        nothing to wait for); whether anything was sent."""
        if not self._answered:
            return False
        with self.router.lock:
            answered, self._answered = self._answered, []
            replies = []
            for order in answered:
                for identity, corr in self._waiters.pop(id(order), []):
                    replies.append((identity, {"id": corr, "ok": True, "order": order_dict(order)}))
        try:
            for identity, body in replies:
                self._send(identity, orjson.dumps(body))
        except zmq.ZMQError as exc:
            log.error("order port: %s", exc)
        return bool(replies)

    def close(self) -> None:
        self._stream.detach()
        self._socket.close(0)
        if self._curve is not None:
            self._curve.stop(self._ctx)
        self._ctx.term()
