"""The demo feed publishes quotes and trades, one trade per four quotes, at any rate."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.harness import Proc, start_tp
from support.tp_delivery import drain

from tickerplant.demo_feed import run_demo_feed, split_rows
from tickerplant.subscriber import Subscriber


@pytest.mark.parametrize("rows", [1, 2, 3, 10, 37])
def test_one_row_in_five_is_a_trade_at_any_tick_size(rows: int) -> None:
    owed, quotes, trades = 0.0, 0, 0
    for _ in range(100):
        q, t, owed = split_rows(rows, owed)
        assert q + t == rows and q >= 0 and t >= 0
        quotes, trades = quotes + q, trades + t
    assert trades == rows * 100 // 5
    assert quotes == rows * 100 - trades


def test_slow_demo_feed_publishes_quotes_too(tmp_path: Path, procs: list[Proc]) -> None:
    """Below 100 rows/s every tick was one row, always a trade: no quote was ever sent."""
    tp = start_tp(tmp_path)
    procs.append(tp)
    address = str(tp.info["address"])
    sent = run_demo_feed(address, rate=20, syms=3, duration_s=1.0)
    assert sent >= 10
    sub = Subscriber(address, start="journal")
    try:
        got = drain(sub, sent)
    finally:
        sub.close()
    rows = {"quote": 0, "trade": 0}
    for update in got:
        rows[update.table] += update.data.num_rows
    assert rows["quote"] + rows["trade"] == sent
    assert rows["quote"] >= 3 * rows["trade"] > 0, rows
