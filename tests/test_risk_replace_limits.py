"""Pre-trade risk: replaces, limit validation and admin changes, and the docs."""

from __future__ import annotations

import dataclasses
import re

import pytest
from support.risk import DOCS, T0, code, event, make, order

from orders.model import (
    EventType,
    NewOrder,
    Order,
    OrdStatus,
    ReplaceRequest,
)
from orders.risk import RejectCode, RiskEngine, RiskLimits, TradingState, limits_with
from orders.risk_checks import NEW_ORDER_CHECKS
from orders.risk_limits import LIMIT_KEYS, limits_from_config

# -- replaces ----------------------------------------------------------------------------


def _working(req: NewOrder, engine: RiskEngine, oid: str = "V1") -> Order:
    engine.on_event(event(req, EventType.ACCEPTED, OrdStatus.NEW, req.qty, oid=oid))
    assert req.price is not None
    return Order(oid, req.account, req.sym, req.clordid, req.side, req.qty, req.ord_type,
                 req.price, req.tif, req.strategy)  # fmt: skip


def test_replace_is_checked_with_its_own_working_quantity_replaced() -> None:
    engine = make(max_long_position=1000, max_order_qty=800, price_collar_pct=5)
    req = order(600)
    assert engine.check_new(req, T0) is None
    working = _working(req, engine)
    assert engine.check_new(order(200), T0) is None
    up = ReplaceRequest("A1", "AAPL", "R1", req.clordid, qty=800)
    assert engine.check_replace(up, T0, working) is None  # 800 + 200 = 1000, not 1600
    engine.on_event(
        dataclasses.replace(
            event(req, EventType.REPLACED, OrdStatus.REPLACED, 800, oid="V1"),
            clordid="R1", orig_clordid=req.clordid, qty=800,
        )
    )  # fmt: skip
    working.qty, working.clordid = 800, "R1"
    too_big = ReplaceRequest("A1", "AAPL", "R2", "R1", qty=801)
    assert code(engine.check_replace(too_big, T0, working)) is RejectCode.MAX_ORDER_QTY
    moved = ReplaceRequest("A1", "AAPL", "R3", "R1", price=106.0)
    assert code(engine.check_replace(moved, T0, working)) is RejectCode.PRICE_COLLAR
    assert code(engine.check_new(order(1), T0)) is RejectCode.MAX_LONG_POSITION


def test_a_pending_replace_counts_at_the_larger_size_until_the_venue_answers() -> None:
    engine = make(max_long_position=1000)
    req = order(300)
    assert engine.check_new(req, T0) is None
    working = _working(req, engine)
    assert (
        engine.check_replace(ReplaceRequest("A1", "AAPL", "R1", req.clordid, 900), T0, working)
        is None
    )
    assert engine.check_new(order(100), T0) is None
    assert code(engine.check_new(order(1), T0)) is RejectCode.MAX_LONG_POSITION
    # The venue refuses the replace: the order is back to 300.
    engine.on_event(
        dataclasses.replace(
            event(req, EventType.REPLACE_REJECTED, OrdStatus.NEW, 300, oid="V1"), clordid="R1",
            orig_clordid=req.clordid,
        )
    )  # fmt: skip
    assert engine.check_new(order(600), T0) is None
    assert code(engine.check_new(order(1), T0)) is RejectCode.MAX_LONG_POSITION


def test_a_replace_that_only_lowers_the_quantity_passes_like_a_cancel() -> None:
    engine = make(max_order_qty=100)
    req = order(100)
    assert engine.check_new(req, T0) is None
    working = _working(req, engine)
    engine.kill()
    engine.set_limits(None, {"max_order_qty": 10})
    down = ReplaceRequest("A1", "AAPL", "R1", req.clordid, qty=50)
    assert engine.check_replace(down, T0, working) is None
    up = ReplaceRequest("A1", "AAPL", "R2", req.clordid, qty=150)
    assert code(engine.check_replace(up, T0, working)) is RejectCode.KILLED


def test_replace_of_an_order_that_is_not_open_or_below_its_fills() -> None:
    engine = make()
    req = order(100)
    assert engine.check_new(req, T0) is None
    working = _working(req, engine)
    working.cum_qty = 40
    below = ReplaceRequest("A1", "AAPL", "R1", req.clordid, qty=40)
    assert code(engine.check_replace(below, T0, working)) is RejectCode.BAD_QUANTITY
    off_tick = ReplaceRequest("A1", "AAPL", "R2", req.clordid, price=100.001)
    assert code(engine.check_replace(off_tick, T0, working)) is RejectCode.OFF_TICK
    working.status = OrdStatus.FILLED
    again = ReplaceRequest("A1", "AAPL", "R3", req.clordid, qty=200)
    assert code(engine.check_replace(again, T0, working)) is RejectCode.UNKNOWN_ORDER


# -- limits: validation and admin changes -------------------------------------------------


