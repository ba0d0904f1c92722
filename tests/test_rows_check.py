"""Batch messages of any number of rows checked without a reader (``rows_check``).

A table published as one batch is journaled as it came once its message fits a layout and
its contents pass the same checks as Arrow's full validation. Both implementations, the C
extension and the pure-Python fallback, are held to pyarrow's reader on generated tables
(nulls, empty and non-ASCII strings, no rows) and on corrupted messages: whatever they
accept, the reader accepts, and fully validates, with the same number of rows. And they are
held to each other: the same answer for every message.
"""

from __future__ import annotations

import struct
from typing import Any

import pyarrow as pa
import pyarrow.ipc as ipc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.row_values import use_rowpack, value_of

from tickdb.schema import TableSchema, default_schemas
from tickerplant.ingest import BatchValidator, encode_stream
from tickerplant.rowpack import Implementation, PurePython, RowPacker, compiled
from tickerplant.rows_check import ROWS_OTHER_LAYOUT, ROWS_REFUSED
from tickerplant.splice import END_OF_STREAM

SCHEMAS = default_schemas()
TRADE, ORDER = SCHEMAS["trade"], SCHEMAS["order"]
C: Any = compiled()
IMPLS: list[Any] = [
    pytest.param(PurePython(), id="python"),
    pytest.param(C, id="c", marks=pytest.mark.skipif(C is None, reason="_rowpack not built")),
]
needs_c = pytest.mark.skipif(C is None, reason="tickerplant._rowpack is not built")


def rows_of(schema: pa.Schema, max_size: int = 40) -> st.SearchStrategy[list[tuple]]:
    row = st.tuples(*(st.one_of(st.none(), value_of(f.type)) for f in schema))
    return st.lists(row, max_size=max_size)


def batch_message(schema: pa.Schema, rows: list[tuple]) -> bytes:
    """Rows as ``publish`` sends a table: one batch message (less schema and end marker)."""
    columns = []
    for i, field in enumerate(schema):
        kind = pa.int64() if pa.types.is_timestamp(field.type) else field.type
        columns.append(pa.array([r[i] for r in rows], kind).cast(field.type))
    stream = encode_stream(pa.RecordBatch.from_arrays(columns, schema=schema), schema)
    return stream[len(schema.serialize()) : -len(END_OF_STREAM)]


def read(schema: pa.Schema, message: bytes) -> pa.Table:
    stream = schema.serialize().to_pybytes() + message + END_OF_STREAM
    table = ipc.open_stream(pa.py_buffer(stream)).read_all()
    table.validate(full=True)
    return table


def packer(table: TableSchema, impl: Implementation) -> RowPacker:
    return RowPacker(table.arrow, table.arrow_without_time, impl)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("table", [TRADE, ORDER], ids=["trade", "order"])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_a_valid_batch_of_any_size_is_taken_with_its_rows(
    impl: Implementation, table: TableSchema, data: st.DataObject
) -> None:
    rows = data.draw(rows_of(table.arrow))
    message = batch_message(table.arrow, rows)
    got = packer(table, impl).rows_of(True, memoryview(message))
    # No rows: pyarrow leaves the body length out, so that is another shape, a reader's.
    assert got == len(rows) if rows else got in (0, None)
    assert read(table.arrow, message).num_rows == len(rows)


@needs_c
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=rows_of(TRADE.arrow, 12), data=st.data())
def test_c_and_python_agree_on_every_message(rows: list[tuple], data: Any) -> None:
    good = batch_message(TRADE.arrow, rows)
    one = batch_message(TRADE.arrow, [(1, "A", 1.0, 1)])
    layout = packer(TRADE, PurePython()).layout_for(True, memoryview(one))
    assert layout is not None
    corrupt = bytearray(good)
    for _ in range(data.draw(st.integers(0, 3))):
        at = data.draw(st.integers(0, len(corrupt) - 1))
        corrupt[at] ^= data.draw(st.integers(1, 255))
    for message in (good, bytes(corrupt), good[:-8], good + bytes(8)):
        assert C.check_rows(layout, message) == PurePython().check_rows(layout, message)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("flip", [0x01, 0x80, 0xFF])
def test_every_single_byte_corruption_is_refused_or_valid_to_pyarrow(
    impl: Implementation, flip: int
) -> None:
    rows = [(i, ["A", None, "BCD", "\u00e9t\u00e9", ""][i % 5], 1.5 * i, i) for i in range(11)]
    good = batch_message(TRADE.arrow, rows)
    layout = packer(TRADE, impl).layout_for(True, memoryview(batch_message(TRADE.arrow, rows[:1])))
    assert layout is not None
    assert impl.check_rows(layout, good) == len(rows)
    accepted = 0
    for at in range(len(good)):
        corrupt = bytearray(good)
        corrupt[at] ^= flip
        got = impl.check_rows(layout, bytes(corrupt))
        if got < 0:
            continue
        accepted += 1
        try:
            table = read(TRADE.arrow, bytes(corrupt))
        except (pa.ArrowInvalid, OSError) as exc:
            raise AssertionError(f"byte {at} ^ {flip:#x} accepted, pyarrow says: {exc}") from None
        assert table.num_rows == got, at
    assert accepted > 0  # the values themselves: any bytes of a number are a number


