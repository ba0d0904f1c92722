"""``tickerplant.payload_rows`` reads what pyarrow reads, and the order path's one-row
encoding (``orders.rows.encode_rows``) writes what pyarrow's stream writer writes."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow as pa
import pyarrow.ipc as ipc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orders.book import MatchingEngine
from orders.model import CancelRequest, Event, MassCancel, NewOrder, OrdType, Side, TimeInForce
from orders.rows import (
    EVENT_SCHEMA,
    FILL_SCHEMA,
    REQUEST_SCHEMA,
    Request,
    encode_requests,
    encode_rows,
    event_row,
    fill_row,
    request_row,
    to_batch,
)
from tickdb.schema import default_schemas
from tickerplant import payload_rows
from tickerplant.ingest import encode_stream
from tickerplant.payload_rows import read_columns, read_one_row_column, read_rows

ORDER = default_schemas()["order"].arrow  # with time, as a subscriber gets it


def _stream(*batches: pa.RecordBatch, schema: pa.Schema, **options: Any) -> bytes:
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, schema, options=ipc.IpcWriteOptions(**options)) as writer:
        for batch in batches:
            writer.write_batch(batch)
    return sink.getvalue().to_pybytes()


def _expected(payload: bytes) -> list[dict[str, Any]]:
    """pyarrow's rows, timestamps as integers (as ``read_rows`` gives them)."""
    table = ipc.open_stream(payload).read_all()
    columns = {
        name: (col.cast(pa.int64()) if pa.types.is_timestamp(col.type) else col).to_pylist()
        for name, col in zip(table.column_names, table.columns, strict=True)
    }
    rows = zip(*columns.values(), strict=True)
    return [dict(zip(columns, values, strict=True)) for values in rows]


def _flow() -> tuple[list[Any], list[Any]]:
    engine = MatchingEngine(id_prefix="V0-")
    out = engine.new(NewOrder("A1", "AAPL", "b1", Side.BUY, 10, price=1.00, strategy="é"))
    out += engine.new(NewOrder("A2", "AAPL", "s1", Side.SELL, 4, price=1.00))
    out += engine.new(NewOrder("A2", "AAPL", "s2", Side.SELL, 1, OrdType.MARKET, None))
    out += engine.cancel(CancelRequest("A1", "AAPL", "x1", "nope"))
    out += engine.mass_cancel(MassCancel(account="A1"))
    events = [event_row(o, "0/1", 7) for o in out if isinstance(o, Event)]
    fills = [fill_row(o, "0/1", 7) for o in out if not isinstance(o, Event)]
    return events, fills


def test_one_row_encoding_is_the_stream_writers() -> None:
    events, fills = _flow()
    reqs: list[Request] = [
        NewOrder("A1", "AAPL", "c1", Side.BUY, 10, OrdType.LIMIT, 1.25, TimeInForce.GTC, "s"),
        NewOrder("A1", "AAPL", "c2", Side.SELL, 5, OrdType.MARKET, None, TimeInForce.IOC),
        CancelRequest("A1", "AAPL", "c3", "c1"),
        MassCancel(account="A1", clordid="m1"),
    ]
    for rows, schema in (
        *(([row], EVENT_SCHEMA) for row in events),
        *(([row], FILL_SCHEMA) for row in fills),
        *(([request_row(r)], REQUEST_SCHEMA) for r in reqs),
        (events, EVENT_SCHEMA),
        ([request_row(r) for r in reqs], REQUEST_SCHEMA),
    ):
        assert encode_rows(rows, schema) == encode_stream(to_batch(rows, schema), schema)
    assert encode_requests(reqs) == encode_stream(
        to_batch(map(request_row, reqs), REQUEST_SCHEMA), REQUEST_SCHEMA
    )


def test_reads_the_order_flow_as_pyarrow_does(monkeypatch: pytest.MonkeyPatch) -> None:
    events, fills = _flow()
    for rows, schema in ((events, EVENT_SCHEMA), (fills, FILL_SCHEMA)):
        payload = encode_rows(rows, schema)  # many rows: pyarrow's columns
        assert read_rows(payload) == _expected(payload) == [dict(r) for r in rows]
    # One row is read without pyarrow, nulls too (a market order's price).
    monkeypatch.setattr(payload_rows, "_read_with_pyarrow", None)
    assert any(r["price"] is None for r in events)
    for row, schema in [*((r, EVENT_SCHEMA) for r in events), *((r, FILL_SCHEMA) for r in fills)]:
        payload = encode_rows([row], schema)
        assert read_rows(payload) == _expected(payload) == [dict(row)]


def _stamped(events: list[dict[str, Any]]) -> pa.RecordBatch:
    batch = to_batch(events, EVENT_SCHEMA)
    stamps = pa.array(range(batch.num_rows), pa.timestamp("ns"))
    return pa.RecordBatch.from_arrays([stamps, *batch.columns], schema=ORDER)


