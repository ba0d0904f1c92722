"""Requests, events and fills survive the trip through their tables unchanged."""

from __future__ import annotations

import dataclasses

from orders.book import MatchingEngine
from orders.model import (
    CancelRequest,
    Event,
    MassCancel,
    NewOrder,
    OrdType,
    ReplaceRequest,
    Side,
    StpMode,
    TimeInForce,
)
from orders.rows import (
    EVENT_SCHEMA,
    FILL_SCHEMA,
    event_from_row,
    event_row,
    fill_from_row,
    fill_row,
    request_from_row,
    requests_table,
    to_table,
)


def test_requests_round_trip() -> None:
    reqs = [
        NewOrder("A1", "AAPL", "c1", Side.BUY, 10, OrdType.LIMIT, 1.25, TimeInForce.GTC, "s"),
        NewOrder("A1", "AAPL", "c2", Side.SELL, 5, OrdType.MARKET, None, TimeInForce.IOC),
        CancelRequest("A1", "AAPL", "c3", "c1"),
        ReplaceRequest("A1", "AAPL", "c4", "c1", qty=None, price=1.26),
        ReplaceRequest("A1", "AAPL", "c5", "c4", qty=20, price=None),
        MassCancel(account="A1", strategy="s", sym="", clordid="m1"),
    ]
    rows = requests_table(reqs).to_pylist()
    assert [request_from_row(r) for r in rows] == reqs


def test_events_and_fills_round_trip() -> None:
    engine = MatchingEngine(id_prefix="V0-", stp=StpMode.CANCEL_RESTING)
    out = engine.new(NewOrder("A1", "AAPL", "b1", Side.BUY, 10, price=1.00))
    out += engine.new(NewOrder("A2", "AAPL", "s1", Side.SELL, 4, price=1.00))
    out += engine.new(NewOrder("A2", "AAPL", "s2", Side.SELL, 1, OrdType.MARKET, None))
    out += engine.cancel(CancelRequest("A1", "AAPL", "x1", "nope"))
    out += engine.mass_cancel(MassCancel(account="A1"))
    events = [o for o in out if isinstance(o, Event)]
    fills = [o for o in out if not isinstance(o, Event)]
    assert events and fills
    back = [
        event_from_row(r)
        for r in to_table([event_row(e, "0/1", 7) for e in events], EVENT_SCHEMA).to_pylist()
    ]
    assert back == events
    # Built through the instance dict: exactly the dataclass's fields, no more, no less.
    names = {f.name for f in dataclasses.fields(Event)}
    assert all(set(e.__dict__) == names for e in back)
    fills_back = [
        fill_from_row(r)
        for r in to_table([fill_row(f, "0/1", 7) for f in fills], FILL_SCHEMA).to_pylist()
    ]
    assert fills_back == fills
