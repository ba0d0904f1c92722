"""The matching engine's behaviours, one by one (the property test against a naive matcher is
in ``test_order_book_property.py``)."""

from __future__ import annotations

import dataclasses
import math

import pytest
from support.order_book import SYM, buy, engine, events, fills, sell, summary, trades

from orders import book_events
from orders.model import (
    CancelRequest,
    Event,
    EventType,
    Fill,
    Liquidity,
    MassCancel,
    NewOrder,
    Order,
    OrdStatus,
    OrdType,
    ReplaceRequest,
    Side,
    StpMode,
    TimeInForce,
)

# ---- new orders and matching ------------------------------------------------------------


def test_resting_order_is_accepted_with_a_venue_order_id() -> None:
    eng = engine()
    out = eng.new(buy("c1", 10, 10.0))
    assert summary(out) == [("accepted", "V1", "new", "")]
    (ack,) = events(out)
    assert (ack.leaves_qty, ack.cum_qty, ack.clordid) == (10, 0, "c1")
    assert eng.depth(SYM) == {"bids": [(10.0, 10, 1)], "asks": []}
    assert eng.order("a", "c1") is eng.open_orders()[0]


def test_price_then_time_priority_and_trade_at_the_resting_price() -> None:
    eng = engine()
    eng.new(sell("s1", 5, 10.02))
    eng.new(sell("s2", 5, 10.01))
    eng.new(sell("s3", 5, 10.01))
    out = eng.new(buy("b1", 12, 10.05, account="a"))
    assert trades(out) == [
        ("V4", 5, 10.01),
        ("V2", 5, 10.01),
        ("V4", 5, 10.01),
        ("V3", 5, 10.01),
        ("V4", 2, 10.02),
        ("V1", 2, 10.02),
    ]
    last = events(out)[-2]
    assert (last.status, last.cum_qty, last.leaves_qty) == (OrdStatus.FILLED, 12, 0)
    assert last.avg_px == pytest.approx((10 * 10.01 + 2 * 10.02) / 12)
    assert eng.snapshot() == ((SYM, "sell", 10.02, "V1", 3),)


def test_partial_fill_rests_the_remainder_with_its_state() -> None:
    eng = engine()
    eng.new(sell("s1", 4, 10.0))
    out = eng.new(buy("b1", 10, 10.0))
    taker_fill = events(out)[1]
    assert taker_fill.event is EventType.FILL
    assert (taker_fill.status, taker_fill.cum_qty, taker_fill.leaves_qty) == (
        OrdStatus.PARTIALLY_FILLED,
        4,
        6,
    )
    assert eng.depth(SYM)["bids"] == [(10.0, 6, 1)]


def test_each_execution_has_one_fill_row_per_side() -> None:
    eng = engine()
    eng.new(sell("s1", 4, 10.0, strategy="mm"))
    out = eng.new(buy("b1", 4, 10.0, strategy="tk"))
    taker_row, maker_row = fills(out)
    assert (taker_row.exec_id, taker_row.liquidity, taker_row.side) == (
        "VE1.b",
        Liquidity.TAKER,
        Side.BUY,
    )
    assert (maker_row.exec_id, maker_row.liquidity, maker_row.strategy) == (
        "VE1.s",
        Liquidity.MAKER,
        "mm",
    )
    assert [e.exec_id for e in events(out) if e.event is EventType.FILL] == ["VE1.b", "VE1.s"]
    assert [type(r).__name__ for r in out] == ["Event", "Event", "Event", "Fill", "Fill"]
    assert eng.exec_seq == 1


def test_ioc_remainder_is_canceled() -> None:
    eng = engine()
    eng.new(sell("s1", 3, 10.0))
    out = eng.new(buy("b1", 5, 10.0, tif=TimeInForce.IOC))
    assert summary(out)[-1] == ("canceled", "V2", "canceled", "ioc_remainder")
    assert eng.snapshot() == ()


