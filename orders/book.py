"""A venue's matching engine: one price-time priority limit order book per sym.

Deterministic: the state and every output are a function of the sequence of calls alone
(no clock, no randomness; ids come from per-engine counters; every iteration is over
insertion-ordered dicts or sorted price lists). Each call returns what happened, in the order
it happened, as ``Event`` rows (the order's state after the event) and ``Fill`` rows (one per
side of an execution). Every status change goes through ``orders.states.apply``, so the
venue cannot make a transition the state table does not allow.

An execution emits, in this order: the taker's FILL event, the maker's FILL event, the
taker's ``Fill`` row, the maker's ``Fill`` row (``exec_id`` ``<prefix>E<n>.b`` for the buy
side, ``.s`` for the sell side). It trades at the resting order's price.

Reason codes (``Event.reason``):

- new rejected: ``bad_quantity``, ``bad_price`` (a limit without a finite positive price, or
  a market order with one), ``off_tick``, ``duplicate_clordid`` (an order of the
  account had it today);
- canceled: ``user``, ``ioc_remainder``, ``fok_unfillable``, ``no_liquidity`` (a market
  order's remainder), ``self_trade``, ``mass_cancel`` (or the reason given), and ``eod`` for
  an expired DAY order;
- cancel/replace rejected: ``unknown_order``, ``too_late`` (the clordid was an order that is
  done, or it was replaced away), ``qty_not_above_filled``, ``bad_price``,
  ``off_tick``, ``duplicate_clordid``.

A cancel's events (accepted or refused) carry the cancel's own clordid in ``clordid`` and
the order's in ``orig_clordid``, as FIX execution reports do. A refusal for an order the
venue does not know has ``order_id`` "", status rejected, qty 0 and side buy (a cancel
request names no side).

Paper trading (``on_quote``, and with ``paper=True`` an incoming order's remainder taking
from the last quote) is ``orders.book_paper``, a base class of ``MatchingEngine``.
"""

from __future__ import annotations

from collections.abc import Mapping

from orders.book_events import fill_event, fill_row, order_event, unknown_order_event
from orders.book_paper import Out, PaperTrading
from orders.book_side import Book, Entry, Level, Quote, price_ok, to_ticks
from orders.mass_cancel import close_canceled
from orders.model import (
    CancelRequest,
    Event,
    EventType,
    Liquidity,
    MassCancel,
    NewOrder,
    Order,
    OrdType,
    ReplaceRequest,
    Side,
    StpMode,
    TimeInForce,
)
from orders.states import apply


