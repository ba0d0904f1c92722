"""One side of one sym's limit order book: price levels in priority order, FIFO within.

Prices are integer ticks. The levels sit in a dict keyed by a *sort key* (ticks for bids,
minus ticks for asks) and the keys in one ascending list, so the best level is always the
last key: reaching it is O(1), adding or dropping a level is a bisect plus a list insert or
delete (a memmove of pointers, fast for any realistic number of levels).

Leaving the book is lazy: an entry is marked dead and the level's totals drop at once, but
the entry stays in its queue until matching pops it, the level empties (the whole queue is
dropped) or dead entries outnumber live ones (the queue is rebuilt). A cancel is therefore
O(1) plus O(log levels) when it empties a level, never a scan of a queue.
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

from orders.model import Order, Side

# Rebuild a queue once it holds more dead entries than this plus its live ones.
COMPACT_SLACK = 16


class Entry:
    """An order's place in a queue; a replace that loses priority gets a new entry."""

    __slots__ = ("live", "order", "ticks")

    def __init__(self, order: Order, ticks: int) -> None:
        self.order = order
        self.ticks = ticks
        self.live = True


class Level:
    """One price: its FIFO queue (live and dead entries) and its live totals."""

    __slots__ = ("count", "price", "qty", "queue", "ticks")

    def __init__(self, ticks: int, price: float) -> None:
        self.ticks = ticks
        self.price = price
        self.queue: deque[Entry] = deque()
        self.qty = 0  # leaves of the live entries
        self.count = 0  # live entries


class BookSide:
    __slots__ = ("keys", "levels", "side", "sign", "tick")

    def __init__(self, side: Side, tick: float) -> None:
        self.side = side
        self.sign = side.sign  # sort key = sign * ticks: the best level has the largest key
        self.tick = tick
        self.levels: dict[int, Level] = {}
        self.keys: list[int] = []

    def __bool__(self) -> bool:
        return bool(self.keys)

    def best(self) -> Level | None:
        return self.levels[self.keys[-1]] if self.keys else None

    def level_at(self, ticks: int) -> Level | None:
        return self.levels.get(self.sign * ticks)

    def add(self, entry: Entry) -> None:
        """Append ``entry`` at the back of its price's queue."""
        key = self.sign * entry.ticks
        level = self.levels.get(key)
        if level is None:
            level = Level(entry.ticks, round(entry.ticks * self.tick, 12))
            self.levels[key] = level
            insort(self.keys, key)
        level.queue.append(entry)
        level.qty += entry.order.qty - entry.order.cum_qty
        level.count += 1

    def remove(self, entry: Entry, leaves: int) -> None:
        """Take a live entry out (lazily); ``leaves`` is what it still counted for."""
        entry.live = False
        level = self.levels[self.sign * entry.ticks]
        level.qty -= leaves
        level.count -= 1
        if level.count == 0:
            self.drop(level)
        elif len(level.queue) > 2 * level.count + COMPACT_SLACK:
            level.queue = deque(e for e in level.queue if e.live)

    def drop(self, level: Level) -> None:
        """Remove an empty level (its queue holds only dead entries, if any)."""
        key = self.sign * level.ticks
        del self.levels[key]
        del self.keys[bisect_left(self.keys, key)]

    def levels_in_priority(self) -> Iterator[Level]:
        for key in reversed(self.keys):
            yield self.levels[key]

    def entries_in_priority(self) -> Iterator[Entry]:
        for level in self.levels_in_priority():
            for entry in level.queue:
                if entry.live:
                    yield entry

    def crosses(self, level_ticks: int, limit_ticks: int | None) -> bool:
        """Whether an incoming order of the *other* side at ``limit_ticks`` (None: market)
        can trade at a level of this side at ``level_ticks``."""
        if limit_ticks is None:
            return True
        # This side's best is its largest sign*ticks; the incoming side's sign is -sign.
        return self.sign * (level_ticks - limit_ticks) >= 0


# Tolerance, relative to the price in ticks, for a price to count as on its tick.
TICK_TOLERANCE = 1e-9


@dataclass
class Quote:
    """A sym's last quote; the sizes drop as paper fills consume them."""

    bid: float = math.nan
    ask: float = math.nan
    bid_size: int = 0
    ask_size: int = 0


class Book:
    """One sym's two sides, its tick and its last quote."""

    __slots__ = ("quote", "sides", "sym", "tick")

    def __init__(self, sym: str, tick: float) -> None:
        self.sym = sym
        self.tick = tick
        self.sides = {Side.BUY: BookSide(Side.BUY, tick), Side.SELL: BookSide(Side.SELL, tick)}
        self.quote = Quote()


def to_ticks(price: float, tick: float) -> int | None:
    """``price`` in whole ticks, or None when it is not on the tick grid."""
    exact = price / tick
    ticks = round(exact)
    if abs(exact - ticks) > TICK_TOLERANCE * max(1.0, abs(exact)):
        return None
    return ticks


def price_ok(price: float | None) -> bool:
    """A limit price, or a quote's: finite and positive."""
    return price is not None and math.isfinite(price) and price > 0