def test_fok_fills_all_or_nothing() -> None:
    eng = engine()
    eng.new(sell("s1", 3, 10.0))
    eng.new(sell("s2", 3, 10.01))
    out = eng.new(buy("b1", 7, 10.01, tif=TimeInForce.FOK))
    assert summary(out) == [
        ("accepted", "V3", "new", ""),
        ("canceled", "V3", "canceled", "fok_unfillable"),
    ]
    out = eng.new(buy("b2", 6, 10.01, tif=TimeInForce.FOK))
    assert events(out)[-2].status is OrdStatus.FILLED
    assert eng.snapshot() == ()


def test_fok_counts_only_what_self_trade_prevention_lets_it_take() -> None:
    eng = engine()
    eng.new(sell("s1", 3, 10.0, account="a"))
    eng.new(sell("s2", 3, 10.0, account="b"))
    out = eng.new(buy("b1", 4, 10.0, tif=TimeInForce.FOK), stp=StpMode.CANCEL_RESTING)
    assert summary(out)[-1][3] == "fok_unfillable"
    assert len(eng.open_orders()) == 2  # nothing happened to the book
    out = eng.new(buy("b2", 3, 10.0, tif=TimeInForce.FOK), stp=StpMode.CANCEL_RESTING)
    assert ("canceled", "V1", "canceled", "self_trade") in summary(out)
    assert trades(out) == [("V4", 3, 10.0), ("V2", 3, 10.0)]


def test_market_order_walks_the_book_and_never_rests() -> None:
    eng = engine()
    eng.new(sell("s1", 3, 10.0))
    eng.new(sell("s2", 3, 12.0))
    out = eng.new(buy("m1", 10, None, ord_type=OrdType.MARKET))
    assert trades(out) == [("V3", 3, 10.0), ("V1", 3, 10.0), ("V3", 3, 12.0), ("V2", 3, 12.0)]
    assert summary(out)[-1] == ("canceled", "V3", "canceled", "no_liquidity")
    assert eng.open_orders() == []


@pytest.mark.parametrize(
    ("req", "reason"),
    [
        (buy("x", 0, 10.0), "bad_quantity"),
        (buy("x", -1, 10.0), "bad_quantity"),
        (buy("x", 1, None), "bad_price"),
        (buy("x", 1, math.nan), "bad_price"),
        (buy("x", 1, 10.005), "off_tick"),
        (buy("x", 1, 10.0, ord_type=OrdType.MARKET), "bad_price"),
        (buy("c1", 1, 9.0), "duplicate_clordid"),
    ],
)
def test_invalid_new_orders_are_rejected(req: NewOrder, reason: str) -> None:
    eng = engine()
    eng.new(buy("c1", 1, 10.0))
    out = eng.new(req)
    assert summary(out) == [("rejected", "", "rejected", reason)]
    assert eng.order_seq == 1
    assert len(eng.open_orders()) == 1


def test_clordid_of_a_done_order_is_refused_until_the_day_ends() -> None:
    # Two gateways may sequence the same ClOrdID: the second must never be a second order,
    # even when the first is already done.
    eng = engine()
    eng.new(buy("c1", 1, 10.0))
    eng.cancel(CancelRequest("a", SYM, "x1", "c1"))
    assert summary(eng.new(buy("c1", 1, 10.0))) == [
        ("rejected", "", "rejected", "duplicate_clordid")
    ]
    assert summary(eng.new(buy("c1", 1, 10.0, account="z")))[0][0] == "accepted"
    eng.end_of_day()
    assert summary(eng.new(buy("c1", 1, 10.0)))[0][0] == "accepted"


def test_tick_size_per_sym() -> None:
    eng = engine(tick_sizes={"BBB": 0.05})
    assert summary(eng.new(buy("c1", 1, 10.01, sym="BBB")))[0][3] == "off_tick"
    assert summary(eng.new(buy("c2", 1, 10.05, sym="BBB")))[0][0] == "accepted"
    assert summary(eng.new(buy("c3", 1, 10.01)))[0][0] == "accepted"