class MatchingEngine(PaperTrading):
    def __init__(
        self,
        *,
        id_prefix: str,
        tick_sizes: Mapping[str, float] | None = None,
        default_tick: float = 0.01,
        stp: StpMode = StpMode.CANCEL_INCOMING,
        paper: bool = False,
    ) -> None:
        self.id_prefix = id_prefix
        self.tick_sizes = dict(tick_sizes or {})
        self.default_tick = default_tick
        self.stp = stp
        self.paper = paper
        self.order_seq = 0  # the last order id's number
        self.exec_seq = 0  # the last execution's number
        self._books: dict[str, Book] = {}
        # Live (resting) orders by order id: insertion order is order-id order.
        self._live: dict[str, Order] = {}
        self._entries: dict[str, Entry] = {}
        self._by_clordid: dict[tuple[str, str], Order] = {}
        # Clordids of orders that are done, or were replaced away, today.
        self._done: dict[tuple[str, str], Order] = {}

    # ---- requests ------------------------------------------------------------------------

    def new(self, req: NewOrder, stp: StpMode | None = None) -> Out:
        out: Out = []
        book = self._book(req.sym)
        ticks: int | None = None
        reason = ""
        if not isinstance(req.qty, int) or req.qty <= 0:
            reason = "bad_quantity"
        elif req.ord_type is OrdType.MARKET:
            if req.price is not None:
                reason = "bad_price"
        elif not price_ok(req.price):
            reason = "bad_price"
        else:
            assert req.price is not None
            ticks = to_ticks(req.price, book.tick)
            if ticks is None:
                reason = "off_tick"
        key = (req.account, req.clordid)
        if not reason and (key in self._by_clordid or key in self._done):
            # Done orders too: two gateways may sequence the same ClOrdID, and the second
            # must not become a second order even when the first already filled.
            reason = "duplicate_clordid"
        order = req.to_order()
        if reason:
            apply(order, EventType.REJECTED)
            out.append(order_event(order, EventType.REJECTED, reason=reason))
            return out
        self.order_seq += 1
        order.order_id = f"{self.id_prefix}{self.order_seq}"
        apply(order, EventType.ACCEPTED)
        out.append(order_event(order, EventType.ACCEPTED))
        self._take(book, order, ticks, self.stp if stp is None else stp, out)
        return out

    def cancel(self, req: CancelRequest) -> Out:
        order = self._by_clordid.get((req.account, req.orig_clordid))
        if order is None or order.sym != req.sym:
            return [self._refuse(req, EventType.CANCEL_REJECTED)]
        self._unrest(order)
        apply(order, EventType.CANCELED)
        self._retire(order)
        return [
            order_event(
                order,
                EventType.CANCELED,
                reason="user",
                clordid=req.clordid,
                orig_clordid=req.orig_clordid,
            )
        ]

    def replace(self, req: ReplaceRequest) -> Out:
        key = (req.account, req.orig_clordid)
        order = self._by_clordid.get(key)
        if order is None or order.sym != req.sym:
            return [self._refuse(req, EventType.REPLACE_REJECTED)]
        book = self._books[order.sym]
        entry = self._entries[order.order_id]
        qty = order.qty if req.qty is None else req.qty
        ticks: int | None = entry.ticks
        reason = ""
        if not isinstance(qty, int) or qty <= order.cum_qty:
            reason = "qty_not_above_filled"
        elif req.price is not None:
            if not price_ok(req.price):
                reason = "bad_price"
            else:
                ticks = to_ticks(req.price, book.tick)
                if ticks is None:
                    reason = "off_tick"
        if (
            not reason
            and req.clordid != req.orig_clordid
            and (req.account, req.clordid) in self._by_clordid
        ):
            reason = "duplicate_clordid"
        if reason:
            apply(order, EventType.REPLACE_REJECTED)
            return [
                order_event(
                    order,
                    EventType.REPLACE_REJECTED,
                    reason=reason,
                    clordid=req.clordid,
                    orig_clordid=req.orig_clordid,
                )
            ]
        assert ticks is not None
        old_leaves = order.qty - order.cum_qty
        keeps_place = ticks == entry.ticks and qty <= order.qty
        apply(order, EventType.REPLACED)
        del self._by_clordid[key]
        self._done[key] = order
        order.orig_clordid = order.clordid
        order.clordid = req.clordid
        order.qty = qty
        if req.price is not None:
            order.price = req.price
        self._by_clordid[(order.account, order.clordid)] = order
        out: Out = [order_event(order, EventType.REPLACED)]
        side = book.sides[order.side]
        if keeps_place:
            level = side.level_at(ticks)
            assert level is not None
            level.qty -= old_leaves - (qty - order.cum_qty)
            return out
        side.remove(entry, old_leaves)
        del self._entries[order.order_id]
        self._take(book, order, ticks, self.stp, out)
        return out

    def mass_cancel(self, req: MassCancel, reason: str = "mass_cancel") -> Out:
        out: Out = []
        account, strategy, sym, text = req.account, req.strategy, req.sym, req.clordid
        canceled = EventType.CANCELED
        for order in list(self._live.values()):
            if (
                (account and order.account != account)
                or (strategy and order.strategy != strategy)
                or (sym and order.sym != sym)
            ):
                continue
            self._unrest(order)
            close_canceled(order)  # a kill's thousands: without apply's general cost
            self._retire(order)
            out.append(order_event(order, canceled, reason=reason, text=text))
        return out

    def end_of_day(self) -> Out:
        """Expire every DAY order; GTC orders stay. Forgets the day's done clordids and
        the quotes."""
        out: Out = []
        for order in list(self._live.values()):
            if order.tif is TimeInForce.DAY:
                self._unrest(order)
                apply(order, EventType.EXPIRED)
                self._retire(order)
                out.append(order_event(order, EventType.EXPIRED, reason="eod"))
        self._done.clear()
        for book in self._books.values():
            book.quote = Quote()
        return out

    # ---- queries -------------------------------------------------------------------------

    def open_orders(self) -> list[Order]:
        """Live orders in order-id order."""
        return list(self._live.values())

    def order(self, account: str, clordid: str) -> Order | None:
        """The live order with this clordid, else today's done (or replaced-away) one."""
        key = (account, clordid)
        return self._by_clordid.get(key) or self._done.get(key)

    def depth(self, sym: str, levels: int = 10) -> dict[str, list[tuple[float, int, int]]]:
        """Per side, the best ``levels`` levels as (price, total leaves, order count)."""
        book = self._books.get(sym)
        result: dict[str, list[tuple[float, int, int]]] = {"bids": [], "asks": []}
        if book is None:
            return result
        for name, side in (("bids", Side.BUY), ("asks", Side.SELL)):
            rows = result[name]
            for level in book.sides[side].levels_in_priority():
                if len(rows) == levels:
                    break
                rows.append((level.price, level.qty, level.count))
        return result

    def snapshot(self) -> tuple[tuple[str, str, float, str, int], ...]:
        """Every resting order as (sym, side, price, order_id, leaves), syms sorted, bids
        then asks, each side in priority order: equal snapshots mean equal books."""
        rows: list[tuple[str, str, float, str, int]] = []
        for sym in sorted(self._books):
            book = self._books[sym]
            for side in (Side.BUY, Side.SELL):
                for level in book.sides[side].levels_in_priority():
                    for entry in level.queue:
                        if entry.live:
                            o = entry.order
                            rows.append((sym, side.value, level.price, o.order_id, o.leaves_qty))
        return tuple(rows)

    # ---- matching ------------------------------------------------------------------------

    def _take(self, book: Book, order: Order, ticks: int | None, stp: StpMode, out: Out) -> None:
        """Match an incoming (or re-priced) order as the taker, then rest or cancel what is
        left according to its type and time in force."""
        if order.tif is TimeInForce.FOK and self._fillable(book, order, ticks, stp) < (
            order.qty - order.cum_qty
        ):
            self._cancel_taker(order, "fok_unfillable", out)
            return
        if self._match(book, order, ticks, stp, out):
            return  # self-trade prevention canceled it
        if self.paper and order.cum_qty < order.qty:
            self._take_quote(book, order, ticks, out)
        if order.cum_qty == order.qty:
            self._retire(order)
        elif order.ord_type is OrdType.MARKET:
            self._cancel_taker(order, "no_liquidity", out)
        elif order.tif is TimeInForce.IOC:
            self._cancel_taker(order, "ioc_remainder", out)
        elif order.tif is TimeInForce.FOK:
            self._cancel_taker(order, "fok_unfillable", out)  # unreachable: checked above
        else:
            assert ticks is not None
            self._rest(book, order, ticks)

    def _match(self, book: Book, taker: Order, ticks: int | None, stp: StpMode, out: Out) -> bool:
        """Trade against the other side in priority order; True if self-trade prevention
        canceled the taker."""
        opposite = book.sides[taker.side.opposite]
        while taker.cum_qty < taker.qty:
            level = opposite.best()
            if level is None or not opposite.crosses(level.ticks, ticks):
                break
            queue = level.queue
            while queue and taker.cum_qty < taker.qty:
                entry = queue[0]
                if not entry.live:
                    queue.popleft()
                    continue
                maker = entry.order
                if maker.account == taker.account:
                    if stp is StpMode.CANCEL_INCOMING:
                        self._cancel_taker(taker, "self_trade", out)
                        return True
                    self._pop_front(level, entry)
                    apply(maker, EventType.CANCELED)
                    self._retire(maker)
                    out.append(order_event(maker, EventType.CANCELED, reason="self_trade"))
                    continue
                qty = min(taker.qty - taker.cum_qty, maker.qty - maker.cum_qty)
                self._execute(taker, maker, qty, out)
                level.qty -= qty
                if maker.cum_qty == maker.qty:
                    self._pop_front(level, entry, leaves=0)
                    self._retire(maker)
            if level.count == 0:
                opposite.drop(level)
        return False

    def _fillable(self, book: Book, taker: Order, ticks: int | None, stp: StpMode) -> int:
        """How much of a fill-or-kill order could trade at once, stopping as soon as all of
        it could (the same walk as ``_match`` without trading)."""
        need = taker.qty - taker.cum_qty
        got = 0
        opposite = book.sides[taker.side.opposite]
        for level in opposite.levels_in_priority():
            if not opposite.crosses(level.ticks, ticks):
                break
            for entry in level.queue:
                if not entry.live:
                    continue
                if entry.order.account == taker.account:
                    if stp is StpMode.CANCEL_INCOMING:
                        return got
                    continue
                got += entry.order.qty - entry.order.cum_qty
                if got >= need:
                    return got
        if self.paper:
            got += self._quote_size_for(book, taker, ticks)
        return got

    def _execute(self, taker: Order, maker: Order, qty: int, out: Out) -> None:
        price = maker.price
        assert price is not None
        self.exec_seq += 1
        base = f"{self.id_prefix}E{self.exec_seq}"
        taker_exec = base + (".b" if taker.side is Side.BUY else ".s")
        maker_exec = base + (".b" if maker.side is Side.BUY else ".s")
        apply(taker, EventType.FILL, fill_qty=qty, fill_px=price)
        apply(maker, EventType.FILL, fill_qty=qty, fill_px=price)
        out.append(fill_event(taker, qty, price, taker_exec))
        out.append(fill_event(maker, qty, price, maker_exec))
        out.append(fill_row(taker, qty, price, taker_exec, Liquidity.TAKER))
        out.append(fill_row(maker, qty, price, maker_exec, Liquidity.MAKER))

    # ---- bookkeeping ---------------------------------------------------------------------

    def _book(self, sym: str) -> Book:
        book = self._books.get(sym)
        if book is None:
            book = Book(sym, self.tick_sizes.get(sym, self.default_tick))
            self._books[sym] = book
        return book

    def _rest(self, book: Book, order: Order, ticks: int) -> None:
        entry = Entry(order, ticks)
        book.sides[order.side].add(entry)
        self._entries[order.order_id] = entry
        self._live[order.order_id] = order
        self._by_clordid[(order.account, order.clordid)] = order

    def _unrest(self, order: Order) -> None:
        """Take a live order out of its book (before its status leaves the working ones)."""
        entry = self._entries.pop(order.order_id)
        self._books[order.sym].sides[order.side].remove(entry, order.qty - order.cum_qty)

    def _pop_front(self, level: Level, entry: Entry, leaves: int | None = None) -> None:
        """Take the live entry at the front of ``level`` out while matching."""
        level.queue.popleft()
        entry.live = False
        level.count -= 1
        order = entry.order
        level.qty -= order.qty - order.cum_qty if leaves is None else leaves
        self._entries.pop(order.order_id, None)

    def _retire(self, order: Order) -> None:
        """Forget a done order as live; remember its clordid for the day."""
        self._live.pop(order.order_id, None)
        key = (order.account, order.clordid)
        if self._by_clordid.get(key) is order:
            del self._by_clordid[key]
        self._done[key] = order

    def _cancel_taker(self, order: Order, reason: str, out: Out) -> None:
        apply(order, EventType.CANCELED)
        self._retire(order)
        out.append(order_event(order, EventType.CANCELED, reason=reason))

    def _refuse(self, req: CancelRequest | ReplaceRequest, event: EventType) -> Event:
        """A cancel or replace of an order that is not live: ``too_late`` if the clordid was
        one today, else ``unknown_order``."""
        order = self._done.get((req.account, req.orig_clordid))
        if order is not None and order.sym == req.sym:
            apply(order, event)
            return order_event(
                order,
                event,
                reason="too_late",
                clordid=req.clordid,
                orig_clordid=req.orig_clordid,
            )
        return unknown_order_event(req, event)
