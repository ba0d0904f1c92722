"""Order-flow objects as rows of the ``order_request``, ``order`` and ``fill`` tables.

The tables are declared in ``tickdb/schema.py``; these functions are the only place
that knows how a request, an event or a fill is laid out in them, in both directions, so
what a venue replays from the journal is exactly what the gateway sent.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from enum import Enum
from operator import attrgetter
from typing import Any, TypeVar

import pyarrow as pa

from orders.model import (
    CancelRequest,
    Event,
    EventType,
    Fill,
    Liquidity,
    MassCancel,
    NewOrder,
    OrdStatus,
    OrdType,
    ReplaceRequest,
    RequestType,
    Side,
    TimeInForce,
)
from tickdb.schema import default_schemas
from tickerplant.payload_rows import read_columns
from tickerplant.row_message import JOIN_MAX_ROWS, RowMessages, payload_of

Request = NewOrder | CancelRequest | ReplaceRequest | MassCancel
E = TypeVar("E", bound=Enum)

_SCHEMAS = default_schemas()
REQUEST_SCHEMA = _SCHEMAS["order_request"].arrow_without_time
EVENT_SCHEMA = _SCHEMAS["order"].arrow_without_time
FILL_SCHEMA = _SCHEMAS["fill"].arrow_without_time
ADMIN_SCHEMA = _SCHEMAS["risk_admin"].arrow_without_time


def request_row(req: Request) -> dict[str, Any]:
    """One ``order_request`` row (without ``time``: the tickerplant stamps it)."""
    return dict(zip(REQUEST_SCHEMA.names, request_values(req), strict=True))


def request_values(req: Request) -> tuple[Any, ...]:
    """``request_row(req)``'s values in ``REQUEST_SCHEMA``'s order, without the dict: the
    one-row encoding of a submit takes them as they are (``encode_requests``)."""
    if isinstance(req, NewOrder):
        return (
            req.sym,
            RequestType.NEW,
            req.account,
            req.strategy,
            req.clordid,
            "",
            req.side,
            req.ord_type,
            req.tif,
            req.price,
            req.qty,
        )
    if isinstance(req, MassCancel):
        kind, strategy, orig, price, qty = RequestType.MASS_CANCEL, req.strategy, "", None, None
    elif isinstance(req, ReplaceRequest):
        kind, strategy, orig, price, qty = (
            RequestType.REPLACE,
            "",
            req.orig_clordid,
            req.price,
            req.qty,
        )
    else:
        kind, strategy, orig, price, qty = RequestType.CANCEL, "", req.orig_clordid, None, None
    return (req.sym, kind, req.account, strategy, req.clordid, orig, "", "", "", price, qty)


# The order ``request_values`` gives them in: checked against the table's declaration.
_REQUEST_NAMES = "sym request account strategy clordid orig_clordid side ord_type tif price qty"
if REQUEST_SCHEMA.names != _REQUEST_NAMES.split():
    raise RuntimeError(f"order_request's columns changed: {REQUEST_SCHEMA.names}")


def _price(value: Any) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def _member(kind: type[E], value: str) -> E:
    """``kind(value)`` through the enum's own value map: a dict lookup, where the enum
    call costs a microsecond, per column of every event a gateway reads."""
    member = kind._value2member_map_.get(value)
    return kind(value) if member is None else member  # type: ignore[return-value]


def request_from_row(row: Mapping[str, Any]) -> Request:
    """The request an ``order_request`` row holds; ValueError if it holds none."""
    kind = _member(RequestType, row["request"])
    if kind is RequestType.NEW:
        return NewOrder(
            account=row["account"],
            sym=row["sym"],
            clordid=row["clordid"],
            side=_member(Side, row["side"]),
            qty=int(row["qty"]),
            ord_type=_member(OrdType, row["ord_type"]),
            price=_price(row["price"]),
            tif=_member(TimeInForce, row["tif"]),
            strategy=row["strategy"] or "",
        )
    if kind is RequestType.CANCEL:
        return CancelRequest(row["account"], row["sym"], row["clordid"], row["orig_clordid"])
    if kind is RequestType.REPLACE:
        qty = row["qty"]
        return ReplaceRequest(
            row["account"],
            row["sym"],
            row["clordid"],
            row["orig_clordid"],
            qty=None if qty is None else int(qty),
            price=_price(row["price"]),
        )
    return MassCancel(
        account=row["account"] or "",
        strategy=row["strategy"] or "",
        sym=row["sym"] or "",
        clordid=row["clordid"] or "",
    )


def event_row(event: Event, venue: str, in_seq: int) -> dict[str, Any]:
    return {
        "sym": event.sym,
        "account": event.account,
        "strategy": event.strategy,
        "clordid": event.clordid,
        "orig_clordid": event.orig_clordid,
        "order_id": event.order_id,
        "venue": venue,
        "event": event.event,
        "status": event.status,
        "side": event.side,
        "ord_type": event.ord_type,
        "tif": event.tif,
        "price": event.price,
        "qty": event.qty,
        "cum_qty": event.cum_qty,
        "leaves_qty": event.leaves_qty,
        "avg_px": event.avg_px,
        "last_qty": event.last_qty,
        "last_px": event.last_px,
        "exec_id": event.exec_id,
        "reason": event.reason,
        "text": event.text,
        "in_seq": in_seq,
    }


def event_from_row(row: Mapping[str, Any]) -> Event:
    # Built through the instance dict (Event is a frozen dataclass without slots):
    # the generated __init__ with 21 frozen assignments is the larger part of the cost.
    event = object.__new__(Event)
    event.__dict__.update(
        event=_member(EventType, row["event"]),
        order_id=row["order_id"] or "",
        account=row["account"],
        sym=row["sym"],
        clordid=row["clordid"],
        side=_member(Side, row["side"]),
        status=_member(OrdStatus, row["status"]),
        qty=int(row["qty"] or 0),
        price=_price(row["price"]),
        cum_qty=int(row["cum_qty"] or 0),
        leaves_qty=int(row["leaves_qty"] or 0),
        avg_px=float(row["avg_px"] or 0.0),
        ord_type=_member(OrdType, row["ord_type"]),
        tif=_member(TimeInForce, row["tif"]),
        strategy=row["strategy"] or "",
        orig_clordid=row["orig_clordid"] or "",
        last_qty=int(row["last_qty"] or 0),
        last_px=float(row["last_px"] or 0.0),
        exec_id=row["exec_id"] or "",
        reason=row["reason"] or "",
        text=row["text"] or "",
    )
    return event


# Event's fields in the order events_from_columns builds them, and the columns they come from.
_EVENT_COLUMNS = [
    "event",
    "order_id",
    "account",
    "sym",
    "clordid",
    "side",
    "status",
    "qty",
    "price",
    "cum_qty",
    "leaves_qty",
    "avg_px",
    "ord_type",
    "tif",
    "strategy",
    "orig_clordid",
    "last_qty",
    "last_px",
    "exec_id",
    "reason",
    "text",
]


def events_from_columns(names: list[str], columns: list[list[Any]]) -> list[Event]:
    """The events of an ``order`` record read as columns (``payload_rows.read_columns``):
    the same as ``event_from_row`` of each row, without a dict per row first (a kill
    switch's record holds thousands)."""
    by_name = dict(zip(names, columns, strict=True))
    kinds, sides, statuses = (
        EventType._value2member_map_,
        Side._value2member_map_,
        OrdStatus._value2member_map_,
    )
    types, tifs = OrdType._value2member_map_, TimeInForce._value2member_map_
    out: list[Event] = []
    new, set_dict = object.__new__, object.__setattr__
    for (
        kind,
        order_id,
        account,
        sym,
        clordid,
        side,
        status,
        qty,
        price,
        cum_qty,
        leaves_qty,
        avg_px,
        ord_type,
        tif,
        strategy,
        orig_clordid,
        last_qty,
        last_px,
        exec_id,
        reason,
        text,
    ) in zip(*[by_name[name] for name in _EVENT_COLUMNS], strict=True):
        event = new(Event)
        # The instance dict in one piece (Event is a frozen dataclass without slots).
        set_dict(
            event,
            "__dict__",
            {
                "event": kinds.get(kind) or _member(EventType, kind),
                "order_id": order_id or "",
                "account": account,
                "sym": sym,
                "clordid": clordid,
                "side": sides.get(side) or _member(Side, side),
                "status": statuses.get(status) or _member(OrdStatus, status),
                "qty": int(qty or 0),
                "price": _price(price),
                "cum_qty": int(cum_qty or 0),
                "leaves_qty": int(leaves_qty or 0),
                "avg_px": float(avg_px or 0.0),
                "ord_type": types.get(ord_type) or _member(OrdType, ord_type),
                "tif": tifs.get(tif) or _member(TimeInForce, tif),
                "strategy": strategy or "",
                "orig_clordid": orig_clordid or "",
                "last_qty": int(last_qty or 0),
                "last_px": float(last_px or 0.0),
                "exec_id": exec_id or "",
                "reason": reason or "",
                "text": text or "",
            },
        )
        out.append(event)
    return out


def fill_row(fill: Fill, venue: str, in_seq: int) -> dict[str, Any]:
    return {
        "sym": fill.sym,
        "account": fill.account,
        "strategy": fill.strategy,
        "side": fill.side,
        "qty": fill.qty,
        "price": fill.price,
        "exec_id": fill.exec_id,
        "order_id": fill.order_id,
        "clordid": fill.clordid,
        "liquidity": fill.liquidity,
        "venue": venue,
        "in_seq": in_seq,
    }


def fill_from_row(row: Mapping[str, Any]) -> Fill:
    return Fill(
        exec_id=row["exec_id"],
        order_id=row["order_id"],
        account=row["account"],
        sym=row["sym"],
        clordid=row["clordid"],
        side=_member(Side, row["side"]),
        qty=int(row["qty"]),
        price=float(row["price"]),
        liquidity=_member(Liquidity, row["liquidity"]),
        strategy=row["strategy"] or "",
    )


def to_batch(rows: Iterable[Mapping[str, Any]], schema: pa.Schema) -> pa.RecordBatch:
    """Rows (dicts) as one record batch of ``schema``, converted in a single call through
    a struct array: a one-row ``order`` event costs ~40 µs so, against ~125 µs column by
    column and ~270 µs more through ``Publisher.publish``'s generic conversion."""
    rows = list(rows)
    if not rows:
        return pa.RecordBatch.from_pylist([], schema=schema)
    structs = pa.array(rows, type=pa.struct(list(schema)))
    return pa.RecordBatch.from_struct_array(structs).replace_schema_metadata(schema.metadata)


def to_table(rows: Iterable[Mapping[str, Any]], schema: pa.Schema) -> pa.Table:
    """Rows (dicts) as a table of ``schema``."""
    return pa.Table.from_batches([to_batch(rows, schema)], schema=schema)


# Per schema (by identity: hashing a pyarrow schema costs microseconds), its one-row
# packer, its schema message (the stream's first bytes) and its column names.
_ENCODERS: dict[int, tuple[pa.Schema, RowMessages, bytes, list[str]]] = {}


def _encoder(schema: pa.Schema) -> tuple[pa.Schema, RowMessages, bytes, list[str]]:
    found = _ENCODERS.get(id(schema))
    if found is None or found[0] is not schema:
        table = (schema.metadata or {}).get(b"table", b"").decode()
        prefix = schema.serialize().to_pybytes()
        found = _ENCODERS[id(schema)] = (schema, RowMessages(schema, table), prefix, schema.names)
    return found


def encode_rows(rows: Iterable[Mapping[str, Any]], schema: pa.Schema) -> bytes:
    """Rows as the Arrow IPC stream a publisher sends (``Publisher.publish_ipc``): the
    order path's tables are built to their schema here, so nothing needs converting.

    One row (a submit, a venue's answer) is packed by ``RowMessages`` with ``struct``:
    ~5-10 µs against ~60-80 µs through an Arrow batch and a stream writer, the same bytes
    (a row with a null goes through pyarrow inside it). Several rows are one batch."""
    rows = rows if isinstance(rows, list) else list(rows)
    _, packer, prefix, names = _encoder(schema)
    if len(rows) == 1:
        get = rows[0].get
        return packer.encode(*[get(name) for name in names])
    return payload_of(to_batch(rows, schema), prefix)


# Per schema (by identity): one getter of every column but ``venue`` and ``in_seq`` (one
# call in C, where a getattr per column cost ~2 µs an event), and those two's positions.
_OutputLayout = tuple[Callable[[Any], tuple[Any, ...]], tuple[tuple[int, str], ...]]
_OUTPUT_LAYOUTS: dict[int, tuple[pa.Schema, _OutputLayout]] = {}


def _output_layout(schema: pa.Schema) -> _OutputLayout:
    found = _OUTPUT_LAYOUTS.get(id(schema))
    if found is None or found[0] is not schema:
        names = schema.names
        getter = attrgetter(*[n for n in names if n not in ("venue", "in_seq")])
        slots = tuple(sorted((names.index(n), n) for n in ("venue", "in_seq")))
        found = _OUTPUT_LAYOUTS[id(schema)] = (schema, (getter, slots))
    return found[1]


def encode_outputs(
    outputs: Sequence[Event] | Sequence[Fill], schema: pa.Schema, venue: str, in_seq: int
) -> bytes:
    """A venue's events (``EVENT_SCHEMA``) or fills (``FILL_SCHEMA``) for one input, as the
    stream ``encode_rows`` makes of their rows, built from the objects' attributes (the
    columns are named as they are) without a row dict each: a mass cancel answers with
    thousands of events at once."""
    _, packer, prefix, _names = _encoder(schema)
    fixed = {"venue": venue, "in_seq": in_seq}
    if len(outputs) <= JOIN_MAX_ROWS:  # an answer to one request, or to a short run
        attributes, slots = _output_layout(schema)
        rows = []
        for one in outputs:
            values = list(attributes(one))
            for at, name in slots:  # by position: each lands where the schema has it
                values.insert(at, fixed[name])
            rows.append(values)
        if len(rows) == 1:
            return packer.encode(*rows[0])
        joined = packer.join(rows)
        if joined is not None:
            return joined
    count = len(outputs)
    arrays = [
        pa.array(
            [fixed[field.name]] * count
            if field.name in fixed
            else list(map(attrgetter(field.name), outputs)),
            type=field.type,
        )
        for field in schema
    ]
    return payload_of(pa.RecordBatch.from_arrays(arrays, schema=schema), prefix)


def warm_up() -> None:
    """Pay the order path's one-time costs at start, not on the first orders: each table's
    one-row packer (built from a message pyarrow writes), and pyarrow's first conversion of
    Python values, which imports pandas (~0.2 s here, which a kill switch's first bulk
    answer, or the first market order's null price, would otherwise wait for)."""
    for schema in (REQUEST_SCHEMA, EVENT_SCHEMA, FILL_SCHEMA, ADMIN_SCHEMA):
        _encoder(schema)
    market = NewOrder("", "", "", Side.BUY, 1, OrdType.MARKET, None)
    read_columns(encode_requests([market]))  # a null: pyarrow builds it
    read_columns(encode_requests([market, market]))


def requests_table(reqs: Iterable[Request]) -> pa.Table:
    """Requests as one ``order_request`` table (a run of them is one message)."""
    return to_table(map(request_row, reqs), REQUEST_SCHEMA)


def encode_requests(reqs: Iterable[Request]) -> bytes:
    reqs = reqs if isinstance(reqs, list) else list(reqs)
    packer = _encoder(REQUEST_SCHEMA)[1]
    if len(reqs) == 1:  # a submit at low load: packed from its values, no row dict
        return packer.encode(*request_values(reqs[0]))
    if len(reqs) <= JOIN_MAX_ROWS:  # a burst: one-row messages joined, no Arrow batch
        joined = packer.join([request_values(r) for r in reqs])
        if joined is not None:
            return joined
    return encode_rows(map(request_row, reqs), REQUEST_SCHEMA)
