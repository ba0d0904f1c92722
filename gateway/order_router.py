"""The gateway's order path: pre-trade risk, then the tickerplant, then the venue's answer.

    client ──submit──▶ OrderRouter ──risk──▶ order_request (tickerplant: journal, sequence)
                                                   │ the venue owning the sym applies it
    client ◀──state─── OrderRouter ◀── order, fill (tickerplant) ◀─┘

Routing is the sequence itself: every venue subscribes to ``order_request`` and keeps the
rows whose sym its shard owns (``tickdb.types.Shard.owns``, the data's function), so a
cancel or replace reaches the venue holding the order, and a mass cancel with no sym reaches
every venue, in the order the gateway sent them.

The router's state (orders by ClOrdID, risk counters, positions, kill switches) is rebuilt
at start from the journal: ``OrderStream`` replays ``order_request``, ``order``, ``fill`` and
``risk_admin`` before the router takes requests, so a restarted gateway knows every ClOrdID
it ever accepted today and never lets a retry create a second order.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from orders.book_events import order_event
from orders.mass_cancel import mark_pending_cancel
from orders.model import (
    CancelRequest,
    Event,
    EventType,
    MassCancel,
    NewOrder,
    Order,
    OrdStatus,
    ReplaceRequest,
)
from orders.risk import RejectCode, RiskEngine, RiskReject
from orders.risk_checks import MAX_QTY
from orders.rows import (
    ADMIN_SCHEMA,
    EVENT_SCHEMA,
    Request,
    encode_requests,
    encode_rows,
    event_row,
)
from orders.states import InvalidTransition, apply
from tickdb.gc_pauses import collect_all
from tickerplant.publisher import Publisher, PublishError

log = logging.getLogger(__name__)

WORKING_FOR_CANCEL = frozenset(
    {OrdStatus.NEW, OrdStatus.PARTIALLY_FILLED, OrdStatus.REPLACED, OrdStatus.PENDING_REPLACE}
)


class OrderRejected(Exception):
    """A request refused before it reached a venue: ``code`` is the typed reason."""

    def __init__(self, code: str, message: str, order: Order | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.order = order


class OrdersUnavailable(Exception):
    """The order path is not running (no tickerplant, or still rebuilding its state)."""


@dataclass(frozen=True)
class SubmitResult:
    order: Order
    duplicate: bool  # a retry of a ClOrdID already known: the original order


def _same_request(order: Order, req: NewOrder) -> bool:
    return (order.sym, order.side, order.ord_type, order.tif, order.strategy) == (
        req.sym,
        req.side,
        req.ord_type,
        req.tif,
        req.strategy,
    ) and (bool(order.orig_clordid) or order.qty == req.qty)


def _rejected_view(event: Event) -> Order:
    return Order(
        order_id=event.order_id,
        account=event.account,
        sym=event.sym,
        clordid=event.clordid,
        side=event.side,
        qty=event.qty,
        ord_type=event.ord_type,
        price=event.price,
        tif=event.tif,
        strategy=event.strategy,
        status=OrdStatus.REJECTED,
        reason=event.reason,
    )


class OrderRouter:
    """Owns the order state of one gateway; thread-safe (one lock, one condition)."""

    def __init__(
        self,
        risk: RiskEngine,
        publisher: Publisher,
        *,
        submit_timeout_s: float = 2.0,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.risk = risk
        self.submit_timeout_s = submit_timeout_s
        self._pub = publisher
        self._clock_ns = clock_ns
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        # Every ClOrdID of the trading day (a replace adds one) -> the order it names.
        self._by_clordid: dict[tuple[str, str], Order] = {}
        # The last day's orders that gave up their ClOrdIDs at the day's end.
        self._previous_day: dict[tuple[str, str], Order] = {}
        self.ready = False
        self.invalid_transitions = 0
        # Called (on the stream's thread, lock held) with each order an event changed.
        self.listeners: list[Callable[[Order], None]] = []
        # The same, with the event itself (FIX execution reports need ExecType, LastQty).
        self.event_listeners: list[Callable[[Order, Event], None]] = []

    # -- helpers -------------------------------------------------------------------------
    def _send(self, req: Request, outbox: list[Request] | None = None) -> None:
        if outbox is not None:
            outbox.append(req)
        else:
            self._pub.publish_ipc("order_request", encode_requests([req]))

    def durable(self, batch: int | None = None) -> None:
        """Return once what was sent (up to ``batch``, a ``Publisher.last_batch``) is
        journaled: from then an answer that did not wait for the venue may be given.
        Called without the router's lock, so other requests and answers go on."""
        try:
            self._pub.wait_journaled(self._pub.last_batch if batch is None else batch)
        except PublishError as exc:  # a refused batch: a bug, never a client's input
            log.error("the tickerplant refused order-path batches: %s", exc)

    @contextlib.contextmanager
    def _locked_then_durable(self) -> Iterator[list[int]]:
        """The router's lock for a request; a batch noted in the list is made ``durable``
        once the lock is let go, whether the request returns or raises."""
        due: list[int] = []
        try:
            with self._lock:
                yield due
        finally:
            if due:
                self.durable(due[-1])

    def send_many(self, reqs: list[Request]) -> None:
        """Send requests prepared into an outbox, in order, as one batch."""
        if reqs:
            self._pub.publish_ipc("order_request", encode_requests(reqs))

    def _record_reject(self, order: Order, event: EventType, reason: str, text: str) -> None:
        """Record a gateway-side refusal in the ``order`` table like a venue's events."""
        row = order_event(order, event, reason=reason, text=text)
        if not 0 <= row.qty <= MAX_QTY:  # refused for it: the text holds the value asked
            row = replace(row, qty=0, leaves_qty=0)
        self._pub.publish_ipc("order", encode_rows([event_row(row, "", 0)], EVENT_SCHEMA))

    def _require_ready(self) -> None:
        if not self.ready:
            raise OrdersUnavailable("the order path is rebuilding its state from the journal")

    def _wait(self, done: Callable[[], bool]) -> None:
        deadline = time.monotonic() + self.submit_timeout_s
        while not done():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._changed.wait(remaining)

    # -- requests ------------------------------------------------------------------------
    def submit(
        self,
        req: NewOrder,
        *,
        intended: bool = False,
        wait: bool = True,
        outbox: list[Request] | None = None,
    ) -> SubmitResult:
        """Check, send and wait for the venue's first answer (or ``submit_timeout_s``).

        ``wait=False`` returns once the request is sent (pending_new): the answer then
        arrives as events, as a FIX client would take it. With an ``outbox`` the request is
        appended to it instead of sent: the caller sends a whole run with ``send_many``."""
        self._require_ready()
        with self._locked_then_durable() as journal:
            known = self._by_clordid.get((req.account, req.clordid))
            if known is not None:
                if _same_request(known, req):
                    if known.status is OrdStatus.REJECTED and not known.order_id:
                        # A retry of a request risk refused: the same answer again.
                        reason = known.reason or "rejected"
                        raise OrderRejected(
                            reason, f"order {req.clordid!r} was rejected: {reason}", known
                        )
                    if wait and outbox is None:
                        # A retry (perhaps sent first to another gateway): the venue's answer.
                        self._wait(lambda: known.status is not OrdStatus.PENDING_NEW)
                    return SubmitResult(known, duplicate=True)
                raise OrderRejected(
                    RejectCode.DUPLICATE_CLORDID,
                    f"ClOrdID {req.clordid!r} is already used by account {req.account!r} today",
                    known,
                )
            order = req.to_order()
            self._by_clordid[(req.account, req.clordid)] = order
            reject = self.risk.check_new(req, self._clock_ns(), intended=intended)
            if reject is not None:
                order.status = OrdStatus.REJECTED
                order.reason = str(reject.code)
                self._record_reject(order, EventType.REJECTED, reject.code, reject.message)
                if outbox is None:
                    journal.append(self._pub.last_batch)
                raise OrderRejected(reject.code, reject.message, order)
            self._send(req, outbox)
            if wait:
                self._wait(lambda: order.status is not OrdStatus.PENDING_NEW)
            elif outbox is None:
                journal.append(self._pub.last_batch)
            return SubmitResult(order, duplicate=False)

    def _retried(self, account: str, clordid: str, orig_clordid: str) -> Order | None:
        """The order a cancel or replace was already sent for, when this is a retry of it
        (same ClOrdID, same target): nothing is sent again."""
        done = self._by_clordid.get((account, clordid))
        if done is not None and done is self._by_clordid.get((account, orig_clordid)):
            return done
        return None

    def _target(self, account: str, orig_clordid: str, request_clordid: str) -> Order:
        order = self._by_clordid.get((account, orig_clordid))
        if order is None:
            raise OrderRejected(
                RejectCode.UNKNOWN_ORDER,
                f"no order with ClOrdID {orig_clordid!r} for account {account!r} today",
            )
        if request_clordid and (account, request_clordid) in self._by_clordid:
            raise OrderRejected(
                RejectCode.DUPLICATE_CLORDID,
                f"ClOrdID {request_clordid!r} is already used by account {account!r} today",
                order,
            )
        return order

    def _refuse_closed(self, order: Order, event: EventType, what: str) -> None:
        if order.is_open:
            return
        text = f"order {order.clordid!r} is {order.status}: too late to {what}"
        self._record_reject(order, event, "too_late", text)
        raise OrderRejected("too_late", text, order)

    def cancel(
        self, req: CancelRequest, *, wait: bool = True, outbox: list[Request] | None = None
    ) -> Order:
        self._require_ready()
        with self._locked_then_durable() as journal:
            retried = self._retried(req.account, req.clordid, req.orig_clordid)
            if retried is not None:
                return retried
            order = self._target(req.account, req.orig_clordid, req.clordid)
            self._by_clordid[(req.account, req.clordid)] = order
            self._refuse_closed(order, EventType.CANCEL_REJECTED, "cancel")
            reject = self.risk.check_cancel(req.account, self._clock_ns())
            if reject is not None:
                raise OrderRejected(reject.code, reject.message, order)
            if order.status in WORKING_FOR_CANCEL:
                apply(order, EventType.PENDING_CANCEL)
            self._send(replace(req, sym=order.sym), outbox)
            if wait:
                self._wait(lambda: order.status is not OrdStatus.PENDING_CANCEL)
            elif outbox is None:
                journal.append(self._pub.last_batch)
            return order

    def replace(
        self, req: ReplaceRequest, *, wait: bool = True, outbox: list[Request] | None = None
    ) -> Order:
        self._require_ready()
        with self._locked_then_durable() as journal:
            retried = self._retried(req.account, req.clordid, req.orig_clordid)
            if retried is not None:
                return retried
            order = self._target(req.account, req.orig_clordid, req.clordid)
            req = replace(req, sym=order.sym)  # the sym routes it: the order's own
            self._refuse_closed(order, EventType.REPLACE_REJECTED, "replace")
            reject = self.risk.check_replace(req, self._clock_ns(), order)
            if reject is not None:
                raise OrderRejected(reject.code, reject.message, order)
            if order.status in WORKING_FOR_CANCEL - {OrdStatus.PENDING_REPLACE}:
                apply(order, EventType.PENDING_REPLACE)
            self._by_clordid[(req.account, req.clordid)] = order
            self._send(req, outbox)
            if wait:
                self._wait(lambda: order.status is not OrdStatus.PENDING_REPLACE)
            elif outbox is None:
                journal.append(self._pub.last_batch)
            return order

    def open_orders(self, account: str = "", strategy: str = "", sym: str = "") -> list[Order]:
        with self._lock:
            return [
                o
                for o in self._orders()
                if o.is_open
                and (not account or o.account == account)
                and (not strategy or o.strategy == strategy)
                and (not sym or o.sym == sym)
            ]

    def mass_cancel(self, req: MassCancel, wait: bool = True) -> list[Order]:
        """Cancel every open order the filters match, on every venue; returns them."""
        self._require_ready()
        with self._lock:
            # One row: with a sym it reaches that sym's venue, without one every venue. Sent
            # first, so the venues start while the targets are marked: the lock keeps their
            # answers out until that is done (a kill over 10,000 orders: ~20 ms sooner).
            self._send(req)
            targets = self.open_orders(req.account, req.strategy, req.sym)
            mark_pending_cancel(targets)
            if wait:
                # Counted down as events close the targets: re-checking all of them after
                # every event would cost O(n²) for a kill switch over many orders.
                still_open = {id(o) for o in targets if o.is_open}

                def closed(order: Order) -> None:
                    if not order.is_open:
                        still_open.discard(id(order))

                self.listeners.append(closed)
                try:
                    self._wait(lambda: not still_open)
                finally:
                    self.listeners.remove(closed)
            return targets

    def _orders(self) -> list[Order]:
        seen: dict[int, Order] = {}
        for order in self._by_clordid.values():
            seen.setdefault(id(order), order)
        return list(seen.values())

    def orders(self, account: str = "", open_only: bool = False) -> list[Order]:
        with self._lock:
            return [
                o
                for o in self._orders()
                if (not account or o.account == account) and (o.is_open or not open_only)
            ]

    def order(self, account: str, clordid: str) -> Order | None:
        with self._lock:
            return self._find((account, clordid))

    # -- admin -----------------------------------------------------------------------------
    def admin(self, action: str, account: str, strategy: str, detail: dict[str, Any]) -> None:
        """Record an applied admin request in ``risk_admin`` (and so in the journal)."""
        import json

        row = {
            "sym": "",
            "action": action,
            "account": account,
            "strategy": strategy,
            "detail": json.dumps(detail, default=str, sort_keys=True),
        }
        self._pub.publish_ipc("risk_admin", encode_rows([row], ADMIN_SCHEMA))

    # -- the stream's side (called by OrderStream with the lock held) -----------------------
    def known_request(self, req: Request) -> None:
        """A request found in the journal: note its ClOrdID (a restart rebuilding state)."""
        if isinstance(req, NewOrder):
            key = (req.account, req.clordid)
            if key in self._by_clordid:
                return
            self._by_clordid[key] = req.to_order()
        elif isinstance(req, ReplaceRequest | CancelRequest):
            order = self._by_clordid.get((req.account, req.orig_clordid))
            if order is not None:
                self._by_clordid.setdefault((req.account, req.clordid), order)

    def _find(self, key: tuple[str, str]) -> Order | None:
        return self._by_clordid.get(key) or self._previous_day.get(key)

    def on_event(self, event: Event, ts_ns: int) -> None:
        """A venue's order event. ``ts_ns``: when the tickerplant received it, so a replay at
        start counts each fill in the repeated-execution window it really fell in.

        A FILL event moves its execution from the working orders into the position in one
        step (``RiskEngine.on_event``); the ``fill`` rows the venue publishes after it say
        the same and are not applied again."""
        key = (event.account, event.clordid)
        if event.event in (EventType.CANCEL_REJECTED, EventType.REPLACE_REJECTED):
            key = (event.account, event.orig_clordid or event.clordid)
        order = self._find(key)
        if order is None and event.orig_clordid:
            order = self._find((event.account, event.orig_clordid))
        if order is None:
            if event.event is EventType.REJECTED:
                # The gateway's own risk reject, read back after a restart: a retry of
                # that ClOrdID must get the same answer, not a second order.
                self._by_clordid[key] = _rejected_view(event)
            else:
                log.warning("order event for an unknown ClOrdID: %s", event)
                if event.event is EventType.FILL and event.last_qty > 0:
                    self._notice(self.risk.on_execution(event, ts_ns))  # it still happened
            return
        self._apply_event(order, event)
        self._notice(self.risk.on_event(event, ts_ns))
        for listener in self.listeners:
            listener(order)
        for event_listener in self.event_listeners:
            event_listener(order, event)
        # Waiters are woken once per message by the stream (``notify``), not per event:
        # a woken waiter contends for the GIL and the lock, which for a record of
        # thousands of events cost more than applying them.

    def _apply_event(self, order: Order, event: Event) -> None:
        if event.event is EventType.REJECTED and order.status is OrdStatus.REJECTED:
            return  # our own risk reject, recorded and read back
        try:
            if event.event is EventType.FILL:
                apply(order, event.event, fill_qty=event.last_qty, fill_px=event.last_px)
            else:
                apply(order, event.event)
        except InvalidTransition as exc:
            self.invalid_transitions += 1
            log.error("refused: %s", exc)
            return
        # The venue's numbers are the truth once the transition is legal.
        order.order_id = event.order_id or order.order_id
        order.qty, order.price = event.qty, event.price
        order.cum_qty, order.avg_px = event.cum_qty, event.avg_px
        if event.event is EventType.REPLACED:
            order.clordid, order.orig_clordid = event.clordid, event.orig_clordid
        if event.reason:
            order.reason = event.reason

    @staticmethod
    def _notice(notice: RiskReject | None) -> None:
        if notice is not None:  # the fill throttle halted an account
            log.warning("%s", notice.message)

    def on_price(self, sym: str, price: float) -> None:
        self.risk.on_price(sym, price)

    def new_day(self) -> None:
        """ClOrdIDs are unique per trading day: only working GTC orders keep theirs. The
        day's other orders stay reachable for the events still to come about them (the
        venues expire DAY orders after the day ends), but their ids are free again."""
        keep = {k: o for k, o in self._by_clordid.items() if o.is_open and o.tif == "gtc"}
        self._previous_day = {k: o for k, o in self._by_clordid.items() if k not in keep}
        self._by_clordid = keep
        self.risk.new_day()
        collect_all()  # the day's end: a quiet moment for a full collection

    @property
    def publisher_id(self) -> bytes:
        """The secret id its requests are published under (``publisher_ids.public_id`` of
        it names them in the journal)."""
        return self._pub.publisher_id

    @property
    def lock(self) -> threading.RLock:
        return self._lock

    def notify(self) -> None:
        """Wake the requests waiting for their venue's answer (after each message)."""
        self._changed.notify_all()
