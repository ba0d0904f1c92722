"""A shard's venue reached over FIX: the initiator venue adapter.

A shard listed in ``[fix.venues.NAME]`` routes its orders to an external FIX 4.4
counterparty instead of the built-in matching venue. ``tickdb venue --shard k/n`` runs this
adapter for such a shard (and ``tickdb up`` with it). Like ``orders.venue`` it subscribes to
the tickerplant's ``order_request`` stream by shard and keeps the rows of its shard; each request
becomes a FIX message on one initiator session (``fix.session``, sequence numbers and sent
messages persisted under ``fix.store_dir``):

- a new order: NewOrderSingle (D); a cancel: OrderCancelRequest (F); a replace:
  OrderCancelReplaceRequest (G); a mass cancel for every account and strategy:
  OrderMassCancelRequest (q, 530=7, or 530=1 with a sym); a narrower one: one
  OrderCancelRequest per working order it covers.
- The counterparty's ExecutionReports (8) and OrderCancelRejects (9) become ``order`` rows
  (and ``fill`` rows for trades) with ``venue`` = the shard label and ``in_seq`` = the
  sequence number of the request they answer, published to the tickerplant.

ClOrdIDs sent are ``<account>:<clordid>:<in_seq>``: one per request of the journal, the
same after any restart, so the counterparty's ClOrdID check is the last guard against a
request reaching it twice. Recovery, without sending anything twice or publishing anything
twice:

- at start the adapter reads its own journaled ``order`` rows (their ExecIDs, the requests
  they answer, the orders' state) and replays the ``order_request`` journal; a request is
  sent only if it has no answer in the journal and its ClOrdID is not among the messages
  the session already stored (sent, or numbered for sending);
- a request stored but not delivered (a dropped connection, a crash between store and
  socket) reaches the counterparty through its ResendRequest, with PossDupFlag=Y;
- an ExecutionReport is published and the tickerplant's acknowledgement awaited before the
  adapter records it as applied (``applied`` next to the session's sequence numbers); after
  a crash the expected inbound MsgSeqNum is moved back to the first one not applied, so
  the counterparty resends what may be missing, and reports whose ExecID is already
  journaled are skipped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from fix.codec import Field, Message, fix_time
from fix.engine import Engine
from fix.session import Session
from orders.book_events import unknown_order_event
from orders.fix_venue_map import (
    CXL_REJ_REASON,
    EXEC_EVENT,
    ORD_TYPE,
    SIDE,
    STATUS,
    TIF,
    FixVenueSettings,
    SentRequest,
    VenueOrder,
    ext_clordid,
    order_event,
    read_journal,
    refused_new,
    stored_clordids,
)
from orders.model import (
    CancelRequest,
    Event,
    EventType,
    Fill,
    Liquidity,
    MassCancel,
    NewOrder,
    OrdStatus,
    OrdType,
    ReplaceRequest,
    RequestType,
)
from orders.rows import (
    EVENT_SCHEMA,
    FILL_SCHEMA,
    encode_rows,
    event_row,
    fill_row,
    request_from_row,
)
from tickdb.types import Shard
from tickerplant.publisher import Publisher
from tickerplant.subscriber import Subscriber, Update

log = logging.getLogger(__name__)


class FixVenue:
    def __init__(
        self,
        tp_address: str,
        shard: Shard,
        settings: FixVenueSettings,
        *,
        timeout_s: float = 10.0,
    ) -> None:
        self.tp_address = tp_address
        self.shard = shard
        self.label = str(shard)
        self.prefix = f"F{shard.index}-"
        self.settings = settings
        self.timeout_s = timeout_s
        self._orders: dict[tuple[str, str], VenueOrder] = {}  # (account, clordid) -> order
        self._reqs: dict[str, SentRequest] = {}  # ClOrdID sent -> the request
        self._exec_ids: set[str] = set()
        self._answered: set[int] = set()  # in_seq of journaled answers
        self._owned: dict[str, bool] = {}
        self._mass: SentRequest | None = None  # the last mass cancel sent as one request (q)
        self._mass_left = 0  # its cancels still to come (TotalAffectedOrders)
        self.sent_requests = self.reports = self.duplicates_skipped = 0
        self._journaled = read_journal(
            tp_address, self.label, timeout_s, self._exec_ids, self._answered
        )
        self.engine = Engine(name=f"fix-venue-{shard.index}")
        self.session = Session(settings.session, self, initiator=True)
        self._applied_path = self.session.store.directory / "applied"
        self._rewind_inbound()
        self._sent_ext = stored_clordids(self.session.store.messages.values())
        self._pub = Publisher(tp_address, timeout_s=timeout_s)
        # By shard, as the built-in venue: another shard's orders never wake it (the rows
        # are still filtered here, ``_owns``).
        self._sub = Subscriber(
            tp_address,
            tables=["order_request"],
            shard=shard,
            empty_syms=True,
            start="journal",
            timeout_s=timeout_s,
        )
        self.processed_seq = 0
        self.logged_on = threading.Event()

    # -- recovery ------------------------------------------------------------------------
    def _rewind_inbound(self) -> None:
        """Expect again the first inbound message whose reports may not be journaled."""
        try:
            applied = int(self._applied_path.read_text().split()[0])
        except (FileNotFoundError, IndexError, ValueError):
            applied = 0
        store = self.session.store
        if applied and store.next_target > applied + 1:
            log.info("fix venue %s: inbound rewound to %d", self.label, applied + 1)
            store.set_next_target(applied + 1)

    def _apply_journaled(self) -> None:
        for ev in self._journaled:
            order = self._orders.get((ev.account, ev.orig_clordid or ev.clordid))
            order = order or self._orders.get((ev.account, ev.clordid))
            if order is None:
                continue
            if ev.event in (EventType.CANCEL_REJECTED, EventType.REPLACE_REJECTED):
                continue
            order.status, order.cum_qty, order.avg_px = ev.status, ev.cum_qty, ev.avg_px
            order.qty, order.price = ev.qty, ev.price
            order.order_id = ev.order_id or order.order_id
            if ev.event is EventType.REPLACED:
                order.clordid = ev.clordid
                self._orders[(ev.account, ev.clordid)] = order
        self._journaled = []

    # -- requests (engine thread) ----------------------------------------------------------
    def _owns(self, sym: str) -> bool:
        owned = self._owned.get(sym)
        if owned is None:
            owned = self._owned[sym] = self.shard.owns(sym)
        return owned

    def _send(self, seq: int, ext: str, msg_type: str, body: list[Field]) -> None:
        """Send unless this request was answered or already stored for sending."""
        if seq in self._answered or ext in self._sent_ext:
            log.debug("fix venue %s: %s already sent or answered", self.label, ext)
            return
        log.info("fix venue %s: %s %s", self.label, msg_type, ext)
        self._sent_ext.add(ext)
        self.sent_requests += 1
        self.session.send(msg_type, body)

    def on_request(self, seq: int, row: dict[str, Any]) -> None:
        try:
            req = request_from_row(row)
        except (ValueError, TypeError, KeyError) as exc:
            log.error("fix venue %s: unusable order_request row %r: %s", self.label, row, exc)
            return
        if isinstance(req, NewOrder):
            self._new(seq, req)
        elif isinstance(req, MassCancel):
            self._mass_cancel(seq, req)
        elif isinstance(req, CancelRequest):
            self._cancel(seq, req, RequestType.CANCEL)
        elif isinstance(req, ReplaceRequest):
            self._cancel(seq, req, RequestType.REPLACE)

    def _new(self, seq: int, req: NewOrder) -> None:
        key = (req.account, req.clordid)
        if key in self._orders:
            self._publish_local(seq, refused_new(req))
            return
        ext = ext_clordid(req.account, req.clordid, seq)
        order = VenueOrder(
            req.account,
            req.sym,
            req.clordid,
            req.side,
            req.qty,
            req.ord_type,
            req.price,
            req.tif,
            req.strategy,
            ext=ext,
        )
        self._orders[key] = order
        self._reqs[ext] = SentRequest(RequestType.NEW, seq, order, req.clordid)
        body: list[Field] = [(11, ext), (55, req.sym), (54, SIDE[req.side])]
        body += [(38, req.qty), (40, ORD_TYPE[req.ord_type])]
        if req.price is not None:
            body.append((44, f"{req.price:.10g}"))
        body += [(59, TIF[req.tif]), (60, fix_time())]
        self._send(seq, ext, "D", body)

    def _cancel(self, seq: int, req: CancelRequest | ReplaceRequest, kind: RequestType) -> None:
        order = self._orders.get((req.account, req.orig_clordid))
        if order is None or order.sym != req.sym:
            refused = EventType.CANCEL_REJECTED
            if kind is RequestType.REPLACE:
                refused = EventType.REPLACE_REJECTED
            self._publish_local(seq, unknown_order_event(req, refused))
            return
        ext = ext_clordid(req.account, req.clordid, seq)
        self._reqs[ext] = SentRequest(kind, seq, order, req.clordid, req.orig_clordid, req)
        if isinstance(req, ReplaceRequest):
            self._orders.setdefault((req.account, req.clordid), order)
        body: list[Field] = [(11, ext), (41, order.ext), (55, order.sym)]
        body += [(54, SIDE[order.side])]
        if isinstance(req, ReplaceRequest):
            qty = order.qty if req.qty is None else req.qty
            price = order.price if req.price is None else req.price
            body += [(38, qty), (40, ORD_TYPE[order.ord_type])]
            if price is not None:
                body.append((44, f"{price:.10g}"))
            body += [(59, TIF[order.tif]), (60, fix_time())]
            self._send(seq, ext, "G", body)
        else:
            body += [(38, order.qty), (60, fix_time())]
            self._send(seq, ext, "F", body)

    def _mass_cancel(self, seq: int, req: MassCancel) -> None:
        if req.sym and not self._owns(req.sym):
            return
        if not req.account and not req.strategy:
            ext = ext_clordid("*", req.clordid, seq)
            self._reqs[ext] = SentRequest(RequestType.MASS_CANCEL, seq, None, req.clordid, req=req)
            self._mass = self._reqs[ext]
            body: list[Field] = [(11, ext), (530, 1 if req.sym else 7)]
            if req.sym:
                body.append((55, req.sym))
            self._send(seq, ext, "q", [*body, (60, fix_time())])
            return
        for order in {id(o): o for o in self._orders.values()}.values():
            if order.status in (OrdStatus.FILLED, OrdStatus.CANCELED, OrdStatus.REJECTED):
                continue
            if order.status is OrdStatus.EXPIRED:
                continue
            if (
                (req.account and order.account != req.account)
                or (req.strategy and order.strategy != req.strategy)
                or (req.sym and order.sym != req.sym)
            ):
                continue
            ext = f"{order.ext}~mc{seq}"
            self._reqs[ext] = SentRequest(RequestType.MASS_CANCEL, seq, order, req.clordid, req=req)
            body = [(11, ext), (41, order.ext), (55, order.sym)]
            body += [(54, SIDE[order.side]), (38, order.qty), (60, fix_time())]
            self._send(seq, ext, "F", body)

    # -- the session's callbacks (engine thread) ---------------------------------------------
    def on_logon(self, session: Session) -> None:
        self.logged_on.set()
        # Requests stored while logged out are numbered below this one: the counterparty
        # sees the gap and asks for them (they go with PossDupFlag=Y).
        session.heartbeat()

    def on_logout(self, session: Session) -> None:
        self.logged_on.clear()

    def on_message(self, session: Session, msg: Message) -> bool:
        if msg.msg_type == "8":
            self._on_report(msg)
        elif msg.msg_type == "9":
            self._on_cancel_reject(msg)
        elif msg.msg_type == "r":
            self._mass_left = int(msg.get(533) or 0) if self._mass is not None else 0
        elif msg.msg_type != "j":
            return False
        self._applied(msg.seq)
        return True

    def _applied(self, seq: int) -> None:
        self._pub.flush()
        self._applied_path.write_text(f"{seq}\n")

    def _find(self, msg: Message) -> SentRequest | None:
        req = self._reqs.get(msg.get(11))
        if req is None or req.order is None:
            orig = self._reqs.get(msg.get(41))
            if orig is not None and orig.order is not None:
                return req if req is not None else SentRequest(orig.kind, orig.seq, orig.order)
        if req is None:
            log.warning("fix venue %s: report for an unknown ClOrdID: %r", self.label, msg)
        return req

    def _update(self, order: VenueOrder, msg: Message) -> None:
        if msg.get(37) and msg.get(37) != "NONE":
            order.order_id = self.prefix + msg.get(37)
        if 14 in msg.values:
            order.cum_qty = int(float(msg.get(14)))
        if 6 in msg.values:
            order.avg_px = float(msg.get(6))
        if 38 in msg.values:
            order.qty = int(float(msg.get(38)))
        if 44 in msg.values and order.ord_type is OrdType.LIMIT:
            order.price = float(msg.get(44))

    def _on_report(self, msg: Message) -> None:
        self.reports += 1
        exec_id = self.prefix + msg.get(17) if msg.get(17) else ""
        if exec_id and exec_id in self._exec_ids:
            self.duplicates_skipped += 1
            return
        req = self._find(msg)
        if req is None or req.order is None:
            return
        order = req.order
        exec_type = msg.get(150)
        event = EXEC_EVENT.get(exec_type)
        if event is None:
            if exec_type == "I" and order.status is OrdStatus.PENDING_NEW and msg.get(39) != "8":
                event = EventType.ACCEPTED  # a resent order the counterparty already had
            else:
                return
        if event is EventType.REJECTED and msg.get(103) == "6":
            if order.status is not OrdStatus.PENDING_NEW:
                return  # our own resend of an order it has: not a rejection of the order
            self.session.send("H", [(11, order.ext), (55, order.sym), (54, SIDE[order.side])])
            return
        self._update(order, msg)
        order.status = STATUS.get(msg.get(39), order.status)
        clordid, orig, reason, text = order.clordid, "", "", msg.get(58)
        if event is EventType.REPLACED:
            orig = order.clordid
            order.clordid = clordid = req.clordid
            order.ext = msg.get(11)
            order.status = OrdStatus.REPLACED if order.cum_qty == 0 else order.status
        elif event is EventType.CANCELED:
            if req.kind is RequestType.CANCEL:
                clordid, orig, reason = req.clordid, req.orig_clordid, "user"
            elif req.kind is RequestType.MASS_CANCEL:
                reason, text = "mass_cancel", req.clordid
            elif self._mass is not None and self._mass_left > 0:
                self._mass_left -= 1
                req, reason, text = self._mass, "mass_cancel", self._mass.clordid
            else:
                reason = "venue"
        elif event is EventType.REJECTED:
            reason = "venue_reject"
        elif event is EventType.EXPIRED:
            reason = "eod"
        last_qty = int(float(msg.get(32) or 0)) if event is EventType.FILL else 0
        last_px = float(msg.get(31) or 0) if event is EventType.FILL else 0.0
        ev = order_event(order, event, clordid, orig, reason, text, last_qty, last_px, exec_id)
        fill = None
        if event is EventType.FILL and last_qty:
            fill = Fill(
                exec_id,
                order.order_id,
                order.account,
                order.sym,
                order.clordid,
                order.side,
                last_qty,
                last_px,
                Liquidity.MAKER if msg.get(851) == "1" else Liquidity.TAKER,
                order.strategy,
            )
        self._publish(req.seq, ev, fill)

    def _on_cancel_reject(self, msg: Message) -> None:
        req = self._reqs.get(msg.get(11))
        if req is None or req.order is None or req.kind is RequestType.MASS_CANCEL:
            return
        if req.seq in self._answered:
            return
        order = req.order
        event = EventType.REPLACE_REJECTED if msg.get(434) == "2" else EventType.CANCEL_REJECTED
        reason = CXL_REJ_REASON.get(msg.get(102), "venue_reject")
        ev = order_event(order, event, req.clordid, req.orig_clordid, reason, msg.get(58))
        self._publish(req.seq, ev, None)

    def _publish(self, seq: int, event: Event, fill: Fill | None) -> None:
        if event.exec_id:
            self._exec_ids.add(event.exec_id)
        self._answered.add(seq)
        self._pub.publish_ipc(
            "order", encode_rows([event_row(event, self.label, seq)], EVENT_SCHEMA)
        )
        if fill is not None:
            self._pub.publish_ipc(
                "fill", encode_rows([fill_row(fill, self.label, seq)], FILL_SCHEMA)
            )

    def _publish_local(self, seq: int, event: Event) -> None:
        """A refusal decided here (duplicate ClOrdID, unknown order), published once."""
        if seq in self._answered:
            return
        self._publish(seq, event, None)
        self._pub.flush()

    # -- the loop ----------------------------------------------------------------------------
    def _requests(self, message: Update) -> None:
        data = message.data
        syms = data.column("sym").to_pylist()
        kinds = data.column("request").to_pylist()
        for i, (sym, kind) in enumerate(zip(syms, kinds, strict=True)):
            if (sym and self._owns(sym)) or (not sym and kind == RequestType.MASS_CANCEL):
                row = data.slice(i, 1).to_pylist()[0]
                self.on_request(message.seq, row)

    def _recover(self) -> None:
        """Rebuild the orders from the journal; send what was never sent (engine thread)."""
        pending: list[tuple[int, dict[str, Any]]] = []
        while (message := self._sub.poll(0)) is not None:
            if isinstance(message, Update) and message.table == "order_request":
                data = message.data
                for row in data.to_pylist():
                    sym = row["sym"]
                    if (sym and self._owns(sym)) or (
                        not sym and row["request"] == RequestType.MASS_CANCEL
                    ):
                        pending.append((message.seq, row))
            self.processed_seq = message.seq
        # Orders first (from every new order request), then their journaled state, then
        # the requests again: those without an answer and never stored are sent.
        for seq, row in pending:
            if row["request"] == RequestType.NEW and seq in self._answered:
                self.on_request(seq, row)
        self._apply_journaled()
        for seq, row in pending:
            if not (row["request"] == RequestType.NEW and seq in self._answered):
                self.on_request(seq, row)

    def run(self, stop: threading.Event, on_ready: Callable[[], Any] | None = None) -> None:
        done = threading.Event()
        s = self.settings

        def recover() -> None:
            try:
                self._recover()
            finally:
                # Only now: a report resent at logon must find its order (docs/fix.md).
                self.engine.dial(self.session, s.host, s.port, reconnect_s=s.reconnect_s, tls=s.tls)
                done.set()

        self.engine.start()
        self.engine.call_soon(recover)
        done.wait()
        while not self._sub.live and not stop.is_set():
            self._step(0.05)
        ready = (self.label, self.processed_seq, len(self._reqs))
        log.info("fix venue %s ready at seq %d: %d orders", *ready)
        if on_ready is not None:
            on_ready()
        while not stop.is_set():
            self._step(0.2)

    def _step(self, timeout_s: float) -> None:
        message = self._sub.poll(timeout_s)
        if message is None:
            return
        if isinstance(message, Update) and message.table == "order_request":
            self.engine.call_soon(partial(self._requests, message))
        self.processed_seq = message.seq

    def close(self) -> None:
        try:
            if self.session.logged_on:
                self.session.logout()
                deadline = time.monotonic() + 2.0
                while self.session.logged_on and time.monotonic() < deadline:
                    time.sleep(0.02)
            self.engine.stop()
            self._pub.close(flush=True)
        finally:
            self._sub.close()
