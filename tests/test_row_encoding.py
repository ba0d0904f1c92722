"""Single rows in the client, without a tickerplant: checks, buffers, one-row messages.

The one-row message packed by ``tickerplant.row_message`` must be what pyarrow writes,
byte for byte, for every type and with any strings; the buffered rows must become the
batch pyarrow would build from the same values.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.ipc as ipc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tickdb.schema import Q_TO_ARROW, SchemaError, TableSchema, default_schemas
from tickerplant import payload_reader
from tickerplant.ingest import BatchValidator
from tickerplant.onerow import OneRowDecoder
from tickerplant.payload_reader import read_batches, read_table
from tickerplant.row_message import RowMessages, payload_of
from tickerplant.row_values import NotAValue
from tickerplant.row_writer import RowWriter
from tickerplant.table_payload import to_batch

TRADE = default_schemas()["trade"]
# Every q type, in one table.
ALL = TableSchema.from_mapping(
    "every",
    {"time": "timestamp", "sym": "symbol"}
    | {f"c_{q}": q for q in Q_TO_ARROW if q not in ("timestamp", "symbol")},
)
# A table whose column names cannot be Python parameters.
AWKWARD = TableSchema.from_mapping(
    "awkward", {"time": "timestamp", "sym": "symbol", "class": "long", "_tdb_x": "float"}
)

ONE_OF_EACH: dict[str, Any] = {
    "c_string": "naïve 𝄞",
    "c_float": 2.5,
    "c_real": 1.25,
    "c_long": -(2**63),
    "c_int": 2**31 - 1,
    "c_short": -(2**15),
    "c_byte": 255,
    "c_boolean": True,
    "c_date": dt.date(2026, 11, 20),
    "c_timespan": dt.timedelta(hours=1, microseconds=5),
    "c_time": dt.time(9, 30, 0, 250_000),
    "c_second": dt.time(16, 0, 1),
    "c_guid": uuid.UUID(int=12345),
}


def buffered(schema: TableSchema) -> RowWriter:
    return RowWriter(schema, limit=1_000_000, on_full=lambda: None)


def sent(schema: TableSchema) -> tuple[RowWriter, list[bytes]]:
    out: list[bytes] = []
    return RowWriter(schema, send=out.append), out


def arrow_message(schema: pa.Schema, values: list[Any]) -> bytes:
    arrays = [pa.array([v], type=f.type) for v, f in zip(values, schema, strict=True)]
    batch = pa.RecordBatch.from_arrays(arrays, schema=schema)
    return payload_of(batch, schema.serialize().to_pybytes())


text = st.text(st.characters(codec="utf-8"), max_size=20)


@settings(max_examples=300, deadline=None)
@given(
    sym=st.one_of(st.none(), text),
    price=st.one_of(st.none(), st.floats(allow_nan=False)),
    size=st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)),
    time=st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)),
)
def test_packed_message_is_what_pyarrow_writes(
    sym: str | None, price: float | None, size: int | None, time: int | None
) -> None:
    schema = TRADE.arrow if time is not None else TRADE.arrow_without_time
    values = [sym, price, size] if time is None else [time, sym, price, size]
    assert RowMessages(schema, "trade").encode(*values) == arrow_message(schema, values)


def test_a_run_of_packed_rows_takes_the_tickerplants_one_row_decoder() -> None:
    validator = BatchValidator({"trade": TRADE}, 1 << 20)
    messages = RowMessages(TRADE.arrow_without_time, "trade")
    payloads = [messages.encode(f"S{i}" * (i % 4), float(i), i) for i in range(40)]
    spans = []
    for payload in payloads:
        spliceable = validator.spliceable(b"trade", memoryview(payload))
        assert spliceable is not None and spliceable[0] is False  # untimed, canonical
        spans.append(spliceable[1])
    decoded = OneRowDecoder(TRADE.arrow_without_time).decode(spans, [len(s) for s in spans])
    assert decoded is not None  # not the reader's fallback
    assert decoded.column("size").to_pylist() == list(range(40))
    assert decoded.column("sym").to_pylist() == [f"S{i}" * (i % 4) for i in range(40)]


def test_every_type_packs_as_pyarrow_writes_it() -> None:
    writer, out = sent(ALL)
    writer.kw(sym="A", time=dt.datetime(2026, 1, 2, 3, 4, 5, 6), **ONE_OF_EACH)
    writer.kw(sym="B", **{name: None for name in ONE_OF_EACH})
    first, second = (read_table(payload) for payload in out)
    assert first.schema == ALL.arrow and second.schema == ALL.arrow_without_time
    row = first.to_pylist()[0]
    assert row["time"] == dt.datetime(2026, 1, 2, 3, 4, 5, 6)
    for name, value in ONE_OF_EACH.items():
        expected = value.bytes if isinstance(value, uuid.UUID) else value
        assert row[name] == expected, name
    assert all(v is None for k, v in second.to_pylist()[0].items() if k != "sym")
    # The same bytes as pyarrow's for the same values (booleans go through pyarrow).
    values = [first.column(i)[0].as_py() for i in range(first.num_columns)]
    assert out[0] == arrow_message(ALL.arrow, values)
    without_bool = TableSchema("t", tuple(c for c in ALL.columns if c.qtype != "boolean"))
    messages = RowMessages(without_bool.arrow, "t")
    assert messages.packed
    kept = [v for v, c in zip(values, ALL.columns, strict=True) if c.qtype != "boolean"]
    assert messages.encode(*kept) == arrow_message(without_bool.arrow, kept)


def test_buffered_rows_become_the_batch_pyarrow_builds() -> None:
    writer = buffered(ALL)
    writer.kw(sym="A", **ONE_OF_EACH)
    writer.tup(("B", *[None] * len(ONE_OF_EACH)))
    writer.kw(sym="C", **ONE_OF_EACH)
    [batch] = writer.take()
    assert batch.schema == ALL.arrow_without_time
    assert batch.column("sym").to_pylist() == ["A", "B", "C"]
    assert batch.column("c_guid").to_pylist() == [uuid.UUID(int=12345).bytes, None] * 1 + [
        uuid.UUID(int=12345).bytes
    ]
    assert writer.pending == 0 and writer.take() == []


def test_the_three_row_forms_and_time_rules() -> None:
    writer = buffered(TRADE)
    writer.kw(sym="A", price=1.0, size=1)
    writer.tup(("B", 2, 2))  # an int for a float column is a float
    writer.kw(**{"sym": "C", "price": 3.0, "size": 3, "time": None})  # None: stamped by the TP
    when = dt.datetime(2026, 3, 4, 5, 6, 7, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    writer.tup([pd.Timestamp("2026-03-04 03:06:07.000000001"), "D", np.float64(4), np.int32(4)])
    writer.kw(sym="E", price=5.0, size=5, time=when)
    untimed, timed = writer.take()
    assert untimed.to_pylist() == [
        {"sym": s, "price": float(i), "size": i} for i, s in enumerate("ABC", 1)
    ]
    assert timed.column("time").cast(pa.int64()).to_pylist() == [
        1772593567000000001,
        1772593567000000000,
    ]
    assert timed.column("price").type == pa.float64()


def test_a_switch_between_rows_with_and_without_time_flushes_first() -> None:
    flushed: list[list[int]] = []

    def flush() -> None:
        flushed.append([v for b in writer.take() for v in b.column("size").to_pylist()])

    writer = RowWriter(TRADE, limit=1000, on_full=flush)
    writer.kw(sym="A", price=1.0, size=1)
    writer.kw(sym="A", price=1.0, size=2, time=5)  # the untimed row goes first
    writer.kw(sym="A", price=1.0, size=3, time=6)
    writer.kw(sym="A", price=1.0, size=4)
    assert flushed == [[1], [2, 3]]


def test_the_size_limit_calls_on_full() -> None:
    calls: list[int] = []
    writer = RowWriter(TRADE, limit=3, on_full=lambda: calls.append(len(writer.take())))
    for i in range(7):
        writer.tup(("A", 1.0, i))
    assert calls == [1, 1] and writer.pending == 1


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"sym": "A", "price": "cheap", "size": 1}, "column 'price' is float: it takes a float"),
        ({"sym": 7, "price": 1.0, "size": 1}, "column 'sym' is symbol"),
        ({"sym": "A", "price": 1.0, "size": 1.5}, "column 'size' is long: it takes an integer"),
        ({"sym": "A", "price": 1.0, "size": True}, "column 'size' is long"),
        ({"sym": "A", "price": 1.0, "size": 2**63}, "got int 9223372036854775808"),
        ({"sym": "\ud800", "price": 1.0, "size": 1}, "column 'sym'"),
        ({"sym": "A", "price": 1.0, "size": 1, "time": "09:30"}, "column 'time' is timestamp"),
    ],
)
def test_a_wrong_value_is_refused_before_anything_is_buffered_or_sent(
    row: dict[str, Any], message: str
) -> None:
    writer = buffered(TRADE)
    with pytest.raises(SchemaError, match=message):
        writer.kw(**row)
    with pytest.raises(SchemaError, match=message):
        writer.tup(tuple(row.get(k) for k in ("time", "sym", "price", "size") if k in row))
    assert writer.pending == 0
    immediate, out = sent(TRADE)
    with pytest.raises(SchemaError, match=message):
        immediate.kw(**row)
    assert out == []


def test_names_that_do_not_fit_are_named() -> None:
    writer = buffered(TRADE)
    rows: list[tuple[dict[Any, Any], str]] = [
        ({"sym": "A", "price": 1.0, "size": 1, "colour": "red"}, r"unknown columns \['colour'\]"),
        ({"sym": "A", "price": 1.0, "colour": "red"}, r"unknown columns \['colour'\]"),
        ({"sym": "A", "price": 1.0, "size": 1, "time": 1, "x": 2}, r"unknown columns \['x'\]"),
        ({"sym": "A", "price": 1.0}, r"missing columns \['size'\]"),
        ({"sym": "A", "price": 1.0, "time": 5}, r"missing columns \['size'\]"),
        ({"sym": "A", "price": 1.0, "size": 1, 7: 1}, r"unknown columns \['7'\]"),
    ]
    for row, message in rows:
        with pytest.raises(SchemaError, match=f"table 'trade': {message}"):
            writer.row(row)
    with pytest.raises(SchemaError, match="a row needs 3 values"):
        writer.tup(("A", 1.0))
    assert writer.pending == 0


def test_a_container_is_not_a_value() -> None:
    writer = buffered(TRADE)
    with pytest.raises(NotAValue):
        writer.kw(sym=["A", "B"], price=[1.0, 2.0], size=[1, 2])
    with pytest.raises(NotAValue):
        writer.kw(sym="A", price=np.array([1.0]), size=1)
    assert writer.pending == 0


def test_columns_that_are_not_python_names_work_too() -> None:
    for writer in (buffered(AWKWARD), sent(AWKWARD)[0]):
        writer.kw(**{"sym": "A", "class": 1, "_tdb_x": 2.0})
        writer.tup(("B", 2, 3.0))
        with pytest.raises(SchemaError, match=r"unknown columns \['klass'\]"):
            writer.kw(**{"sym": "A", "klass": 1, "_tdb_x": 2.0})
    [batch] = buffered_rows(AWKWARD, [("A", 1, 2.0)])
    assert batch.to_pylist() == [{"sym": "A", "class": 1, "_tdb_x": 2.0}]


def buffered_rows(schema: TableSchema, rows: list[tuple[Any, ...]]) -> list[pa.RecordBatch]:
    writer = buffered(schema)
    for row in rows:
        writer.tup(row)
    return writer.take()


def test_tables_are_used_as_they_are_and_converted_only_when_they_must() -> None:
    table = pa.table({"sym": ["A", "B"], "price": [1.0, 2.0], "size": [1, 2]})
    batch = to_batch(table, TRADE)
    assert batch.schema == TRADE.arrow_without_time  # metadata aside: it is not sent
    # No copy: the batch's buffers are the table's.
    assert batch.column(1).buffers()[1].address == table.column(1).chunk(0).buffers()[1].address
    converted = to_batch({"sym": np.array(["A"]), "price": np.array([1]), "size": [7]}, TRADE)
    assert converted.to_pylist() == [{"sym": "A", "price": 1.0, "size": 7}]
    chunked = pa.concat_tables([table, table])
    assert to_batch(chunked, TRADE).num_rows == 4
    with pytest.raises(SchemaError, match="column 'price' is float"):
        to_batch({"sym": ["A"], "price": ["cheap"], "size": [1]}, TRADE)
    with pytest.raises(SchemaError, match=r"unknown columns \['colour'\]"):
        to_batch(table.append_column("colour", pa.array(["r", "g"])), TRADE)
    with pytest.raises(SchemaError, match=r"missing columns \['size'\]"):
        to_batch(table.drop_columns(["size"]), TRADE)


def test_payloads_read_back_without_a_stream_reader(monkeypatch: pytest.MonkeyPatch) -> None:
    table = pa.table({"sym": ["A", "B"], "price": [1.0, 2.0], "size": [1, 2]})
    batch = to_batch(table, TRADE)
    prefix = TRADE.arrow_without_time.serialize().to_pybytes()
    payload = payload_of(batch, prefix)
    with monkeypatch.context() as patched:
        patched.setattr(payload_reader, "_with_reader", None)  # the fast path, or a failure
        for form in (payload, memoryview(payload), pa.py_buffer(payload)):
            assert read_batches(form) == [batch]
        # Several batches behind one schema (as the tickerplant joins big ones).
        spliced = prefix + batch.serialize().to_pybytes() * 2 + b"\xff\xff\xff\xff\0\0\0\0"
        assert [b.num_rows for b in read_batches(spliced)] == [2, 2]
    # A stream another writer wrote (no cached schema bytes in common): still read.
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, table.schema) as out:
        out.write_table(table)
    assert read_table(sink.getvalue()).equals(table)