def with_bytes(good: bytes, old: bytes, new: bytes) -> bytes:
    assert len(old) == len(new) and good.count(old) == 1
    return good.replace(old, new)


@pytest.mark.parametrize("impl", IMPLS)
def test_invalid_utf8_is_refused_in_a_value_and_ignored_in_a_null(impl: Implementation) -> None:
    pack = packer(TRADE, impl)
    rows = [(1, "ab", 1.0, 1), (2, "\u00e9\u00e9", 2.0, 2), (3, "cd", 3.0, 3)]
    valid = batch_message(TRADE.arrow, rows)
    assert pack.rows_of(True, memoryview(valid)) == 3
    for bad in (b"\xc3\x28\xc3\xa9", b"\xed\xa0\x80\x41", b"\xc0\xaf\xc3\xa9", b"\x41\xc3\xa9\xc3"):
        corrupt = with_bytes(valid, "\u00e9\u00e9".encode(), bad)
        assert pack.rows_of(True, memoryview(corrupt)) is None
    # A null value's bytes are never read: Arrow does not check them, nor does this.
    sym = pa.Array.from_buffers(
        pa.string(),
        2,
        [
            pa.py_buffer(b"\x01"),
            pa.py_buffer(struct.pack("<3i", 0, 1, 5)),
            pa.py_buffer(b"A\xff\xfe\xfd\xfc"),
        ],
        null_count=1,
    )
    batch = pa.RecordBatch.from_arrays(
        [pa.array([1, 2], pa.timestamp("ns")), sym, pa.array([1.0, 2.0]), pa.array([1, 2])],
        schema=TRADE.arrow,
    )
    null_sym = encode_stream(batch, TRADE.arrow)[len(TRADE.arrow.serialize()) : -8]
    assert read(TRADE.arrow, null_sym).column("sym").to_pylist() == ["A", None]
    assert pack.rows_of(True, memoryview(null_sym)) == 2


@pytest.mark.parametrize("impl", IMPLS)
def test_a_null_count_that_is_not_its_bitmaps_is_refused(impl: Implementation) -> None:
    rows = [(1, None, 1.0, 1), (2, "B", 2.0, 2), (3, None, 3.0, 3)]
    good = batch_message(TRADE.arrow, rows)
    layout = packer(TRADE, impl).layout_for(True, memoryview(batch_message(TRADE.arrow, rows[1:2])))
    assert layout is not None
    assert impl.check_rows(layout, good) == 3
    # The sym field's node is the second (length, null count) pair of the layout's nodes.
    at = 8 * (layout.w_nodes + 3)
    assert struct.unpack_from("<q", good, at)[0] == 2
    for nulls in (1, 3, 4):
        wrong = good[:at] + struct.pack("<q", nulls) + good[at + 8 :]
        assert impl.check_rows(layout, wrong) == ROWS_REFUSED


@pytest.mark.parametrize("impl", IMPLS)
def test_other_shapes_are_other_layouts_or_refused(impl: Implementation) -> None:
    rows = [(i, "S", 1.0, i) for i in range(5)]
    good = batch_message(TRADE.arrow, rows)
    layout = packer(TRADE, impl).layout_for(True, memoryview(batch_message(TRADE.arrow, rows[:1])))
    assert layout is not None
    assert impl.check_rows(layout, good[:16]) == ROWS_OTHER_LAYOUT
    assert impl.check_rows(layout, b"") == ROWS_OTHER_LAYOUT
    assert impl.check_rows(layout, good[:-8]) == ROWS_REFUSED
    assert impl.check_rows(layout, good + bytes(8)) == ROWS_REFUSED
    assert impl.check_rows(layout, good[:-1]) == ROWS_REFUSED
    assert impl.check_rows(layout, good + good) == ROWS_REFUSED  # two batches: a reader's


@pytest.mark.parametrize("pure", [True, False], ids=["python", "c"])
def test_the_validator_journals_a_table_as_it_came(
    pure: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_rowpack(pure, monkeypatch)
    validator = BatchValidator(SCHEMAS, 1 << 20)
    rows = [(i, f"S{i % 7}", 100.0 + i, i) for i in range(1000)]
    prefix = TRADE.arrow.serialize().to_pybytes()
    payload = prefix + batch_message(TRADE.arrow, rows) + END_OF_STREAM
    for _ in range(2):  # the first one teaches the layout
        validated = validator.validate("trade", payload, 0)
        assert validated.num_rows == 1000
        assert bytes(validated.payload) == payload
        assert validated.rows.equals(read(TRADE.arrow, batch_message(TRADE.arrow, rows)))
