"""Feeds the gateway's ``OrderRouter`` from the tickerplant: order flow and live prices.

Two subscriptions, each on its own thread:

- the order flow (``order_request``, ``order``, ``fill``, ``risk_admin``) from the start of
  the journal (or from the newest usable order-state snapshot's seq,
  ``gateway.order_snapshot``): first a replay that rebuilds every ClOrdID, open order,
  position, risk counter and admin decision (``gateway.flow_apply``), then live. The
  router takes requests only once the replay is done (``OrderRouter.ready``). The order
  port is served on this thread too (``attach``): one thread takes a request, sends it,
  applies the venue's answer and replies.
- live ``trade`` and ``quote``: the reference prices of the price collar and of market
  orders' notional, and the marks of unrealized P&L (last trade, else mid).
"""

from __future__ import annotations

import gc
import logging
import math
import threading
import time
from typing import Protocol

import pyarrow as pa
import zmq

from gateway.flow_apply import FlowApplier
from gateway.order_router import OrderRouter
from gateway.order_snapshot import restore_newest
from gateway.order_wait import SocketsWait, has_input
from gateway.peer_requests import PeerRequests
from gateway.replay_rows import Columns
from gateway.venue_activity import VenueActivity
from orders.snapshot import VenueSnapshots
from tickerplant.publisher_ids import public_id
from tickerplant.subscriber import EndOfDay, Message, Start, Subscriber, Update

log = logging.getLogger(__name__)

ORDER_FLOW = ["order_request", "order", "fill", "risk_admin"]
# Once rebuilt, the requests (every gateway's: active-active gateways learn each other's
# orders and ClOrdIDs, ``gateway.peer_requests``) and the venues' answers; admin rows are
# this gateway's own, applied when made.
LIVE_FLOW = ["order_request", "order", "fill"]
MAX_FLOW_RUN = 256  # flow messages applied in a turn before the port's requests
# Records a rebuild reads together and applies under one hold of the router's lock
# (``_apply_replayed``): enough that per-record costs vanish, few enough that the decoded
# rows stay small in memory and a read of the state (the HTTP API) waits little.
REPLAY_RUN = 2048


class PortHooks(Protocol):
    """What ``OrderStream.attach`` serves: a socket, and what to do on its thread."""

    @property
    def socket(self) -> zmq.Socket: ...

    def serve_requests(self) -> bool:
        """The socket has input: take its requests; whether it may have input its events
        would show (more requests, or something sent on it since it was found empty)."""

    def serve_answers(self) -> bool:
        """Order flow was applied: send the answers it gave; whether any was sent."""