def test_stamped_streams_of_one_row_batches_and_longer() -> None:
    events, _ = _flow()
    stamped = _stamped(events)
    n = stamped.num_rows
    singles = _stream(*(stamped.slice(i, 1) for i in range(n)), schema=ORDER)
    assert read_rows(singles) == _expected(singles)
    assert payload_rows._read(singles)[1] == read_columns(singles)[1]  # not pyarrow's
    names, columns = read_columns(singles)
    assert names == ORDER.names and columns[0] == list(range(n))  # the stamps, as integers
    mixed = _stream(stamped.slice(0, 1), stamped.slice(2), stamped.slice(1, 1), schema=ORDER)
    with pytest.raises(payload_rows._Fallback):
        payload_rows._read(mixed)
    assert read_one_row_column(mixed, "sym") is None
    assert read_one_row_column(singles, "sym") == [e["sym"] for e in events]
    assert read_one_row_column(singles, "time") == list(range(n))
    rows = read_rows(mixed)
    assert rows == _expected(mixed) and len(rows) == n


def test_a_buffer_outside_its_body_is_left_to_pyarrow() -> None:
    events, _ = _flow()
    good = encode_rows(events[:1], EVENT_SCHEMA)
    assert payload_rows._read(good)[1] == [[v] for v in events[0].values()]
    # Find the batch's buffers vector as the reader does, and move one buffer far away.
    meta = 8 + int.from_bytes(good[4:8], "little") + 8
    root = meta + int.from_bytes(good[meta : meta + 4], "little")
    header = payload_rows._field(good, root, 2)
    batch = header + int.from_bytes(good[header : header + 4], "little")
    buffers, _ = payload_rows._vector(good, payload_rows._field(good, batch, 2))
    bad = bytearray(good)
    bad[buffers + 16 : buffers + 24] = (1 << 20).to_bytes(8, "little")  # buffer 1's offset
    with pytest.raises(payload_rows._Fallback):
        payload_rows._read(bytes(bad))
    assert read_one_row_column(bytes(bad), "sym") is None
    with pytest.raises((pa.ArrowException, OSError)):
        read_rows(bytes(bad))


def test_what_it_does_not_read_pyarrow_does() -> None:
    schema = pa.schema(
        [
            ("flag", pa.bool_()),
            ("day", pa.date32()),
            ("time", pa.timestamp("ns")),
            ("x", pa.int64()),
        ]
    )
    table = pa.table(
        {
            "flag": [True, None],
            "day": [dt.date(2024, 1, 2), None],
            "time": pa.array([1, None], pa.timestamp("ns")),
            "x": [1, 2],
        },
        schema=schema,
    )
    payload = _stream(*table.to_batches(), schema=schema)
    assert read_rows(payload) == _expected(payload)
    events, _ = _flow()
    batch = to_batch(events, EVENT_SCHEMA)
    compressed = _stream(batch, schema=EVENT_SCHEMA, compression="zstd")
    assert read_rows(compressed) == _expected(compressed)
    empty = _stream(schema=EVENT_SCHEMA)
    assert read_rows(empty) == [] and read_columns(empty)[0] == EVENT_SCHEMA.names


def test_a_broken_payload_raises() -> None:
    events, _ = _flow()
    payload = encode_rows(events[:1], EVENT_SCHEMA)
    with pytest.raises((pa.ArrowException, OSError)):
        read_rows(payload[: len(payload) // 2 + 3])


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.one_of(st.none(), st.text(max_size=12)),
            st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)),
            st.one_of(st.none(), st.floats(allow_nan=False)),
            st.one_of(st.none(), st.integers(0, 2**62)),
        ),
        max_size=20,
    ),
    st.integers(0, 5),
)
def test_random_tables_read_as_pyarrow_reads(rows: list[tuple[Any, ...]], cut: int) -> None:
    schema = pa.schema(
        [("s", pa.string()), ("q", pa.int64()), ("f", pa.float64()), ("t", pa.timestamp("ns"))]
    )
    columns = [list(c) for c in zip(*rows, strict=True)] if rows else [[], [], [], []]
    batch = pa.RecordBatch.from_arrays(
        [pa.array(c, type=f.type) for c, f in zip(columns, schema, strict=True)], schema=schema
    )
    payload = _stream(batch.slice(0, cut), batch.slice(cut), schema=schema)
    assert read_rows(payload) == _expected(payload)
    singles = _stream(*(batch.slice(i, 1) for i in range(batch.num_rows)), schema=schema)
    assert payload_rows._read(singles) == read_columns(singles)
    assert read_rows(singles) == _expected(singles)
    # One column alone (the tickerplant's topic filter), only of one-row batches.
    names, values = read_columns(singles)
    for name, column in zip(names, values, strict=True):
        assert read_one_row_column(singles, name) == column
    assert read_one_row_column(singles, "absent") is None
    first = min(cut, batch.num_rows)  # the two batches' rows: one each, or not read here
    one_each = (first, batch.num_rows - first) == (1, 1)
    assert (read_one_row_column(payload, "s") is not None) == one_each
