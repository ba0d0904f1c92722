"""Matching engine latency against a book of 10k resting orders (``orders.book``).

The book: one sym, 5,000 bids and 5,000 asks over 1,000 price levels a side (5 orders of
100 a level, each from its own account). Timed with ``time.perf_counter_ns`` around single
calls, the book put back as it was between calls (untimed), so every call sees 10k orders:

- match 1: an IOC buy for 100 at the best ask: one execution (events and fill rows built);
- sweep 3 levels: an IOC buy for 1,500 at the third ask level: 15 executions;
- add: a non-marketable limit order that rests at a random level (behind the first three);
- cancel: a cancel of a random resting order;
- replace: a price change of a random resting order to a random level behind the first three
  (loses its place, does not cross).

    .venv/bin/python scripts/bench_matching.py            # 20,000 calls each
    .venv/bin/python scripts/bench_matching.py --calls 2000
    .venv/bin/python scripts/bench_matching.py --gc-freeze  # book moved out of GC scans

Python's cyclic GC runs inside some timed calls (every ~700 new container objects, and a
full collection now and then that walks every live object, the book included); its cost
is part of the figures unless ``--gc-freeze`` moves the built book to the permanent
generation first, as a venue could after replaying its journal.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orders.book import MatchingEngine
from orders.model import CancelRequest, NewOrder, ReplaceRequest, Side, TimeInForce

SYM = "BENCH"
TICK = 0.01
LEVELS = 1_000  # a side
PER_LEVEL = 5
LOT = 100
MID = 10_000  # ticks: bids at MID-1 downwards, asks at MID+1 upwards


class Bench:
    def __init__(self) -> None:
        self.engine = MatchingEngine(id_prefix="B", tick_sizes={SYM: TICK})
        self.seq = 0
        self.rng = random.Random(7)
        for level in range(LEVELS):
            for _ in range(PER_LEVEL):
                self.rest(Side.BUY, MID - 1 - level)
                self.rest(Side.SELL, MID + 1 + level)

    def clordid(self) -> str:
        self.seq += 1
        return f"c{self.seq}"

    def rest(self, side: Side, ticks: int, qty: int = LOT) -> str:
        clordid = self.clordid()
        self.engine.new(NewOrder(f"acct{self.seq}", SYM, clordid, side, qty, price=ticks * TICK))
        return clordid

    def take(self, ticks: int, qty: int) -> NewOrder:
        return NewOrder(
            "taker", SYM, self.clordid(), Side.BUY, qty, price=ticks * TICK, tif=TimeInForce.IOC
        )

    def refill_asks(self, levels: int) -> None:
        """Put back what a taker consumed at the front of the ask side (untimed): the new
        orders join the back of their level, the book's size and shape are unchanged."""
        depth = self.engine.depth(SYM, levels)["asks"]
        for i in range(levels):
            ticks = MID + 1 + i
            have = next((count for price, _, count in depth if round(price / TICK) == ticks), 0)
            for _ in range(PER_LEVEL - have):
                self.rest(Side.SELL, ticks)

    def random_resting(self) -> tuple[str, str, Side]:
        orders = self.engine.open_orders()
        order = orders[self.rng.randrange(len(orders))]
        return order.account, order.clordid, order.side


def timed(fn: Callable[[Any], object], arg: Any) -> int:
    start = time.perf_counter_ns()
    fn(arg)
    return time.perf_counter_ns() - start


def run(calls: int, gc_freeze: bool) -> dict[str, list[int]]:
    bench = Bench()
    engine = bench.engine
    if gc_freeze:
        gc.collect()
        gc.freeze()
    assert len(engine.open_orders()) == 2 * LEVELS * PER_LEVEL
    times: dict[str, list[int]] = {
        k: [] for k in ("match 1", "sweep 3", "add", "cancel", "replace")
    }
    for _ in range(calls):
        req = bench.take(MID + 1, LOT)
        times["match 1"].append(timed(engine.new, req))
        bench.refill_asks(1)

        req = bench.take(MID + 3, 3 * PER_LEVEL * LOT)
        times["sweep 3"].append(timed(engine.new, req))
        bench.refill_asks(3)

        side = bench.rng.choice((Side.BUY, Side.SELL))
        offset = 4 + bench.rng.randrange(LEVELS - 3)
        ticks = MID - offset if side is Side.BUY else MID + offset
        new = NewOrder(f"acct{bench.seq}", SYM, bench.clordid(), side, LOT, price=ticks * TICK)
        times["add"].append(timed(engine.new, new))

        account, clordid, _ = bench.random_resting()
        cancel = CancelRequest(account, SYM, bench.clordid(), clordid)
        times["cancel"].append(timed(engine.cancel, cancel))

        account, clordid, side = bench.random_resting()
        offset = 4 + bench.rng.randrange(LEVELS - 3)
        ticks = MID - offset if side is Side.BUY else MID + offset
        replace = ReplaceRequest(account, SYM, bench.clordid(), clordid, price=ticks * TICK)
        times["replace"].append(timed(engine.replace, replace))
        # Cancels at the front levels are refilled: the book grows by a few orders at most.
        assert abs(len(engine.open_orders()) - 2 * LEVELS * PER_LEVEL) < 100
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--gc-freeze", action="store_true")
    args = parser.parse_args()
    times = run(args.calls, args.gc_freeze)
    print(
        f"book: {2 * LEVELS * PER_LEVEL} resting orders, {LEVELS} levels a side; "
        f"{args.calls} calls each; gc.freeze: {args.gc_freeze}"
    )
    print(f"{'call':<10} {'p50 µs':>8} {'p99 µs':>8} {'max µs':>8}")
    for name, ns in times.items():
        ns.sort()
        p50 = statistics.median(ns) / 1e3
        p99 = ns[int(len(ns) * 0.99) - 1] / 1e3
        print(f"{name:<10} {p50:>8.1f} {p99:>8.1f} {ns[-1] / 1e3:>8.1f}")


if __name__ == "__main__":
    from stop_on_term import stop_on_term

    stop_on_term()
    main()
