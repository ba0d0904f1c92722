"""Pre-trade risk: every check at its limit and just past it, states, kills, throttle,
duplicates, the rate window, replaces, the working-order feed and limit validation."""

from __future__ import annotations

import dataclasses

import pytest
from support.risk import NS, OFF, T0, code, event, fill, make, order

from orders.model import (
    EventType,
    NewOrder,
    Order,
    OrdStatus,
    OrdType,
    ReplaceRequest,
    Side,
    TimeInForce,
)
from orders.risk import RejectCode, RiskEngine, RiskLimits, RiskReject, TradingState

# (limits, orders sent first, the order exactly at the limit, the one just past, code,
# the message naming the limit and the value)
LimitCase = tuple[dict[str, object], list[NewOrder], NewOrder, NewOrder, RejectCode, str]
LIMIT_CASES: dict[str, LimitCase] = {
    "order_qty": (
        {"max_order_qty": 1000}, [], order(1000), order(1001),
        RejectCode.MAX_ORDER_QTY, "order quantity 1001 exceeds max_order_qty 1000 for account A1",
    ),
    "notional": (
        {"max_order_notional": 100_000}, [], order(1000), order(1001),
        RejectCode.MAX_ORDER_NOTIONAL,
        "order notional 100100 exceeds max_order_notional 100000 for account A1",
    ),
    "notional_market_at_reference": (
        {"max_order_notional": 100_000}, [], order(1000, None), order(1001, None),
        RejectCode.MAX_ORDER_NOTIONAL, "order notional 100100 exceeds max_order_notional 100000",
    ),
    "collar_above": (
        {"price_collar_pct": 5}, [], order(price=105.0), order(price=105.01),
        RejectCode.PRICE_COLLAR, "beyond price_collar_pct 5 for account A1",
    ),
    "collar_below": (
        {"price_collar_pct": 5}, [], order(price=95.0), order(price=94.99),
        RejectCode.PRICE_COLLAR, "price 94.99 is 5.01% from the reference 100",
    ),
    "open_orders": (
        {"max_open_orders": 3}, [order(sym="MSFT"), order(sym="MSFT")], order(), order(),
        RejectCode.MAX_OPEN_ORDERS, "open orders 4 would exceed max_open_orders 3",
    ),
    "open_orders_per_sym": (
        {"max_open_orders_per_sym": 2}, [order(sym="MSFT"), order()], order(), order(),
        RejectCode.MAX_OPEN_ORDERS_PER_SYM,
        "open orders in AAPL 3 would exceed max_open_orders_per_sym 2",
    ),
    "long_position_counts_working_buys": (
        {"max_long_position": 1000}, [order(400), order(300, side=Side.SELL)], order(600),
        order(1),
        RejectCode.MAX_LONG_POSITION,
        "long position 0 + working buys 1000 + this buy 1 = 1001 exceeds max_long_position 1000",
    ),
    "short_position_counts_working_sells": (
        {"max_short_position": 500}, [order(200, side=Side.SELL)], order(300, side=Side.SELL),
        order(1, side=Side.SELL),
        RejectCode.MAX_SHORT_POSITION,
        "short position 0 + working sells 500 + this sell 1 = 501 exceeds max_short_position 500",
    ),
    "gross_exposure_counts_working_orders": (
        {"max_gross_exposure": 100_000}, [order(400, side=Side.SELL, sym="MSFT")], order(600),
        order(1),
        RejectCode.MAX_GROSS_EXPOSURE,
        "gross exposure 100100 (positions 0 + working 100000 + this order 100) exceeds "
        "max_gross_exposure 100000 for account A1",
    ),
    "rate_limit": (
        {"max_messages_per_s": 3}, [order(1), order(2)], order(3), order(4),
        RejectCode.RATE_LIMIT, "4 messages within 1 s exceed max_messages_per_s 3 for account A1",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", LIMIT_CASES.values(), ids=LIMIT_CASES.keys())
def test_each_limit_passes_at_its_limit_and_rejects_just_past_it(case: LimitCase) -> None:
    limits, first, at, past, expected, message = case
    engine = make(**limits)
    for req in first:
        assert engine.check_new(req, T0) is None
    assert engine.check_new(at, T0) is None
    reject = engine.check_new(past, T0)
    assert code(reject) is expected
    assert reject is not None and message in reject.message
    assert engine.rejects[expected] == 1


def test_defaults_are_a_demo_desk_with_every_limit_on() -> None:
    limits = RiskLimits()
    assert (limits.max_order_qty, limits.max_order_notional, limits.price_collar_pct) == (
        100_000, 10_000_000.0, 10.0,
    )  # fmt: skip
    assert (limits.max_open_orders, limits.max_open_orders_per_sym) == (1000, 200)
    assert limits.max_long_position == limits.max_short_position == 1_000_000
    assert limits.max_gross_exposure == 100_000_000.0
    assert (limits.max_messages_per_s, limits.duplicate_window_s) == (1000, 1.0)
    assert (limits.max_fills_per_window, limits.fill_window_s) == (1000, 1.0)
    assert limits.restricted_syms == ()


def test_zero_limits_mean_no_limit() -> None:
    engine = make()
    engine.on_price("AAPL", 1.0)
    for _ in range(5):
        assert engine.check_new(order(10**9, price=10_000.0), T0) is None


STATIC_CASES = {
    "unknown_sym": (order(sym="NOPE"), RejectCode.UNKNOWN_SYM),
    "zero_qty": (order(0), RejectCode.BAD_QUANTITY),
    "negative_qty": (order(-5), RejectCode.BAD_QUANTITY),
    "market_with_price": (
        NewOrder("A1", "AAPL", "M1", Side.BUY, 1, OrdType.MARKET, 100.0), RejectCode.BAD_PRICE,
    ),
    "limit_without_price": (
        NewOrder("A1", "AAPL", "L1", Side.BUY, 1, OrdType.LIMIT, None), RejectCode.BAD_PRICE,
    ),
    "nan_price": (order(price=float("nan")), RejectCode.BAD_PRICE),
    "inf_price": (order(price=float("inf")), RejectCode.BAD_PRICE),
    "zero_price": (order(price=0.0), RejectCode.BAD_PRICE),
    "off_default_tick": (order(price=100.005), RejectCode.OFF_TICK),
    "off_sym_tick": (order(price=100.01, sym="MSFT"), RejectCode.OFF_TICK),
}  # fmt: skip


@pytest.mark.parametrize("case", STATIC_CASES.values(), ids=STATIC_CASES.keys())
def test_static_validation(case: tuple[NewOrder, RejectCode]) -> None:
    req, expected = case
    engine = RiskEngine(RiskLimits(), {}, syms=["AAPL", "MSFT"], tick_sizes={"MSFT": 0.05})
    engine.on_price("AAPL", 100.0)
    engine.on_price("MSFT", 100.0)
    assert code(engine.check_new(req, T0)) is expected
    assert engine.check_new(order(price=100.05, sym="MSFT"), T0) is None


def test_known_accounts_are_the_configured_ones_else_any_with_defaults() -> None:
    configured = RiskEngine(RiskLimits(), {"A1": RiskLimits(max_order_qty=5)})
    configured.on_price("AAPL", 100.0)
    reject = configured.check_new(order(account="ZZ"), T0)
    assert code(reject) is RejectCode.UNKNOWN_ACCOUNT
    assert code(configured.check_new(order(6), T0)) is RejectCode.MAX_ORDER_QTY
    assert code(configured.check_cancel("ZZ", T0)) is RejectCode.UNKNOWN_ACCOUNT
    open_desk = make(max_order_qty=5)
    assert code(open_desk.check_new(order(6, account="ANY"), T0)) is RejectCode.MAX_ORDER_QTY
    assert open_desk.check_new(order(5, account="ANY"), T0) is None


def test_checks_run_in_the_documented_order() -> None:
    engine = make(max_order_qty=10, price_collar_pct=5, max_open_orders=1)
    assert engine.check_new(order(1, price=101.0), T0) is None
    # Breaks the qty, collar and open-order limits: the first in order wins.
    assert code(engine.check_new(order(11, price=200.0), T0)) is RejectCode.MAX_ORDER_QTY
    assert code(engine.check_new(order(1, price=200.0), T0)) is RejectCode.PRICE_COLLAR
    assert code(engine.check_new(order(1), T0)) is RejectCode.MAX_OPEN_ORDERS
    engine.kill()
    assert code(engine.check_new(order(11, price=200.0), T0)) is RejectCode.KILLED
    assert code(engine.check_new(order(0), T0)) is RejectCode.BAD_QUANTITY  # static first


def test_market_order_needs_a_reference_price_and_a_limit_does_not() -> None:
    engine = make(price_collar_pct=10)
    reject = engine.check_new(order(price=None, sym="IBM"), T0)
    assert code(reject) is RejectCode.NO_REFERENCE_PRICE
    assert reject is not None and "price_collar_pct" in reject.message
    assert engine.check_new(order(price=5000.0, sym="IBM"), T0) is None
    engine.on_price("IBM", 50.0)
    assert engine.check_new(order(price=None, sym="IBM"), T0) is None
    assert code(make(max_order_notional=1).check_new(order(1, None, sym="IBM"), T0)) is (
        RejectCode.NO_REFERENCE_PRICE
    )


def test_restricted_sym_is_per_account() -> None:
    engine = RiskEngine(OFF, {"A1": dataclasses.replace(OFF, restricted_syms=("AAPL",)), "A2": OFF})
    reject = engine.check_new(order(), T0)
    assert code(reject) is RejectCode.RESTRICTED_SYM
    assert reject is not None and "AAPL is in restricted_syms for account A1" in reject.message
    assert engine.check_new(order(sym="MSFT"), T0) is None
    assert engine.check_new(order(account="A2"), T0) is None


# -- positions and working orders ---------------------------------------------------------


def test_positions_and_working_orders_count_toward_the_long_limit() -> None:
    engine = make(max_long_position=1000)
    engine.on_fill(fill(Side.BUY, 800), T0)
    buy = order(150)
    assert engine.check_new(buy, T0) is None
    assert engine.check_new(order(50), T0) is None
    reject = engine.check_new(order(1), T0)
    assert reject is not None and "long position 800 + working buys 200 + this buy 1" in (
        reject.message
    )
    assert engine.check_new(order(1, side=Side.SELL), T0) is None  # sells never add to a long
    # The venue cancels the 150: it no longer counts.
    engine.on_event(event(buy, EventType.ACCEPTED, OrdStatus.NEW, 150, oid="V1"))
    engine.on_event(event(buy, EventType.CANCELED, OrdStatus.CANCELED, 0, oid="V1"))
    assert engine.check_new(order(150), T0) is None
    assert code(engine.check_new(order(1), T0)) is RejectCode.MAX_LONG_POSITION


def test_fill_events_shrink_working_leaves_and_a_rejected_event_releases_a_pending_order() -> None:
    engine = make(max_long_position=1000)
    buy = order(1000)
    assert engine.check_new(buy, T0) is None
    engine.on_event(event(buy, EventType.ACCEPTED, OrdStatus.NEW, 1000, oid="V1"))
    engine.on_event(event(buy, EventType.FILL, OrdStatus.PARTIALLY_FILLED, 600, 400, "V1"))
    engine.on_fill(fill(Side.BUY, 400), T0)
    assert code(engine.check_new(order(1), T0)) is RejectCode.MAX_LONG_POSITION  # 400 + 600
    engine.on_event(event(buy, EventType.CANCELED, OrdStatus.CANCELED, 0, 400, "V1"))
    other = order(600)
    assert engine.check_new(other, T0) is None
    assert code(engine.check_new(order(1), T0)) is RejectCode.MAX_LONG_POSITION
    # The venue refuses it before giving it an id: known by ClOrdID, it stops counting.
    engine.on_event(event(other, EventType.REJECTED, OrdStatus.REJECTED, 0))
    assert engine.check_new(order(600), T0) is None
    assert engine.status()["accounts"]["A1"]["open_orders"] == 1  # type: ignore[index]


def test_a_fill_event_moves_its_execution_from_working_into_the_position_at_once() -> None:
    """The venue publishes an execution's events before its fill rows: a check made
    between the two records must count the filled quantity, in the position."""
    engine = make(max_long_position=1000, max_gross_exposure=100_000)
    buy = order(1000)
    assert engine.check_new(buy, T0) is None
    engine.on_event(event(buy, EventType.ACCEPTED, OrdStatus.NEW, 1000, oid="V1"), T0)
    filled = dataclasses.replace(
        event(buy, EventType.FILL, OrdStatus.FILLED, 0, 1000, "V1"),
        last_qty=1000, last_px=100.0, exec_id="E1",
    )  # fmt: skip
    assert engine.on_event(filled, T0) is None
    assert engine.positions.qty("A1", "AAPL") == 1000
    reject = engine.check_new(order(1), T0)
    assert code(reject) is RejectCode.MAX_LONG_POSITION
    assert reject is not None and "long position 1000 + working buys 0 + this buy 1" in (
        reject.message
    )
    status = engine.status()["accounts"]["A1"]  # type: ignore[index]
    assert status["gross_exposure"] == pytest.approx(100_000)
    assert status["open_orders"] == 0


def test_a_fill_event_counts_for_the_fill_throttle() -> None:
    engine = make(max_fills_per_window=1, fill_window_s=1.0)
    buy = order(10)
    assert engine.check_new(buy, T0) is None
    fills = [
        dataclasses.replace(
            event(buy, EventType.FILL, OrdStatus.PARTIALLY_FILLED, 10 - n, n, "V1"),
            last_qty=1, last_px=100.0, exec_id=f"E{n}",
        )
        for n in (1, 2)
    ]  # fmt: skip
    assert engine.on_event(fills[0], T0) is None
    notice = engine.on_event(fills[1], T0 + 1)
    assert notice is not None and notice.code is RejectCode.FILL_THROTTLE


def test_late_events_of_an_order_already_done_are_ignored() -> None:
    engine = make(max_long_position=100)
    buy = order(100)
    assert engine.check_new(buy, T0) is None
    engine.on_event(event(buy, EventType.CANCELED, OrdStatus.CANCELED, 0, oid="V1"))
    engine.on_event(event(buy, EventType.FILL, OrdStatus.FILLED, 0, 100, "V1"))  # raced
    assert engine.check_new(order(100), T0) is None


def test_gross_exposure_values_positions_at_the_reference_across_syms() -> None:
    engine = make(max_gross_exposure=50_000)
    engine.on_fill(fill(Side.BUY, 200, 90.0), T0)  # valued at the reference 100: 20000
    engine.on_fill(fill(Side.SELL, 100, 100.0, sym="MSFT"), T0)  # |-100| * 100: 10000
    assert engine.check_new(order(200, price=100.0, sym="MSFT"), T0) is None  # +20000
    reject = engine.check_new(order(1, side=Side.SELL), T0)
    assert reject is not None and reject.code is RejectCode.MAX_GROSS_EXPOSURE
    assert "positions 30000 + working 20000 + this order 100" in reject.message
    engine.on_price("AAPL", 50.0)  # the long is now worth 10000
    assert engine.check_new(order(100, side=Side.SELL), T0) is None
    status = engine.status()["accounts"]["A1"]  # type: ignore[index]
    assert status["gross_exposure"] == pytest.approx(50_000)


def test_a_position_without_a_reference_is_valued_at_its_cost() -> None:
    engine = make(max_gross_exposure=1000)
    engine.on_fill(fill(Side.BUY, 10, 80.0, sym="IBM"), T0)
    assert engine.check_new(order(2, price=100.0), T0) is None  # 800 + 200
    assert code(engine.check_new(order(1, price=1.0), T0)) is RejectCode.MAX_GROSS_EXPOSURE


# -- trading states, kills, throttle ----------------------------------------------------


def test_reducing_state_lets_only_orders_that_shrink_the_position() -> None:
    engine = make()
    engine.on_fill(fill(Side.BUY, 100), T0)
    engine.on_fill(fill(Side.SELL, 50, sym="MSFT"), T0)
    change = engine.set_trading_state(TradingState.REDUCING, "A1")
    assert change == {
        "action": "set_trading_state", "account": "A1", "old": "active", "new": "reducing",
    }  # fmt: skip
    assert engine.check_new(order(60, side=Side.SELL), T0) is None
    assert engine.check_new(order(40, side=Side.SELL), T0) is None  # working 60 + 40 = 100
    reject = engine.check_new(order(1, side=Side.SELL), T0)
    assert code(reject) is RejectCode.TRADING_REDUCING
    assert code(engine.check_new(order(1), T0)) is RejectCode.TRADING_REDUCING
    assert engine.check_new(order(50, sym="MSFT"), T0) is None  # buys back the short
    assert code(engine.check_new(order(1, sym="IBM"), T0)) is RejectCode.TRADING_REDUCING
    assert engine.check_new(order(1, account="A2"), T0) is None
    engine.set_trading_state("reducing")  # global: every account
    assert code(engine.check_new(order(1, account="A2"), T0)) is RejectCode.TRADING_REDUCING


def test_halted_state_stops_orders_and_replaces_but_not_cancels() -> None:
    engine = make()
    engine.set_trading_state(TradingState.HALTED)
    reject = engine.check_new(order(), T0)
    assert reject == RiskReject(RejectCode.TRADING_HALTED, "trading halted globally")
    assert engine.check_cancel("A1", T0) is None
    engine.set_trading_state(TradingState.ACTIVE)
    engine.set_trading_state(TradingState.HALTED, "A1")
    assert code(engine.check_new(order(), T0)) is RejectCode.TRADING_HALTED
    assert engine.check_new(order(account="A2"), T0) is None


@pytest.mark.parametrize(
    ("account", "strategy", "blocked", "free"),
    [
        (None, None, [("A1", "s1"), ("A2", "")], []),
        ("A1", None, [("A1", "s1"), ("A1", "")], [("A2", "s1")]),
        (None, "s1", [("A1", "s1"), ("A2", "s1")], [("A1", "s2")]),
        ("A1", "s1", [("A1", "s1")], [("A1", "s2"), ("A2", "s1")]),
    ],
    ids=["global", "account", "strategy", "account_strategy"],
)
def test_kill_scopes_and_resume(
    account: str | None,
    strategy: str | None,
    blocked: list[tuple[str, str]],
    free: list[tuple[str, str]],
) -> None:
    engine = make()
    change = engine.kill(account, strategy)
    assert change == {
        "action": "kill", "account": account, "strategy": strategy, "was_killed": False,
    }  # fmt: skip
    for acct, strat in blocked:
        assert code(engine.check_new(order(account=acct, strategy=strat), T0)) is RejectCode.KILLED
        assert engine.check_cancel(acct, T0) is None
    for acct, strat in free:
        assert engine.check_new(order(account=acct, strategy=strat), T0) is None
    assert engine.resume(account, strategy)["cleared_kill"] is True
    for acct, strat in blocked:
        assert engine.check_new(order(account=acct, strategy=strat), T0) is None


def test_fill_throttle_halts_the_account_until_resumed() -> None:
    engine = make(max_fills_per_window=3, fill_window_s=1.0)
    for i in range(3):
        assert engine.on_fill(fill(Side.BUY, 1), T0 + i * NS // 10) is None
    assert engine.on_fill(fill(Side.BUY, 1, sym="MSFT"), T0) is None  # counted per sym
    notice = engine.on_fill(fill(Side.BUY, 1), T0 + NS // 2)
    assert notice is not None and notice.code is RejectCode.FILL_THROTTLE
    assert "4 fills in AAPL within 1 s exceed max_fills_per_window 3 for account A1" in (
        notice.message
    )
    assert engine.on_fill(fill(Side.BUY, 1), T0 + NS // 2) is None  # one notice per halt
    reject = engine.check_new(order(), T0 + NS)
    assert reject is not None and reject.code is RejectCode.TRADING_HALTED
    assert "max_fills_per_window" in reject.message
    assert engine.check_new(order(account="A2"), T0 + NS) is None
    assert engine.throttle_halts == 1
    assert engine.resume("A1")["cleared_throttle"] == notice.message
    assert engine.check_new(order(), T0 + NS) is None


def test_fills_spread_wider_than_the_window_do_not_trip_the_throttle() -> None:
    engine = make(max_fills_per_window=2, fill_window_s=1.0)
    for i in range(10):
        assert engine.on_fill(fill(Side.BUY, 1), T0 + i * NS // 2) is None  # 2 per second


# -- duplicates and the rate window -----------------------------------------------------


def test_duplicate_clordid_is_rejected_whatever_became_of_the_first_until_a_new_day() -> None:
    engine = make()
    first = order(clordid="X1")
    assert engine.check_new(first, T0) is None
    engine.on_event(event(first, EventType.REJECTED, OrdStatus.REJECTED, 0))
    reject = engine.check_new(order(clordid="X1"), T0 + 5 * NS)
    assert reject == RiskReject(
        RejectCode.DUPLICATE_CLORDID, "ClOrdID X1 was already used today by account A1"
    )
    assert engine.check_new(order(clordid="X1", account="A2"), T0) is None  # per account
    engine.new_day()
    assert engine.check_new(order(clordid="X1"), T0 + 5 * NS) is None


def test_duplicate_content_within_the_window_unless_intended() -> None:
    engine = make(duplicate_window_s=1.0)
    assert engine.check_new(order(100, 100.0), T0) is None
    reject = engine.check_new(order(100, 100.0), T0 + NS // 2)
    assert code(reject) is RejectCode.DUPLICATE_ORDER
    assert reject is not None and "duplicate_window_s 1 for account A1" in reject.message
    assert engine.check_new(order(100, 100.01), T0 + NS // 2) is None
    assert engine.check_new(order(100, 100.0, Side.SELL), T0 + NS // 2) is None
    assert engine.check_new(order(100, 100.0, account="A2"), T0 + NS // 2) is None
    assert engine.check_new(order(100, 100.0), T0 + NS // 2, intended=True) is None
    # The intended one starts the window again; exactly one window later it passes.
    assert code(engine.check_new(order(100, 100.0), T0 + NS)) is RejectCode.DUPLICATE_ORDER
    assert engine.check_new(order(100, 100.0), T0 + NS // 2 + NS) is None


def test_rate_limit_is_a_sliding_one_second_window_over_all_message_kinds() -> None:
    engine = make(max_messages_per_s=3)
    assert engine.check_new(order(), T0) is None
    assert engine.check_cancel("A1", T0 + 5 * NS // 10) is None
    sent = order()
    assert engine.check_new(sent, T0 + 9 * NS // 10) is None
    assert code(engine.check_cancel("A1", T0 + 99 * NS // 100)) is RejectCode.RATE_LIMIT
    working = Order("V1", "A1", "AAPL", sent.clordid, Side.BUY, 100, OrdType.LIMIT, 100.0,
                    TimeInForce.DAY)  # fmt: skip
    replace = ReplaceRequest("A1", "AAPL", "R1", sent.clordid, qty=50)
    assert code(engine.check_replace(replace, T0 + 99 * NS // 100, working)) is (
        RejectCode.RATE_LIMIT
    )
    assert engine.check_new(order(), T0 + NS) is None  # the first left the window
    assert code(engine.check_new(order(), T0 + NS)) is RejectCode.RATE_LIMIT  # rejects don't count
    assert engine.check_new(order(account="A2"), T0 + NS) is None  # per account
    assert engine.check_replace(replace, T0 + 15 * NS // 10, working) is None