def test_self_trade_cancel_incoming_stops_the_incoming_order() -> None:
    eng = engine(stp=StpMode.CANCEL_INCOMING)
    eng.new(sell("s1", 2, 10.0, account="b"))
    eng.new(sell("s2", 2, 10.0, account="a"))
    eng.new(sell("s3", 2, 10.0, account="c"))
    out = eng.new(buy("b1", 6, 10.0, account="a"))
    assert trades(out) == [("V4", 2, 10.0), ("V1", 2, 10.0)]
    assert summary(out)[-1] == ("canceled", "V4", "canceled", "self_trade")
    assert [o.order_id for o in eng.open_orders()] == ["V2", "V3"]


def test_self_trade_cancel_resting_cancels_it_and_goes_on() -> None:
    eng = engine(stp=StpMode.CANCEL_INCOMING)
    eng.new(sell("s1", 2, 10.0, account="a"))
    eng.new(sell("s2", 2, 10.0, account="c"))
    out = eng.new(buy("b1", 3, 10.0, account="a"), stp=StpMode.CANCEL_RESTING)
    assert summary(out)[1] == ("canceled", "V1", "canceled", "self_trade")
    assert trades(out) == [("V3", 2, 10.0), ("V2", 2, 10.0)]
    assert eng.snapshot() == ((SYM, "buy", 10.0, "V3", 1),)


# ---- cancel -------------------------------------------------------------------------------


def test_cancel_removes_the_order_and_carries_both_clordids() -> None:
    eng = engine()
    eng.new(buy("c1", 5, 10.0))
    (ev,) = eng.cancel(CancelRequest("a", SYM, "x1", "c1"))
    assert isinstance(ev, Event)
    assert (ev.event, ev.status, ev.reason, ev.clordid, ev.orig_clordid, ev.leaves_qty) == (
        EventType.CANCELED,
        OrdStatus.CANCELED,
        "user",
        "x1",
        "c1",
        0,
    )
    assert eng.snapshot() == ()
    assert eng.depth(SYM) == {"bids": [], "asks": []}


def test_cancel_of_an_unknown_order_is_refused() -> None:
    eng = engine()
    eng.new(buy("c1", 5, 10.0))
    for req in (
        CancelRequest("a", SYM, "x1", "nope"),
        CancelRequest("other", SYM, "x1", "c1"),
        CancelRequest("a", "ZZZ", "x1", "c1"),
    ):
        (ev,) = eng.cancel(req)
        assert isinstance(ev, Event)
        assert (ev.event, ev.reason, ev.clordid, ev.orig_clordid, ev.order_id) == (
            EventType.CANCEL_REJECTED,
            "unknown_order",
            "x1",
            req.orig_clordid,
            "",
        )
    assert len(eng.open_orders()) == 1


def test_cancel_of_a_filled_order_is_too_late_and_changes_nothing() -> None:
    eng = engine()
    eng.new(buy("c1", 5, 10.0))
    eng.new(sell("s1", 5, 10.0))
    filled = eng.order("a", "c1")
    assert filled is not None and filled.status is OrdStatus.FILLED
    before = dataclasses.replace(filled, history=list(filled.history))
    (ev,) = eng.cancel(CancelRequest("a", SYM, "x1", "c1"))
    assert isinstance(ev, Event)
    assert (ev.event, ev.reason, ev.status, ev.order_id) == (
        EventType.CANCEL_REJECTED,
        "too_late",
        OrdStatus.FILLED,
        "V1",
    )
    assert (filled.status, filled.cum_qty, filled.avg_px) == (
        before.status,
        before.cum_qty,
        before.avg_px,
    )


def test_many_cancels_at_one_level_keep_the_queue_right() -> None:
    eng = engine()
    for i in range(100):
        eng.new(sell(f"s{i}", 1, 10.0, account=f"m{i}"))
    for i in range(100):
        if i % 10:
            eng.cancel(CancelRequest(f"m{i}", SYM, f"x{i}", f"s{i}"))
    assert eng.depth(SYM)["asks"] == [(10.0, 10, 10)]
    out = eng.new(buy("b1", 3, 10.0))
    assert [t[0] for t in trades(out)][1::2] == ["V1", "V11", "V21"]


