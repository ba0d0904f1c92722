"""Applying the order flow's records to a gateway's order state: one place for the rebuild,
the live flow and the order-state snapshots' writer (``gateway.order_snapshotter``).

The state a record leaves is that of ``OrderRouter`` (ClOrdIDs, orders, risk counters,
positions, admin decisions), ``PeerRequests`` (which requests were sequenced first) and
``VenueActivity`` (what each venue answered). A restarted gateway rebuilds it by applying
the journal's ``order_request``, ``order``, ``fill`` and ``risk_admin`` records in sequence
here; a snapshot's writer applies them the same way, so that a snapshot at seq S is exactly
what a rebuild has after applying record S.
"""

from __future__ import annotations

import json
import logging

from gateway import bulk_cancel
from gateway.order_router import OrderRouter
from gateway.peer_requests import PeerRequests, stale_refusal
from gateway.replay_rows import Columns, read_columns_of
from gateway.venue_activity import VenueActivity
from orders.risk import TradingState
from orders.rows import event_from_row, events_from_columns
from tickerplant.payload_rows import read_columns
from tickerplant.subscriber import EndOfDay, Message, Update

log = logging.getLogger(__name__)


class FlowApplier:
    """Applies order-flow records to ``router``, ``peers`` and ``venues`` (the caller holds
    the router's lock)."""

    def __init__(self, router: OrderRouter, peers: PeerRequests, venues: VenueActivity) -> None:
        self.router = router
        self.peers = peers
        self.venues = venues
        # ``risk_admin`` rows up to this seq are applied (None: all). A live gateway applies
        # its admin requests when made: their rows rebuild a restarted one only.
        self.admin_upto: int | None = None

    @staticmethod
    def read_run(messages: list[Message]) -> dict[int, Columns]:
        """Each record's columns by seq, each table's records read together
        (``replay_rows``); a table whose records cannot be read so is left out (each is
        then read, and logged, on its own when applied)."""
        read: dict[int, Columns] = {}
        by_table: dict[str, list[Update]] = {}
        for message in messages:
            if isinstance(message, Update):
                by_table.setdefault(message.table, []).append(message)
        for updates in by_table.values():
            try:
                columns = read_columns_of([u.payload for u in updates])
            except Exception:  # a bad record: each is read (and logged) on its own
                continue
            for update, each in zip(updates, columns, strict=True):
                read[update.seq] = each
        return read

    def apply(self, message: Message, read: Columns | None = None) -> None:
        """One record; ``read``: its columns when already read (``read_run``)."""
        router = self.router
        if isinstance(message, EndOfDay):
            router.new_day()
            self.peers.new_day()
            return
        assert isinstance(message, Update)
        if message.table == "order_request":
            # Replayed or live, this gateway's or another's (``gateway/peer_requests.py``):
            # every gateway learns every order and ClOrdID, the first in sequence winning.
            self.peers.apply(message.payload, read)
            return
        # Without pyarrow: one venue answer per order is the usual record, and a reader and
        # ``to_pylist`` cost several times more than the rest of applying it.
        names, columns = read_columns(message.payload) if read is None else read
        if message.table == "order":
            by_name = dict(zip(names, columns, strict=True))
            if bulk_cancel.applies(router, by_name):  # a mass cancel's answer
                try:
                    bulk_cancel.apply_canceled(router, by_name, message.ts_recv)
                finally:
                    self.venues.saw_columns("order", by_name, message.ts_recv / 1e9)
                return
            try:
                # A mass cancel's record holds thousands: no dict per row on the way.
                events = events_from_columns(names, columns)
            except (ValueError, TypeError, KeyError):
                events = None  # row by row, so the rows before a bad one still count
            if events is not None:
                for event in events:
                    if not stale_refusal(router, event):
                        router.on_event(event, message.ts_recv)
                self._saw_order(names, columns, message.ts_recv)
                return
        rows = [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)]
        if message.table == "order":
            try:
                for row in rows:
                    event = event_from_row(row)
                    if not stale_refusal(router, event):
                        router.on_event(event, message.ts_recv)
            finally:
                self._saw_order(names, columns, message.ts_recv)
        elif message.table == "fill":
            # The positions moved with the FILL events (``OrderRouter.on_event``).
            self.venues.saw("fill", rows, message.ts_recv / 1e9)
        elif message.table == "risk_admin" and (
            self.admin_upto is None or message.seq <= self.admin_upto
        ):
            for row in rows:
                self._replay_admin(row)

    def _saw_order(self, names: list[str], columns: list[list[object]], ts_recv: int) -> None:
        """Each venue's answers, for the console: after the events are applied, since a
        FIX execution report goes out as its event is applied (off its critical path)."""
        by_name = dict(zip(names, columns, strict=True))
        seen = zip(by_name["venue"], by_name["in_seq"], strict=True)
        self.venues.saw("order", ({"venue": v, "in_seq": s} for v, s in seen), ts_recv / 1e9)

    def _replay_admin(self, row: dict[str, object]) -> None:
        risk = self.router.risk
        action = str(row["action"])
        account = str(row["account"] or "") or None
        strategy = str(row["strategy"] or "") or None
        request = json.loads(str(row["detail"] or "{}")).get("request", {})
        if action == "limits":
            risk.set_limits(account, request.get("changes", {}))
        elif action == "state":
            risk.set_trading_state(TradingState(request["state"]), account)
        elif action == "kill":
            risk.kill(account=account, strategy=strategy)
        elif action == "resume":
            risk.resume(account=account, strategy=strategy)
