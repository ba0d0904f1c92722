"""A rebuild reads many records of a table together (``gateway.replay_rows``): each one's
columns must be exactly what reading it alone gives (``payload_rows.read_columns``)."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.ipc as ipc

from gateway.replay_rows import read_columns_of
from orders.model import CancelRequest, NewOrder, Side
from orders.rows import encode_requests
from tickerplant.payload_rows import read_columns

SCHEMA = pa.schema(
    [
        ("time", pa.timestamp("ns")),
        ("sym", pa.string()),
        ("qty", pa.int64()),
        ("px", pa.float64()),
        ("size", pa.float32()),
        ("flag", pa.uint8()),
    ]
)


def payload(rows: list[dict[str, Any]], batches: int = 1, schema: pa.Schema = SCHEMA) -> bytes:
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, schema) as writer:
        for _ in range(batches):
            writer.write_batch(pa.RecordBatch.from_pylist(rows, schema=schema))
    return sink.getvalue().to_pybytes()


def row(i: int, null: bool = False) -> dict[str, Any]:
    return {
        "time": 1_700_000_000_000_000_000 + i,
        "sym": None if null else f"S{i}",
        "qty": i,
        "px": None if null else i / 3,
        "size": 1.5 * i,
        "flag": i % 2,
    }


def test_records_of_one_row_and_of_many_read_together_are_read_as_alone() -> None:
    payloads = [
        payload([row(1)]),
        payload([row(2), row(3, null=True), row(4)]),
        payload([row(5, null=True)]),
        payload([row(6)], batches=3),  # several batches in one record
        payload([]),  # a batch of no rows
        bytes(encode_requests([NewOrder("A", "S1", "c1", Side.BUY, 10, price=100.0)])),
    ]
    alone = [read_columns(p) for p in payloads]
    assert read_columns_of(payloads) == alone
    # Timestamps as integers, as read alone.
    assert alone[1][1][0] == [1_700_000_000_000_000_000 + i for i in (2, 3, 4)]


def test_order_requests_read_together_equal_each_read_alone() -> None:
    payloads = [
        bytes(encode_requests([NewOrder("A", f"S{i}", f"c{i}", Side.SELL, i + 1, price=10.0)]))
        for i in range(50)
    ]
    payloads.append(bytes(encode_requests([CancelRequest("A", "S1", "x1", "c1")] * 2)))
    assert read_columns_of(payloads) == [read_columns(p) for p in payloads]


def test_a_record_without_batches_or_an_unreadable_one_is_read_alone() -> None:
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, SCHEMA):
        pass
    empty = sink.getvalue().to_pybytes()
    payloads = [payload([row(1)]), empty, payload([row(2)])]
    assert read_columns_of(payloads) == [read_columns(p) for p in payloads]
    assert read_columns_of(payloads)[1] == (SCHEMA.names, [[] for _ in SCHEMA.names])


def test_schemas_that_differ_are_read_record_by_record() -> None:
    other = pa.schema([("sym", pa.string()), ("n", pa.int32())])
    payloads = [payload([row(1)]), payload([{"sym": "X", "n": 7}], schema=other)]
    assert read_columns_of(payloads) == [read_columns(p) for p in payloads]