class OrderStream:
    def __init__(
        self,
        router: OrderRouter,
        tp_address: str,
        timeout_s: float = 10.0,
        snapshots: VenueSnapshots | None = None,
    ) -> None:
        """``snapshots``: the gateway's order-state snapshots (``gateway.order_snapshot``):
        the newest usable one is restored and the journal replayed only after its seq."""
        self.router = router
        self.tp_address = tp_address
        self._timeout_s = timeout_s
        # Each venue's answers, for the console's operations view.
        self.venues = VenueActivity()
        self.peers = PeerRequests(router)
        self.applier = FlowApplier(router, self.peers, self.venues)
        # The seq of the snapshot the state was restored from (0: none, a full replay).
        self.restored_seq = 0
        if snapshots is not None:
            state = restore_newest(self.applier, snapshots, tp_address, timeout_s)
            self.restored_seq = 0 if state is None else int(state["seq"])
        start: Start = self.restored_seq or "journal"
        self._flow = Subscriber(tp_address, tables=ORDER_FLOW, start=start, timeout_s=timeout_s)
        self._prices = Subscriber(tp_address, tables=["trade", "quote"], timeout_s=timeout_s)
        self._start_seq = self._flow.hello.seq
        # Live admin requests are applied when made; the journal's rebuild a restarted one.
        self.applier.admin_upto = self._start_seq
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._threads: list[threading.Thread] = []
        # The order port this stream's thread serves too, once attached (``attach``).
        self._port: PortHooks | None = None
        self._port_lock = threading.Lock()
        self._wait: SocketsWait | None = None
        self.last_seq = self.restored_seq
        # Live, this gateway's own requests are left out of the flow while no other
        # gateway's come (``_own_left_out``): the replay position from which they are.
        self._own_id = public_id(router.publisher_id)
        self._own_left_out_after: int | None = None

    def start(self) -> OrderStream:
        for name, target in (("order-flow", self._run_flow), ("order-prices", self._run_prices)):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    @property
    def tables(self) -> list[str]:
        """The tables followed now: ``ORDER_FLOW`` while rebuilding, then ``LIVE_FLOW``."""
        return list(self._flow.tables or ())

    def wait_ready(self, timeout_s: float) -> bool:
        return self._ready.wait(timeout_s)

    # -- order flow ------------------------------------------------------------------------
    def attach(self, port: PortHooks) -> None:
        """Serve ``port``'s socket on this stream's thread from its next turn on: a request
        and the venue's answer to it are handled by one thread, with no hand-off between
        threads (a wake-up, the interpreter lock) on the way back to the client."""
        with self._port_lock:
            self._port = port

    def detach(self) -> None:
        """Stop serving the port; returns once this thread no longer touches its socket."""
        # Unset first, then wait for the turn in progress: the flow thread takes the lock
        # again at once after each turn, and a lock is not fair, so waiting for it with the
        # port still attached could take seconds (a gateway's stop did: 7-8 s).
        self._port = None
        with self._port_lock:
            pass

    def _run_flow(self) -> None:
        while not self._stop.is_set():
            if self._port is not None:
                with self._port_lock:
                    if self._port is not None:
                        self._turn(self._port)
                continue
            if not self.router.ready and self._flow.pending > 1:
                self._apply_replayed()
                continue
            message = self._flow.poll(0.05)
            if message is None:
                self._check_ready()
                continue
            self._on_message(message)
            if not self.router.ready and not self._flow.pending:
                # A busy order flow may never leave 50 ms without a record: once the
                # replay is applied and nothing received waits, it is checked here too.
                self._check_ready()

    def _turn(self, port: PortHooks) -> None:
        """One turn with the port attached: the order flow first (answers to send), then
        the port's requests."""
        flow = self._flow
        wait = self._wait
        if wait is None or wait.sockets != (flow.socket, port.socket):
            wait = self._wait = SocketsWait((flow.socket, port.socket))
        flow_ready, port_ready = wait.wait(0 if flow.pending else 0.05)
        timed_out = not (flow_ready or port_ready or flow.pending)
        flow_ready = flow_ready or bool(flow.pending)
        if flow_ready or timed_out:
            # A timeout still reads once: that is what notices a silent tickerplant.
            for _ in range(MAX_FLOW_RUN):
                # None also after a message without records (a heartbeat): more may wait.
                message = flow.poll_now()
                if message is not None:
                    self._on_message(message)
                    if self._flow is not flow:
                        break  # a new subscription (``_own_left_out``): waited on next turn
                # Whether more is there, asked without a receive that fails (an exception
                # per turn, several µs, more with cold caches).
                if not flow.pending and not has_input(flow.socket):
                    wait.clean(0)
                    break
            else:
                wait.dirty(0)  # more may wait: looked at again before any sleep
            if port.serve_answers():
                wait.dirty(1)
        if port_ready:
            if port.serve_requests():
                wait.dirty(1)
            else:
                wait.clean(1)

    def _check_ready(self) -> None:
        # Ready once the replayed records are applied (nothing is queued) and the live
        # topic answers (a heartbeat). The subscriber's own position counts, not the last
        # record applied: the journal may end with other tables.
        if not self.router.ready and self._flow.last_seq >= self._start_seq and self._flow.live:
            self._mark_ready()

    def _on_message(self, message: Message) -> None:
        if (
            self._own_left_out_after is not None
            and isinstance(message, Update)
            and message.table == "order_request"
        ):
            self._own_left_out(message)  # another gateway's request: follow them all now
        try:
            with self.router.lock:
                self._apply(message)
                self.router.notify()
        except Exception:  # one bad row must not stop the order path
            log.exception("order flow message %r not applied", message)
        self.last_seq = message.seq

    def _apply_replayed(self) -> None:
        """``_apply_run`` without the cycle collector, which then freezes what it left.

        The rebuilt state is kept all day and frozen once ready (``keep_pauses_short``):
        collected as it grew, its full collections visited all of it every quarter it grew
        by, and a run's rows read together (alive across the young collections) were
        promoted and visited too. So each run is applied with the collector off; the run's
        young objects are then collected (any cycle it made, unlike everything else it
        made, is garbage) and the rest frozen, as ``keep_pauses_short`` would."""
        enabled = gc.isenabled()
        gc.disable()
        try:
            self._apply_run()
        finally:
            if enabled:
                gc.enable()
                gc.collect(0)
                gc.freeze()

    def _apply_run(self) -> None:
        """While rebuilding: the next ``REPLAY_RUN`` records already received (the replay
        fetched them all), each table's read together (``replay_rows``), applied in
        sequence as ``_on_message`` applies them one by one, under one hold of the lock.
        Nobody waits for an answer yet (the router takes no request before it is ready):
        one wake-up at the end is enough."""
        flow = self._flow
        messages: list[Message] = []
        while flow.pending and len(messages) < REPLAY_RUN:
            message = flow.poll_now()
            if message is not None:
                messages.append(message)
        read = self.applier.read_run(messages)
        with self.router.lock:
            for message in messages:
                try:
                    self._apply(message, read.get(message.seq))
                except Exception:  # one bad row must not stop the order path
                    log.exception("order flow message %r not applied", message)
                self.last_seq = message.seq
            self.router.notify()

    def _mark_ready(self) -> None:
        self._follow_answers_only()
        with self.router.lock:
            self.router.ready = True
        self._ready.set()
        log.info(
            "order path ready: state rebuilt up to seq %d, from %s",
            self._start_seq,
            f"the snapshot at seq {self.restored_seq}" if self.restored_seq else "seq 0",
        )

    def _follow_answers_only(self) -> None:
        """Go on from the replay's position with ``LIVE_FLOW`` alone (the new subscription
        fetches what it missed meanwhile from the journal: nothing is skipped), without
        this gateway's own requests (``_own_left_out``). If that fails, the whole flow stays
        followed, as before: its extra rows are skipped."""
        replay = self._flow
        try:
            live = Subscriber(
                self.tp_address,
                tables=LIVE_FLOW,
                not_from=self._own_id,
                start=replay.last_seq,
                timeout_s=self._timeout_s,
            )
        except Exception as exc:  # the tickerplant went away just now: keep what works
            log.warning("order flow: staying on every order table (%s)", exc)
            return
        self._own_left_out_after = replay.last_seq
        self._flow = live
        replay.close()

    def _own_left_out(self, message: Update) -> None:
        """The first ``order_request`` record of another publisher (another gateway) while
        this gateway's own requests are left out of its flow: from here on it follows them
        all, as active-active gateways need (``gateway/peer_requests.py``).

        A gateway alone gets no record of its requests back (the tickerplant leaves out its
        own, ``TopicFilter.not_from``): one wake-up per order fewer. Its own rows only tell
        ``PeerRequests`` which keys were sequenced first, which matters once another
        gateway sends requests; so before the first of those is applied, the own rows
        sequenced since the flow went live are read from the journal and applied (their
        effect does not depend on the venues' answers applied meanwhile: only the order of
        requests counts), and the flow is followed whole from this record on."""
        after = self._own_left_out_after
        assert after is not None
        log.info(
            "order flow: another publisher's request at seq %d; following every request",
            message.seq,
        )
        # Under the router's lock, as any flow record is applied: a request made through
        # this gateway right after the other one answered sees that record applied.
        with self.router.lock:
            try:
                own = self._own_requests(after, message.seq)
                live = Subscriber(
                    self.tp_address, tables=LIVE_FLOW, start=message.seq, timeout_s=self._timeout_s
                )
            except Exception as exc:  # the tickerplant away: the next such record tries again
                log.error("order flow: could not follow every request yet (%s)", exc)
                return
            for payload in own:
                self.peers.apply(payload)
            self._own_left_out_after = None
            self._flow.close()
            self._flow = live

    def _own_requests(self, after: int, before: int) -> list[bytes]:
        """The ``order_request`` payloads sequenced in ``(after, before)`` since the last
        day's end in it (rows of an ended day name orders that are gone)."""
        payloads: list[bytes] = []
        deadline = time.monotonic() + self._timeout_s
        with Subscriber(
            self.tp_address, tables=["order_request"], start=after, timeout_s=self._timeout_s
        ) as journal:
            while time.monotonic() < deadline:
                earlier = journal.poll(0 if journal.last_seq >= before - 1 else 0.05)
                if earlier is None:
                    if journal.last_seq >= before - 1:
                        return payloads
                    continue
                if earlier.seq >= before:
                    return payloads
                if isinstance(earlier, EndOfDay):
                    payloads.clear()
                else:
                    payloads.append(earlier.payload)
        log.error("order flow: own requests up to seq %d not read in time", before - 1)
        return payloads

    def _apply(self, message: Message, read: Columns | None = None) -> None:
        """One record; ``read``: its columns when already read (``_apply_replayed``)."""
        self.applier.apply(message, read)

    # -- prices ------------------------------------------------------------------------------
    def _run_prices(self) -> None:
        while not self._stop.is_set():
            message = self._prices.poll(0.2)
            if not isinstance(message, Update):
                continue
            try:
                marks = _marks(message.table, message.data)
            except (KeyError, pa.ArrowException) as exc:
                log.error("price update not used: %s", exc)
                continue
            with self.router.lock:
                for sym, price in marks.items():
                    self.router.on_price(sym, price)

    def close(self) -> None:
        self._stop.set()
        self.detach()
        for thread in self._threads:
            thread.join(5)
        self._flow.close()
        self._prices.close()


def _marks(table: str, data: pa.Table) -> dict[str, float]:
    """The last price of each sym in an update: trade price, or quote mid."""
    syms = data.column("sym").to_pylist()
    if table == "trade":
        prices = data.column("price").to_pylist()
    else:
        bids = data.column("bid").to_pylist()
        asks = data.column("ask").to_pylist()
        prices = [
            (b + a) / 2 if b and a and b > 0 and a > 0 else math.nan
            for b, a in zip(bids, asks, strict=True)
        ]
    return {s: p for s, p in zip(syms, prices, strict=True) if p is not None and p == p}
