"""Orders and readings of the matching engine's output, for its tests."""

from __future__ import annotations

from orders.book import MatchingEngine
from orders.model import Event, EventType, Fill, NewOrder, Side

SYM = "AAA"


def engine(**kwargs: object) -> MatchingEngine:
    return MatchingEngine(id_prefix="V", **kwargs)  # type: ignore[arg-type]


def buy(clordid: str, qty: int, price: float | None, account: str = "a", **kw: object) -> NewOrder:
    return NewOrder(account, kw.pop("sym", SYM), clordid, Side.BUY, qty, price=price, **kw)  # type: ignore[arg-type]


def sell(clordid: str, qty: int, price: float | None, account: str = "b", **kw: object) -> NewOrder:
    return NewOrder(account, kw.pop("sym", SYM), clordid, Side.SELL, qty, price=price, **kw)  # type: ignore[arg-type]


def events(out: list[Event | Fill]) -> list[Event]:
    return [r for r in out if isinstance(r, Event)]


def fills(out: list[Event | Fill]) -> list[Fill]:
    return [r for r in out if isinstance(r, Fill)]


def trades(out: list[Event | Fill]) -> list[tuple[str, int, float]]:
    """(order id, qty, price) of each FILL event."""
    return [(e.order_id, e.last_qty, e.last_px) for e in events(out) if e.event is EventType.FILL]


def summary(out: list[Event | Fill]) -> list[tuple[str, str, str, str]]:
    return [(e.event.value, e.order_id, e.status.value, e.reason) for e in events(out)]
