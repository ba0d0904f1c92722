"""A synthetic market: random-walk mids per symbol, quotes around them, trades at the touch.

Realistic enough to exercise the stack (many syms with skewed activity, quotes outnumbering
trades, prices on a tick grid) and deterministic for a given seed.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import pyarrow as pa

log = logging.getLogger(__name__)

# One trade for every four quotes.
TRADE_SHARE = 0.2

SYMBOL_ROOTS = [
    "AAPL",
    "MSFT",
    "AMZN",
    "GOOG",
    "META",
    "NVDA",
    "TSLA",
    "JPM",
    "BAC",
    "XOM",
    "IBM",
    "ORCL",
    "INTC",
    "AMD",
    "NFLX",
    "DIS",
    "KO",
    "PEP",
    "WMT",
    "CVX",
]


def demo_syms(count: int) -> list[str]:
    syms = list(SYMBOL_ROOTS[:count])
    i = 0
    while len(syms) < count:
        syms.append(f"{SYMBOL_ROOTS[i % len(SYMBOL_ROOTS)]}{i // len(SYMBOL_ROOTS) + 1}")
        i += 1
    return syms


class DemoMarket:
    def __init__(self, syms: int = 100, seed: int = 7) -> None:
        self.rng = np.random.default_rng(seed)
        self.syms = np.array(demo_syms(syms))
        self.mid = self.rng.uniform(20, 500, len(self.syms)).round(2)
        # Zipf-like activity: a few names trade far more often than the rest.
        weights = 1.0 / np.arange(1, len(self.syms) + 1)
        self.weights = weights / weights.sum()

    def _pick(self, rows: int) -> np.ndarray:
        return self.rng.choice(len(self.syms), size=rows, p=self.weights)

    def _times(self, rows: int) -> pa.Array:
        now = time.time_ns()
        return pa.array(np.full(rows, now, dtype="datetime64[ns]"), pa.timestamp("ns"))

    def quotes(self, rows: int) -> pa.Table:
        idx = self._pick(rows)
        self.mid[idx] = np.maximum(0.01, self.mid[idx] + self.rng.normal(0, 0.02, rows)).round(2)
        half = np.maximum(0.01, (self.mid[idx] * 0.0002).round(2))
        return pa.table(
            {
                "time": self._times(rows),
                "sym": pa.array(self.syms[idx]),
                "bid": (self.mid[idx] - half).round(2),
                "ask": (self.mid[idx] + half).round(2),
                "bsize": self.rng.integers(1, 50, rows) * 100,
                "asize": self.rng.integers(1, 50, rows) * 100,
            }
        )

    def trades(self, rows: int) -> pa.Table:
        idx = self._pick(rows)
        side = self.rng.choice([-1, 1], rows)
        half = np.maximum(0.01, (self.mid[idx] * 0.0002).round(2))
        return pa.table(
            {
                "time": self._times(rows),
                "sym": pa.array(self.syms[idx]),
                "price": (self.mid[idx] + side * half).round(2),
                "size": self.rng.integers(1, 20, rows) * 100,
            }
        )


def split_rows(rows: int, owed_trades: float) -> tuple[int, int, float]:
    """``(quotes, trades, owed)`` for one tick of ``rows``: trades are owed a fifth of every
    row and sent whole as they fall due, so one in five rows is a trade at any rate (a tick
    of one row is a quote four times out of five, not always a trade)."""
    owed_trades += rows * TRADE_SHARE
    trades = min(rows, int(owed_trades + 1e-9))
    return rows - trades, trades, owed_trades - trades


def _publish(publisher: Any, table: str, data: pa.Table) -> None:
    """Publish, waiting out a tickerplant that is down (the demo has nowhere else to go)."""
    from tickerplant.publisher import PublisherFull

    while True:
        try:
            publisher.publish(table, data)
            return
        except PublisherFull as exc:
            log.warning("%s; still waiting", exc)


def run_demo_feed(
    address: str, rate: int, syms: int, duration_s: float | None = None, seed: int = 7
) -> int:
    """Publish about ``rate`` rows/s (one trade per four quotes) until stopped."""
    from tickerplant.publisher import Publisher

    market = DemoMarket(syms, seed)
    interval = 0.01 if rate >= 100 else 1.0 / max(rate, 1)
    sent = 0
    owed = 0.0
    started = time.monotonic()
    with Publisher(address) as publisher:
        next_tick = started
        while duration_s is None or time.monotonic() - started < duration_s:
            rows = max(1, int(rate * interval))
            quotes, trades, owed = split_rows(rows, owed)
            if quotes:
                _publish(publisher, "quote", market.quotes(quotes))
            if trades:
                _publish(publisher, "trade", market.trades(trades))
            sent += rows
            next_tick += interval
            delay = next_tick - time.monotonic()
            if delay > 0:
                time.sleep(delay)
    return sent
