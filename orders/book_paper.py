"""The matching engine's paper trading: the market's quotes as a contra side.

``on_quote`` remembers a sym's quote and fills resting orders that cross it (at the
quote's price, up to its size, which they consume); with ``paper=True`` an incoming order's
remainder after the book also takes from the last quote. Each such execution has one side
only: the market is the other (``Fill.liquidity`` says which side the order was).

A base class of ``book.MatchingEngine``, which owns the books, the order indexes and the
execution counter this uses; kept apart so that matching reads on its own.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from orders.book_events import fill_event, fill_row
from orders.book_side import TICK_TOLERANCE, Book, BookSide, Quote, price_ok
from orders.model import Event, EventType, Fill, Liquidity, Order, Side
from orders.states import apply

if TYPE_CHECKING:
    from orders.book_side import Entry, Level

Out = list[Event | Fill]


def _size(size: float) -> int:
    return int(size) if math.isfinite(size) and size > 0 else 0


class PaperTrading:
    if TYPE_CHECKING:  # what it uses of the MatchingEngine
        id_prefix: str
        exec_seq: int

        def _book(self, sym: str) -> Book: ...
        def _pop_front(self, level: Level, entry: Entry, leaves: int | None = None) -> None: ...
        def _retire(self, order: Order) -> None: ...

    def on_quote(self, sym: str, bid: float, ask: float, bid_size: float, ask_size: float) -> Out:
        """Remember the quote; resting orders that cross it fill at its price (makers), in
        priority order, up to its size. NaN or 0 means no such side."""
        out: Out = []
        book = self._book(sym)
        quote = Quote(bid, ask, _size(bid_size), _size(ask_size))
        if not price_ok(bid):
            quote.bid_size = 0
        if not price_ok(ask):
            quote.ask_size = 0
        book.quote = quote
        if quote.ask_size:
            quote.ask_size -= self._fill_at_quote(book.sides[Side.BUY], ask, quote.ask_size, out)
        if quote.bid_size:
            quote.bid_size -= self._fill_at_quote(book.sides[Side.SELL], bid, quote.bid_size, out)
        return out

    def _quote_size_for(self, book: Book, taker: Order, ticks: int | None) -> int:
        """The size of the last quote's other side that ``taker`` could trade with."""
        quote = book.quote
        if taker.side is Side.BUY:
            price, size = quote.ask, quote.ask_size
        else:
            price, size = quote.bid, quote.bid_size
        if not size:
            return 0
        if ticks is not None and taker.side.sign * (ticks - price / book.tick) < -TICK_TOLERANCE:
            return 0
        return size

    def _take_quote(self, book: Book, taker: Order, ticks: int | None, out: Out) -> None:
        size = self._quote_size_for(book, taker, ticks)
        if not size:
            return
        qty = min(size, taker.qty - taker.cum_qty)
        if taker.side is Side.BUY:
            price = book.quote.ask
            book.quote.ask_size -= qty
        else:
            price = book.quote.bid
            book.quote.bid_size -= qty
        self._execute_with_market(taker, qty, price, Liquidity.TAKER, out)

    def _fill_at_quote(self, side: BookSide, price: float, size: int, out: Out) -> int:
        """Fill resting orders of ``side`` that cross a quote at ``price``; returns the
        size consumed."""
        left = size
        quote_ticks = price / side.tick
        while left:
            level = side.best()
            if level is None or side.sign * (level.ticks - quote_ticks) < -TICK_TOLERANCE:
                break
            queue = level.queue
            while queue and left:
                entry = queue[0]
                if not entry.live:
                    queue.popleft()
                    continue
                maker = entry.order
                qty = min(left, maker.qty - maker.cum_qty)
                left -= qty
                self._execute_with_market(maker, qty, price, Liquidity.MAKER, out)
                level.qty -= qty
                if maker.cum_qty == maker.qty:
                    self._pop_front(level, entry, leaves=0)
                    self._retire(maker)
            if level.count == 0:
                side.drop(level)
        return size - left

    def _execute_with_market(
        self, order: Order, qty: int, price: float, liquidity: Liquidity, out: Out
    ) -> None:
        """A paper execution against the quote: one side, the market is the contra."""
        self.exec_seq += 1
        exec_id = f"{self.id_prefix}E{self.exec_seq}" + (".b" if order.side is Side.BUY else ".s")
        apply(order, EventType.FILL, fill_qty=qty, fill_px=price)
        out.append(fill_event(order, qty, price, exec_id))
        out.append(fill_row(order, qty, price, exec_id, liquidity))
