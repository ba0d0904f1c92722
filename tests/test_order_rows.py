"""Requests, events and fills survive the trip through their tables unchanged."""

from __future__ import annotations

import dataclasses

from orders.book import MatchingEngine
from orders.model import (
    CancelRequest,
    Event,
    Fill,
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
    REQUEST_SCHEMA,
    Request,
    encode_outputs,
    encode_requests,
    encode_rows,
    event_from_row,
    event_row,
    events_from_columns,
    fill_from_row,
    fill_row,
    request_from_row,
    request_row,
    request_values,
    requests_table,
    to_table,
)
from tickerplant.payload_rows import read_columns, read_rows
from tickerplant.row_message import JOIN_MAX_ROWS, RowMessages
from tickerplant.rowpack import compiled

# One of each kind of request, with the optional fields set and not.
REQUESTS: list[Request] = [
    NewOrder("A1", "AAPL", "c1", Side.BUY, 10, OrdType.LIMIT, 1.25, TimeInForce.GTC, "s"),
    NewOrder("A1", "AAPL", "c2", Side.SELL, 5, OrdType.MARKET, None, TimeInForce.IOC),
    CancelRequest("A1", "AAPL", "c3", "c1"),
    ReplaceRequest("A1", "AAPL", "c4", "c1", qty=None, price=1.26),
    ReplaceRequest("A1", "AAPL", "c5", "c4", qty=20, price=None),
    MassCancel(account="A1", strategy="s", sym="", clordid="m1"),
    MassCancel(account="", strategy="", sym="AAPL", clordid="m2"),
]


def test_requests_round_trip() -> None:
    rows = requests_table(REQUESTS).to_pylist()
    assert [request_from_row(r) for r in rows] == REQUESTS


def test_one_request_is_packed_from_its_values_to_the_same_bytes() -> None:
    """A run of one request is packed from ``request_values``, not its row dict: the same
    values, in the schema's order, and so the same bytes."""
    for req in REQUESTS:
        row = request_row(req)
        assert request_values(req) == tuple(row[name] for name in REQUEST_SCHEMA.names)
        assert encode_requests([req]) == encode_rows([row], REQUEST_SCHEMA)
        assert encode_requests(iter([req])) == encode_rows([row], REQUEST_SCHEMA)
        assert read_rows(encode_requests([req])) == read_rows(encode_rows([row], REQUEST_SCHEMA))


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


def test_bulk_forms_match_the_row_forms() -> None:
    """A venue's outputs encoded from their attributes are the bytes of their rows; a
    record read as columns gives the events its rows give, one at a time."""
    engine = MatchingEngine(id_prefix="V0-")
    out = engine.new(NewOrder("A1", "AAPL", "b1", Side.BUY, 10, price=1.00, strategy="s"))
    out += engine.new(NewOrder("A2", "AAPL", "s1", Side.SELL, 4, price=1.00))
    out += engine.new(NewOrder("A2", "AAPL", "s2", Side.SELL, 1, OrdType.MARKET, None))
    out += engine.new(NewOrder("A1", "AAPL", "b2", Side.BUY, 3, price=0.99))
    out += engine.mass_cancel(MassCancel(account="A1"))
    events = [o for o in out if isinstance(o, Event)]
    fills = [o for o in out if isinstance(o, Fill)]
    assert events and fills
    for some_events in ([events[0]], events):
        rows = [event_row(e, "0/1", 7) for e in some_events]
        assert encode_outputs(some_events, EVENT_SCHEMA, "0/1", 7) == encode_rows(
            rows, EVENT_SCHEMA
        )
    for some_fills in ([fills[0]], fills):
        rows = [fill_row(f, "0/1", 7) for f in some_fills]
        assert encode_outputs(some_fills, FILL_SCHEMA, "0/1", 7) == encode_rows(rows, FILL_SCHEMA)
    payload = encode_outputs(events, EVENT_SCHEMA, "0/1", 7)
    names, columns = read_columns(payload)
    assert events_from_columns(names, columns) == [event_from_row(r) for r in read_rows(payload)]
    assert events_from_columns(names, columns) == events
    built = events_from_columns(names, columns)[0]
    assert set(built.__dict__) == {f.name for f in dataclasses.fields(Event)}


def test_a_burst_of_requests_is_joined_to_the_bytes_pyarrow_writes() -> None:
    """Several requests (a gateway's burst) are packed one by one and joined by the compiled
    packer (``RowMessages.join``): the same bytes as an Arrow batch of their rows, nulls
    and non-ASCII text included; a run past ``JOIN_MAX_ROWS`` goes through pyarrow."""
    burst: list[Request] = [
        *REQUESTS,
        NewOrder("Ä1", "ÅAPL", "ç9", Side.BUY, 1, OrdType.LIMIT, 2.5, strategy="ß"),
    ]
    for n in range(2, len(burst) + 1):
        rows = [request_row(r) for r in burst[:n]]
        assert encode_requests(burst[:n]) == encode_rows(rows, REQUEST_SCHEMA)
    many = [dataclasses.replace(REQUESTS[0], clordid=f"c{k}") for k in range(JOIN_MAX_ROWS + 1)]
    assert encode_requests(many) == encode_rows(map(request_row, many), REQUEST_SCHEMA)
    packer = RowMessages(REQUEST_SCHEMA, "order_request")
    joined = packer.join([request_values(r) for r in burst])
    assert joined == (
        None if compiled() is None else encode_rows(map(request_row, burst), REQUEST_SCHEMA)
    )
    assert packer.join([request_values(r) for r in many]) is None
