"""Engines, orders, events and fills for the risk tests."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

from orders.model import Event, EventType, Fill, Liquidity, NewOrder, OrdStatus, OrdType, Side
from orders.risk import RejectCode, RiskEngine, RiskLimits, RiskReject

NS = 1_000_000_000
T0 = 1_700_000_000 * NS
DOCS = Path(__file__).resolve().parents[2] / "docs" / "risk.md"
_ids = itertools.count()

# Every limit off: each test switches on what it pins.
OFF = RiskLimits(
    max_order_qty=0,
    max_order_notional=0,
    price_collar_pct=0,
    max_open_orders=0,
    max_open_orders_per_sym=0,
    max_long_position=0,
    max_short_position=0,
    max_gross_exposure=0,
    max_messages_per_s=0,
    duplicate_window_s=0,
    max_fills_per_window=0,
)


def make(**changes: object) -> RiskEngine:
    """An engine that accepts any account, with AAPL and MSFT referenced at 100."""
    engine = RiskEngine(dataclasses.replace(OFF, **changes), {})  # type: ignore[arg-type]
    engine.on_price("AAPL", 100.0)
    engine.on_price("MSFT", 100.0)
    return engine


def order(
    qty: int = 100,
    price: float | None = 100.0,
    side: Side = Side.BUY,
    *,
    sym: str = "AAPL",
    account: str = "A1",
    strategy: str = "",
    clordid: str = "",
) -> NewOrder:
    ord_type = OrdType.MARKET if price is None else OrdType.LIMIT
    clordid = clordid or f"C{next(_ids)}"
    return NewOrder(account, sym, clordid, side, qty, ord_type, price, strategy=strategy)


def event(
    req: NewOrder, kind: EventType, status: OrdStatus, leaves: int, cum: int = 0, oid: str = ""
) -> Event:
    return Event(
        kind, oid, req.account, req.sym, req.clordid, req.side, status, req.qty, req.price,
        cum, leaves, 0.0, req.ord_type,
    )  # fmt: skip


def fill(
    side: Side, qty: int, price: float = 100.0, account: str = "A1", sym: str = "AAPL"
) -> Fill:
    n = next(_ids)
    return Fill(f"E{n}", f"O{n}", account, sym, f"F{n}", side, qty, price, Liquidity.TAKER)


def code(reject: RiskReject | None) -> RejectCode | None:
    return None if reject is None else reject.code
