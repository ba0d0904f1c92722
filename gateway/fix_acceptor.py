"""The gateway's FIX 4.4 acceptor: FIX clients trade through the same ``OrderRouter`` as HTTP.

Each configured session (``[fix.sessions.NAME]``) trades for one account. Application
messages run through the router exactly as the order port's requests do: same risk checks,
same ClOrdID rules, same state; one read's worth of messages is one batch sent to the
tickerplant when the batch ends (``fix.engine``).

Answers:

- NewOrderSingle (D): ExecutionReports as the order changes (New, Trade, Canceled,
  Replaced, Expired, Rejected); a refusal before the venue (risk, duplicate ClOrdID) is an
  ExecutionReport Rejected with OrdRejReason (103) and the typed reason in Text (58);
- OrderCancelRequest (F) / OrderCancelReplaceRequest (G): ExecutionReport Pending Cancel /
  Pending Replace at once, then Canceled / Replaced, or an OrderCancelReject (9) with
  CxlRejReason (102): 0 too late, 1 unknown order, 6 duplicate ClOrdID;
- OrderStatusRequest (H): an ExecutionReport with ExecType I;
- OrderMassCancelRequest (q): an OrderMassCancelReport (r), then one Canceled each.

Execution reports follow the router's events (``OrderRouter.event_listeners``, called on
the order stream's thread): each is laid out there, while the order is in the state the
event left it in, and sent at once by that thread when the session's socket has room, else
from the engine's thread (``gateway.fix_outbox``). Every order of a session's account is
reported to it, including orders entered before a gateway restart; a session that is not
logged on gets them through the resend when it logs on again.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from fix.codec import Field, Message
from fix.engine import Engine
from fix.session import Session
from fix.session_types import SessionRejectReason, SessionSettings
from gateway.fix_fields import REQUIRED, BadValue, enum_value, price_value, qty_value, session_info
from gateway.fix_logon import FixLogonCheck
from gateway.fix_outbox import ReportOutbox
from gateway.fix_reports import (
    CXL_REJ_REASON,
    EXEC_TYPE,
    EXEC_TYPE_ORDER_STATUS,
    ORD_REJ_REASON,
    ORD_TYPE_FROM_FIX,
    SIDE_FROM_FIX,
    TIF_FROM_FIX,
    cancel_reject,
    execution_report,
)
from gateway.order_router import OrderRejected, OrderRouter, OrdersUnavailable
from orders.model import (
    CancelRequest,
    Event,
    EventType,
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
from tickdb.audit import AuditLog
from tickdb.auth import Authorizer

log = logging.getLogger(__name__)


@dataclass
class _Pending:
    """A cancel or replace sent for an order: whose ClOrdIDs its answer carries."""

    kind: str  # "cancel" or "replace"
    clordid: str
    orig_clordid: str


@dataclass
class _Tracked:
    pending: deque[_Pending] = field(default_factory=deque)
    awaiting_ack: bool = False


class FixAcceptor:
    def __init__(
        self,
        router: OrderRouter,
        settings: list[SessionSettings],
        *,
        host: str = "127.0.0.1",
        port: int = 9878,
        max_message_bytes: int = 64 * 1024,
        max_connections: int = 64,
        logon_timeout_s: float = 10.0,
        authorizer: Authorizer | None = None,
        audit: AuditLog | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.router = router
        self.engine = Engine(
            max_message_bytes=max_message_bytes,
            max_connections=max_connections,
            logon_timeout_s=logon_timeout_s,
            on_batch=self._batch,
            name="fix-acceptor",
        )
        # [auth] on: logons are checked against the sessions' identities (gateway.fix_logon).
        on = authorizer is not None and authorizer.enabled
        self.logon_check = FixLogonCheck(authorizer, audit) if authorizer and on else None
        self.sessions = [
            Session(s, self, initiator=False, check_logon=self.logon_check) for s in settings
        ]
        self.engine.add_sessions(self.sessions)
        self._by_account: dict[str, Session] = {}
        for s in self.sessions:
            self._by_account.setdefault(s.settings.account, s)
        self._outbox: list[Request] = []
        self._tracked: dict[int, _Tracked] = {}
        self.outbox = ReportOutbox(self.engine)
        self._exec_prefix = f"X{time.time_ns() // 1_000_000:x}-"
        self._exec_n = 0
        self.address = self.engine.listen(host, port, tls=tls)
        router.event_listeners.append(self._on_event)
        self.orders_received = 0

    def start(self) -> FixAcceptor:
        self.engine.start()
        return self

    def close(self) -> None:
        with contextlib.suppress(ValueError):
            self.router.event_listeners.remove(self._on_event)
        for session in self.sessions:
            self.engine.call_soon(partial(session.logout, "gateway shutting down"))
        self.engine.stop()

    # -- batches ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def _batch(self) -> Iterator[None]:
        with self.router.lock:
            try:
                yield
            finally:
                if self._outbox:
                    try:
                        self.router.send_many(self._outbox)
                    finally:
                        self._outbox.clear()

    def _exec_id(self) -> str:
        self._exec_n += 1
        return f"{self._exec_prefix}{self._exec_n}"

    # -- the session's callbacks (engine thread) -------------------------------------------
    def on_logon(self, session: Session) -> None:
        log.info("fix: %s logged on for account %s", session.settings.key, session.settings.account)

    def on_logout(self, session: Session) -> None:
        log.info("fix: %s logged out", session.settings.key)

    def on_message(self, session: Session, msg: Message) -> bool:
        handler = _HANDLERS.get(msg.msg_type)
        if handler is None:
            return False
        for tag in REQUIRED[msg.msg_type]:
            if tag not in msg.values:
                session.reject(
                    msg, SessionRejectReason.REQUIRED_TAG_MISSING, f"tag {tag} missing", tag
                )
                return True
        account = msg.get(1)
        if account and account != session.settings.account:
            session.reject(
                msg,
                SessionRejectReason.VALUE_INCORRECT,
                f"Account {account} is not this session's",
                1,
            )
            return True
        try:
            handler(self, session, msg)
        except BadValue as exc:
            session.reject(msg, exc.reason, str(exc), exc.tag)
        return True

    # -- application messages --------------------------------------------------------------
    def _new_order(self, session: Session, msg: Message) -> None:
        self.orders_received += 1
        req = NewOrder(
            account=session.settings.account,
            sym=msg.get(55),
            clordid=msg.get(11),
            side=enum_value(msg, 54, SIDE_FROM_FIX),
            qty=qty_value(msg, 38),
            ord_type=enum_value(msg, 40, ORD_TYPE_FROM_FIX),
            price=price_value(msg, 44),
            tif=enum_value(msg, 59, TIF_FROM_FIX, "0"),
        )
        if req.ord_type is OrdType.LIMIT and req.price is None:
            raise BadValue(
                44, "a limit order needs Price (44)", SessionRejectReason.REQUIRED_TAG_MISSING
            )
        try:
            result = self.router.submit(req, wait=False, outbox=self._outbox)
        except OrderRejected as exc:
            self._reject_new(session, req, exc.code, str(exc), exc.order)
            return
        except OrdersUnavailable as exc:
            self._reject_new(session, req, "orders_unavailable", str(exc), None)
            return
        order = result.order
        if result.duplicate:
            # A resend of what we (or another gateway, PossResend after a client's failover)
            # already took: its state, never a second order.
            if msg.get(43) == "Y" or msg.get(97) == "Y":
                self._report(
                    session, execution_report(order, EXEC_TYPE_ORDER_STATUS, self._exec_id())
                )
            else:
                self._reject_new(
                    session,
                    req,
                    "duplicate_clordid",
                    f"ClOrdID {req.clordid!r} was already used today",
                    None,
                )
            return
        self._track(order).awaiting_ack = True

    def _reject_new(
        self, session: Session, req: NewOrder, code: str, text: str, order: Order | None
    ) -> None:
        view = req.to_order(OrdStatus.REJECTED)
        body = execution_report(
            view,
            "8",
            self._exec_id(),
            status="8",
            rej_reason=ORD_REJ_REASON.get(str(code), 0),
            text=f"{code}: {text}",
        )
        self._report(session, body)

    def _cancel(self, session: Session, msg: Message) -> None:
        account = session.settings.account
        clordid, orig = msg.get(11), msg.get(41)
        try:
            order = self.router.cancel(
                CancelRequest(account, "", clordid, orig), wait=False, outbox=self._outbox
            )
        except OrderRejected as exc:
            self._cancel_reject(session, exc, clordid, orig, 1)
            return
        except OrdersUnavailable as exc:
            self._report(session, cancel_reject(None, clordid, orig, 1, 2, str(exc)), "9")
            return
        if order.status is OrdStatus.PENDING_CANCEL:
            self._track(order).pending.append(_Pending("cancel", clordid, orig))
            self._report(
                session,
                execution_report(order, "6", self._exec_id(), clordid=clordid, orig_clordid=orig),
            )

    def _replace(self, session: Session, msg: Message) -> None:
        account = session.settings.account
        clordid, orig = msg.get(11), msg.get(41)
        req = ReplaceRequest(
            account, "", clordid, orig, qty=qty_value(msg, 38), price=price_value(msg, 44)
        )
        try:
            order = self.router.replace(req, wait=False, outbox=self._outbox)
        except OrderRejected as exc:
            self._cancel_reject(session, exc, clordid, orig, 2)
            return
        except OrdersUnavailable as exc:
            self._report(session, cancel_reject(None, clordid, orig, 2, 2, str(exc)), "9")
            return
        if order.status is OrdStatus.PENDING_REPLACE:
            self._track(order).pending.append(_Pending("replace", clordid, orig))
            self._report(
                session,
                execution_report(order, "E", self._exec_id(), clordid=clordid, orig_clordid=orig),
            )

    def _cancel_reject(
        self, session: Session, exc: OrderRejected, clordid: str, orig: str, response_to: int
    ) -> None:
        reason = CXL_REJ_REASON.get(str(exc.code), 2)
        body = cancel_reject(exc.order, clordid, orig, response_to, reason, f"{exc.code}: {exc}")
        self._report(session, body, "9")

    def _status(self, session: Session, msg: Message) -> None:
        order = self.router.order(session.settings.account, msg.get(11))
        extra: list[Field] = [(790, msg.get(790))] if 790 in msg.values else []
        if order is None:
            view = Order(
                order_id="",
                account=session.settings.account,
                sym=msg.get(55),
                clordid=msg.get(11),
                side=enum_value(msg, 54, SIDE_FROM_FIX),
                qty=0,
                ord_type=OrdType.LIMIT,
                price=None,
                tif=TimeInForce.DAY,
                status=OrdStatus.REJECTED,
            )
            body = execution_report(
                view,
                EXEC_TYPE_ORDER_STATUS,
                self._exec_id(),
                status="8",
                text="unknown_order: no such ClOrdID today",
                extra=extra,
            )
        else:
            body = execution_report(order, EXEC_TYPE_ORDER_STATUS, self._exec_id(), extra=extra)
        self._report(session, body)

    def _mass_cancel(self, session: Session, msg: Message) -> None:
        kind = msg.get(530)
        clordid = msg.get(11)
        head: list[Field] = [(11, clordid), (37, clordid), (530, kind)]
        if kind not in ("1", "7") or (kind == "1" and 55 not in msg.values):
            body = [
                *head,
                (531, "0"),
                (532, 99),
                (58, "MassCancelRequestType 1 (with Symbol) or 7"),
            ]
            session.send("r", body)
            return
        # Everything before it in this batch reaches the venues first.
        self.router.send_many(self._outbox)
        self._outbox.clear()
        sym = msg.get(55) if kind == "1" else ""
        try:
            targets = self.router.mass_cancel(
                MassCancel(session.settings.account, "", sym, clordid=clordid), wait=False
            )
        except OrdersUnavailable as exc:
            session.send("r", [*head, (531, "0"), (532, 99), (58, str(exc))])
            return
        session.send("r", [*head, (531, kind), (533, len(targets))])

    # -- execution reports from the order stream (stream thread, router lock held) ---------
    def _track(self, order: Order) -> _Tracked:
        tracked = self._tracked.get(id(order))
        if tracked is None:
            tracked = self._tracked[id(order)] = _Tracked()
        return tracked

    def _on_event(self, order: Order, event: Event) -> None:
        session = self._by_account.get(order.account)
        if session is None:
            return
        tracked = self._tracked.get(id(order))
        kind = event.event
        body: list[Field] | None = None
        msg_type = "8"
        if kind in (EventType.CANCEL_REJECTED, EventType.REPLACE_REJECTED):
            want = "cancel" if kind is EventType.CANCEL_REJECTED else "replace"
            pending = self._pop_pending(tracked, want)
            if pending is None:
                return  # the gateway's own refusal, already answered
            text = f"{event.reason}: {event.text}" if event.text else event.reason
            reason = CXL_REJ_REASON.get(event.reason, 2)
            body = cancel_reject(
                order,
                pending.clordid,
                pending.orig_clordid,
                1 if want == "cancel" else 2,
                reason,
                text,
            )
            msg_type = "9"
        elif kind is EventType.REJECTED:
            if tracked is None or not tracked.awaiting_ack:
                return  # a risk reject, answered when it was refused
            tracked.awaiting_ack = False
            body = execution_report(
                order,
                "8",
                self._exec_id(),
                rej_reason=ORD_REJ_REASON.get(event.reason, 0),
                text=f"{event.reason}: {event.text}" if event.text else event.reason,
            )
        elif kind in EXEC_TYPE:
            if tracked is not None:
                tracked.awaiting_ack = False
            clordid, orig = order.clordid, order.orig_clordid
            if kind is EventType.CANCELED:
                pending = self._pop_pending(tracked, "cancel")
                if pending is not None:
                    clordid, orig = pending.clordid, pending.orig_clordid
            elif kind is EventType.REPLACED:
                self._pop_pending(tracked, "replace")
                clordid, orig = event.clordid, event.orig_clordid
            exec_id = event.exec_id if kind is EventType.FILL else self._exec_id()
            body = execution_report(
                order,
                EXEC_TYPE[kind],
                exec_id,
                clordid=clordid,
                orig_clordid=orig,
                last_qty=event.last_qty,
                last_px=event.last_px,
                text=event.reason if kind is not EventType.FILL else "",
            )
        if body is None:
            return
        if not order.is_open and tracked is not None and not tracked.pending:
            del self._tracked[id(order)]
        self._report(session, body, msg_type)

    @staticmethod
    def _pop_pending(tracked: _Tracked | None, kind: str) -> _Pending | None:
        if tracked is None:
            return None
        for p in tracked.pending:
            if p.kind == kind:
                tracked.pending.remove(p)
                return p
        return None

    def _report(self, session: Session, body: list[Field], msg_type: str = "8") -> None:
        self.outbox.send(session, body, msg_type)

    # -- operations --------------------------------------------------------------------------
    def info(self) -> list[dict[str, Any]]:
        return [session_info(s) for s in self.sessions]

    def reset(self, name: str) -> bool:
        for s in self.sessions:
            if name in (s.settings.name, s.settings.key):
                s.reset()
                return True
        return False


_HANDLERS = {
    "D": FixAcceptor._new_order,
    "F": FixAcceptor._cancel,
    "G": FixAcceptor._replace,
    "H": FixAcceptor._status,
    "q": FixAcceptor._mass_cancel,
}

__all__ = ["FixAcceptor", "Side", "session_info"]