# ---- replace ------------------------------------------------------------------------------


def test_qty_decrease_keeps_time_priority() -> None:
    eng = engine()
    eng.new(sell("s1", 5, 10.0, account="b"))
    eng.new(sell("s2", 5, 10.0, account="c"))
    out = eng.replace(ReplaceRequest("b", SYM, "s1b", "s1", qty=3))
    assert summary(out) == [("replaced", "V1", "replaced", "")]
    (ev,) = events(out)
    assert (ev.clordid, ev.orig_clordid, ev.qty, ev.leaves_qty) == ("s1b", "s1", 3, 3)
    assert [row[3] for row in eng.snapshot()] == ["V1", "V2"]
    assert eng.depth(SYM)["asks"] == [(10.0, 8, 2)]


@pytest.mark.parametrize(("qty", "price"), [(6, None), (None, 10.01), (5, 10.01)])
def test_qty_increase_or_price_change_loses_time_priority(
    qty: int | None, price: float | None
) -> None:
    eng = engine()
    eng.new(sell("s1", 5, 10.0, account="b"))
    eng.new(sell("s2", 5, 10.01 if price else 10.0, account="c"))
    eng.replace(ReplaceRequest("b", SYM, "s1b", "s1", qty=qty, price=price))
    assert [row[3] for row in eng.snapshot()] == ["V2", "V1"]


def test_replace_refusals() -> None:
    eng = engine()
    eng.new(buy("c1", 5, 10.0))
    eng.new(sell("s1", 2, 10.0))
    eng.new(buy("c2", 1, 9.0))
    eng.new(buy("gone", 1, 9.0))
    eng.cancel(CancelRequest("a", SYM, "x", "gone"))
    cases = [
        (ReplaceRequest("a", SYM, "n", "c1", qty=2), "qty_not_above_filled"),
        (ReplaceRequest("a", SYM, "n", "c1", price=10.001), "off_tick"),
        (ReplaceRequest("a", SYM, "n", "c1", price=-1.0), "bad_price"),
        (ReplaceRequest("a", SYM, "c2", "c1", qty=9), "duplicate_clordid"),
        (ReplaceRequest("a", SYM, "n", "gone", qty=9), "too_late"),
        (ReplaceRequest("a", SYM, "n", "nope", qty=9), "unknown_order"),
    ]
    for req, reason in cases:
        (ev,) = eng.replace(req)
        assert isinstance(ev, Event)
        assert (ev.event, ev.reason, ev.clordid, ev.orig_clordid) == (
            EventType.REPLACE_REJECTED,
            reason,
            "n" if reason != "duplicate_clordid" else "c2",
            req.orig_clordid,
        )
    order = eng.order("a", "c1")
    assert order is not None
    assert (order.qty, order.price, order.status) == (5, 10.0, OrdStatus.PARTIALLY_FILLED)


def test_marketable_replace_matches_as_the_taker() -> None:
    eng = engine()
    eng.new(sell("s1", 3, 10.02))
    eng.new(buy("c1", 5, 10.0))
    out = eng.replace(ReplaceRequest("a", SYM, "c1b", "c1", price=10.02))
    assert summary(out)[0] == ("replaced", "V2", "replaced", "")
    assert trades(out) == [("V2", 3, 10.02), ("V1", 3, 10.02)]
    assert fills(out)[0].liquidity is Liquidity.TAKER
    assert fills(out)[0].clordid == "c1b"
    assert eng.snapshot() == ((SYM, "buy", 10.02, "V2", 2),)


