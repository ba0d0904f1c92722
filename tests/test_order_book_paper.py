"""The matching engine's paper trading: resting orders filled by the quote stream, and
incoming orders taking from the quote after the book (``orders.book``)."""

from __future__ import annotations

import math

from support.order_book import SYM, buy, engine, events, fills, sell, summary, trades

from orders.model import Liquidity, OrdStatus, OrdType, Side, TimeInForce


def test_quote_fills_crossing_resting_orders_in_priority_up_to_its_size() -> None:
    eng = engine()
    eng.new(buy("c1", 3, 10.0))
    eng.new(buy("c2", 3, 10.02))
    eng.new(buy("c3", 3, 9.99))
    eng.new(sell("s1", 3, 10.5))
    out = eng.on_quote(SYM, 9.9, 10.0, 100, 4)
    assert trades(out) == [("V2", 3, 10.0), ("V1", 1, 10.0)]
    assert [(f.liquidity, f.side, f.exec_id) for f in fills(out)] == [
        (Liquidity.MAKER, Side.BUY, "VE1.b"),
        (Liquidity.MAKER, Side.BUY, "VE2.b"),
    ]
    assert eng.on_quote(SYM, math.nan, 9.0, 0, 1) != []  # the next quote's size is new
    assert eng.on_quote(SYM, 10.6, math.nan, 5, math.nan)[0].order_id == "V4"


def test_paper_incoming_order_takes_from_the_quote_after_the_book() -> None:
    eng = engine(paper=True)
    eng.new(sell("s1", 2, 10.01))
    eng.on_quote(SYM, 9.99, 10.03, 5, 5)
    out = eng.new(buy("b1", 10, 10.03))
    assert trades(out) == [("V2", 2, 10.01), ("V1", 2, 10.01), ("V2", 5, 10.03)]
    assert fills(out)[-1].liquidity is Liquidity.TAKER
    assert eng.depth(SYM)["bids"] == [(10.03, 3, 1)]
    out = eng.new(buy("b2", 1, None, ord_type=OrdType.MARKET))
    assert summary(out)[-1][3] == "no_liquidity"  # the quote's size is used up


def test_without_paper_an_incoming_order_ignores_the_quote() -> None:
    eng = engine()
    eng.on_quote(SYM, 9.99, 10.03, 5, 5)
    assert trades(eng.new(buy("b1", 1, 10.05))) == []


def test_paper_fok_counts_the_quote() -> None:
    eng = engine(paper=True)
    eng.new(sell("s1", 2, 10.01))
    eng.on_quote(SYM, 9.99, 10.03, 5, 5)
    assert summary(eng.new(buy("b1", 8, 10.03, tif=TimeInForce.FOK)))[-1][3] == "fok_unfillable"
    assert events(eng.new(buy("b2", 7, 10.03, tif=TimeInForce.FOK)))[-1].status is (
        OrdStatus.FILLED
    )
