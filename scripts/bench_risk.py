"""Latency of one pre-trade check (``RiskEngine.check_new``) with every check switched on.

State: 10 accounts, 50 syms with reference prices, a position in every sym of every account,
1000 working limit orders spread over the syms and accounts, per-account limits for half the
accounts and restricted syms for all. Each timed order passes every check (the slowest
path: nothing stops early) and is then canceled by an untimed event, so the state stays the
same size. Prints p50, p99 and max in microseconds; the target is p99 <= 25 us.

    .venv/bin/python scripts/bench_risk.py              # 100,000 checks
    .venv/bin/python scripts/bench_risk.py --n 20000
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orders.model import (
    Event,
    EventType,
    Fill,
    Liquidity,
    NewOrder,
    OrdStatus,
    Side,
)
from orders.risk import RiskEngine, RiskLimits

ACCOUNTS = [f"ACC{i}" for i in range(10)]
SYMS = [f"SYM{i:02d}" for i in range(50)]
WORKING = 1000


def build() -> RiskEngine:
    defaults = RiskLimits(restricted_syms=("BAD1", "BAD2", "BAD3"))
    accounts = {
        name: RiskLimits(max_order_qty=50_000, restricted_syms=("BAD1",)) if i % 2 else defaults
        for i, name in enumerate(ACCOUNTS)
    }
    engine = RiskEngine(defaults, accounts, syms=[*SYMS, "BAD1", "BAD2", "BAD3"])
    for i, sym in enumerate(SYMS):
        engine.on_price(sym, 50.0 + i)
    now = 0
    for a, account in enumerate(ACCOUNTS):
        for i, sym in enumerate(SYMS):
            side = Side.BUY if (a + i) % 2 else Side.SELL
            fill = Fill(
                f"X{a}.{i}", f"P{a}.{i}", account, sym, "", side, 100, 50.0 + i, Liquidity.TAKER
            )
            engine.on_fill(fill, now)
    for n in range(WORKING):
        account, sym = ACCOUNTS[n % len(ACCOUNTS)], SYMS[n % len(SYMS)]
        now += 1_000_000
        price = 50.0 + SYMS.index(sym) - 1.0
        order = NewOrder(
            account, sym, f"W{n}", Side.BUY if n % 3 else Side.SELL, 10 + n, price=price
        )
        assert engine.check_new(order, now) is None
        engine.on_event(_event(order, EventType.ACCEPTED, OrdStatus.NEW, f"OW{n}"))
    return engine


def _event(order: NewOrder, kind: EventType, status: OrdStatus, order_id: str) -> Event:
    leaves = 0 if status is OrdStatus.CANCELED else order.qty
    return Event(
        kind,
        order_id,
        order.account,
        order.sym,
        order.clordid,
        order.side,
        status,
        order.qty,
        order.price,
        0,
        leaves,
        0.0,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    args = parser.parse_args()
    engine = build()
    now = 10 * 1_000_000_000
    timings: list[int] = []
    clock = time.perf_counter_ns
    for n in range(args.n):
        account, sym = ACCOUNTS[n % len(ACCOUNTS)], SYMS[(n * 7) % len(SYMS)]
        now += 200_000  # 5000 orders/s over 10 accounts: 500/s each, under the rate limit
        price = 50.0 + SYMS.index(sym) + (n % 5) * 0.01
        order = NewOrder(
            account,
            sym,
            f"T{n}",
            Side.BUY if n % 2 else Side.SELL,
            1 + (n // 10) % 1000,
            price=round(price, 2),
        )
        start = clock()
        reject = engine.check_new(order, now)
        timings.append(clock() - start)
        assert reject is None, reject
        engine.on_event(_event(order, EventType.CANCELED, OrdStatus.CANCELED, f"OT{n}"))
    accounts = engine.status()["accounts"]
    assert isinstance(accounts, dict)
    working = sum(a["open_orders"] for a in accounts.values())
    assert working == WORKING, working  # the cancels kept the state the same size
    timings.sort()
    warm = timings  # all runs count: there is no cache to warm
    p50 = statistics.median(warm) / 1000
    p99 = warm[int(len(warm) * 0.99)] / 1000
    status = engine.status()["counters"]
    print(
        f"check_new, every check on, {WORKING} working orders over {len(SYMS)} syms, "
        f"{len(ACCOUNTS)} accounts: n={args.n}"
    )
    print(f"  p50 {p50:.1f} us   p99 {p99:.1f} us   max {warm[-1] / 1000:.1f} us")
    print(f"  counters: {status}")


if __name__ == "__main__":
    from stop_on_term import stop_on_term

    stop_on_term()
    main()