def test_replaced_order_is_found_by_its_new_clordid_and_works_again() -> None:
    eng = engine()
    eng.new(buy("c1", 5, 10.0))
    eng.replace(ReplaceRequest("a", SYM, "c1b", "c1", qty=6))
    order = eng.order("a", "c1b")
    assert order is not None and order.status is OrdStatus.REPLACED
    assert eng.order("a", "c1") is order
    (ev,) = eng.cancel(CancelRequest("a", SYM, "x", "c1"))
    assert isinstance(ev, Event) and ev.reason == "too_late"
    assert order.status is OrdStatus.REPLACED
    eng.replace(ReplaceRequest("a", SYM, "c1c", "c1b", price=10.01))
    out = eng.new(sell("s1", 6, 10.01))
    assert events(out)[1].status is OrdStatus.FILLED
    assert order.status is OrdStatus.FILLED


# ---- mass cancel and end of day ---------------------------------------------------------


def test_mass_cancel_by_filters_in_order_id_order() -> None:
    eng = engine()
    eng.new(buy("c1", 1, 10.0, account="a", strategy="s1"))
    eng.new(sell("c2", 1, 11.0, account="a", strategy="s2"))
    eng.new(buy("c3", 1, 10.0, account="b", strategy="s1"))
    eng.new(buy("c4", 1, 10.0, account="a", strategy="s1", sym="BBB"))
    eng.new(buy("c5", 1, 9.0, account="a", strategy="s1"))
    out = eng.mass_cancel(MassCancel(account="a", strategy="s1", sym=SYM, clordid="m1"))
    assert summary(out) == [
        ("canceled", "V1", "canceled", "mass_cancel"),
        ("canceled", "V5", "canceled", "mass_cancel"),
    ]
    assert events(out)[0].text == "m1"
    out = eng.mass_cancel(MassCancel(), reason="kill_switch")
    assert [(e.order_id, e.reason) for e in events(out)] == [
        ("V2", "kill_switch"),
        ("V3", "kill_switch"),
        ("V4", "kill_switch"),
    ]
    assert eng.open_orders() == []


def test_end_of_day_expires_day_orders_and_keeps_gtc() -> None:
    eng = engine()
    eng.new(buy("c1", 1, 10.0))
    eng.new(buy("c2", 1, 10.0, tif=TimeInForce.GTC))
    eng.new(sell("c3", 2, 11.0))
    out = eng.end_of_day()
    assert summary(out) == [
        ("expired", "V1", "expired", "eod"),
        ("expired", "V3", "expired", "eod"),
    ]
    assert [o.clordid for o in eng.open_orders()] == ["c2"]
    (ev,) = eng.cancel(CancelRequest("a", SYM, "x", "c1"))
    assert isinstance(ev, Event) and ev.reason == "unknown_order"  # a new day


# ---- queries and plumbing ---------------------------------------------------------------


def test_depth_aggregates_levels_best_first() -> None:
    eng = engine()
    for i, px in enumerate((10.0, 10.01, 10.01, 9.98)):
        eng.new(buy(f"b{i}", i + 1, px))
    eng.new(sell("s1", 7, 10.05))
    assert eng.depth(SYM, levels=2) == {
        "bids": [(10.01, 5, 2), (10.0, 1, 1)],
        "asks": [(10.05, 7, 1)],
    }
    assert eng.depth("nope") == {"bids": [], "asks": []}


@pytest.mark.parametrize("cls", [Event, Fill])
def test_fast_row_builders_set_exactly_the_dataclass_fields(cls: type) -> None:
    order = Order("V1", "a", SYM, "c1", Side.BUY, 5, OrdType.LIMIT, 10.0, TimeInForce.DAY)
    row = (
        book_events.fill_event(order, 1, 10.0, "E1.b")
        if cls is Event
        else book_events.fill_row(order, 1, 10.0, "E1.b", Liquidity.TAKER)
    )
    names = [f.name for f in dataclasses.fields(cls)]
    assert list(vars(row)) == names
    assert row == cls(**vars(row))
    event_names = [f.name for f in dataclasses.fields(Event)]
    assert list(vars(book_events.order_event(order, EventType.ACCEPTED))) == event_names