def test_limits_with_accepts_ints_for_floats_and_lists_for_syms() -> None:
    limits = limits_with(RiskLimits(), {"max_gross_exposure": 5, "restricted_syms": ["X"]}, "w")
    assert limits.max_gross_exposure == 5.0 and isinstance(limits.max_gross_exposure, float)
    assert limits.restricted_syms == ("X",)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"max_qty": 1}, r"risk\.accounts\.A1\.max_qty: unknown risk limit; known: max_order_qty"),
        ({"max_order_qty": "10"}, r"risk\.accounts\.A1\.max_order_qty: expected an integer"),
        ({"max_order_qty": 1.5}, r"max_order_qty: expected an integer"),
        ({"max_order_qty": True}, r"max_order_qty: expected an integer"),
        ({"max_order_qty": -1}, r"max_order_qty: must be 0 \(no limit\) or positive"),
        ({"price_collar_pct": "5"}, r"price_collar_pct: expected a number"),
        ({"price_collar_pct": -0.5}, r"price_collar_pct: must be 0"),
        ({"fill_window_s": float("nan")}, r"fill_window_s: must be 0"),
        ({"restricted_syms": "AAPL"}, r"restricted_syms: expected a list of strings"),
        ({"restricted_syms": [1]}, r"restricted_syms: expected a list of strings"),
    ],
)
def test_limits_with_rejects_unknown_keys_and_bad_values(
    changes: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        limits_with(RiskLimits(), changes, "risk.accounts.A1")


def test_limits_from_config_starts_accounts_from_the_defaults() -> None:
    defaults, accounts = limits_from_config(
        {"defaults": {"max_order_qty": 500}, "accounts": {"A1": {"price_collar_pct": 2}}}
    )
    assert defaults.max_order_qty == 500
    assert accounts["A1"].max_order_qty == 500 and accounts["A1"].price_collar_pct == 2.0
    with pytest.raises(ValueError, match=r"risk\.accounts\.A1\.bogus"):
        limits_from_config({"accounts": {"A1": {"bogus": 1}}})
    with pytest.raises(ValueError, match=r"risk\.limits: unknown section"):
        limits_from_config({"limits": {}})


def test_set_limits_on_defaults_reaches_accounts_that_do_not_override() -> None:
    defaults = RiskLimits(max_order_qty=100)
    engine = RiskEngine(
        defaults, {"A1": defaults, "A2": dataclasses.replace(defaults, max_order_qty=5)}
    )
    engine.on_price("AAPL", 100.0)
    change = engine.set_limits(None, {"max_order_qty": 10})
    assert change == {
        "action": "set_limits", "account": None,
        "changes": {"max_order_qty": {"old": 100, "new": 10}},
    }  # fmt: skip
    assert code(engine.check_new(order(11), T0)) is RejectCode.MAX_ORDER_QTY
    assert code(engine.check_new(order(6, account="A2"), T0)) is RejectCode.MAX_ORDER_QTY
    engine.set_limits("A2", {"max_order_qty": 50, "restricted_syms": ["AAPL"]})
    assert code(engine.check_new(order(6, account="A2"), T0)) is RejectCode.RESTRICTED_SYM
    engine.set_limits(None, {"max_order_qty": 1})
    assert engine.check_new(order(50, account="A2", sym="MSFT"), T0) is None
    with pytest.raises(ValueError, match="unknown account ZZ"):
        engine.set_limits("ZZ", {"max_order_qty": 1})
    with pytest.raises(ValueError, match=r"risk\.accounts\.A1\.nope"):
        engine.set_limits("A1", {"max_order_qty": 3, "nope": 1})
    status = engine.status()
    assert status["accounts"]["A1"]["limits"]["max_order_qty"] == 1  # type: ignore[index]
    assert status["accounts"]["A2"]["overrides"] == {  # type: ignore[index]
        "max_order_qty": 50, "restricted_syms": ["AAPL"],
    }  # fmt: skip


def test_status_reports_states_kills_and_counters() -> None:
    engine = make(max_order_qty=10)
    assert engine.check_new(order(5), T0) is None
    assert engine.check_new(order(11), T0) is not None
    engine.kill(strategy="s1")
    engine.set_trading_state(TradingState.REDUCING)
    status = engine.status()
    assert status["state"] == "reducing"
    assert status["kills"] == [{"account": None, "strategy": "s1"}]
    assert status["counters"] == {
        "checked": 2, "passed": 1, "rejects": {"max_order_qty": 1}, "throttle_halts": 0,
    }  # fmt: skip
    assert status["accounts"]["A1"]["open_orders"] == 1  # type: ignore[index]


# -- docs ----------------------------------------------------------------------------------


def test_docs_name_every_limit_reject_code_and_admin_route() -> None:
    text = DOCS.read_text()
    for key in LIMIT_KEYS:
        assert f"`{key}`" in text, key
    for reject_code in RejectCode:
        assert f"`{reject_code}`" in text, reject_code
    for route in ("POST /risk/limits", "POST /risk/state", "POST /risk/kill", "POST /risk/resume",
                  "GET /risk", "risk_admin"):  # fmt: skip
        assert route in text, route


def test_docs_list_the_checks_in_the_order_they_run() -> None:
    documented = re.findall(r"^\| \d+ \| `(check_\w+)`", DOCS.read_text(), re.MULTILINE)
    assert documented == [check.__name__ for check in NEW_ORDER_CHECKS]
