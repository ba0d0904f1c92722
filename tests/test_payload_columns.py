"""A record's columns read in C (``tickerplant.payload_columns``), held to pyarrow's reader.

Generated batches of every column type it reads (nulls, empty and non-ASCII strings, any
number of rows) read as pyarrow reads them; a corrupted batch is either read as pyarrow
reads it or left to the other readers (None), never read otherwise; what it does not read
(several batches, other types, no extension) is None and ``read_columns`` still reads it.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.ipc as ipc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orders.model import Event, EventType, OrdStatus, Side
from orders.rows import EVENT_SCHEMA, encode_outputs
from tickdb.schema import default_schemas
from tickerplant import payload_columns, payload_rows
from tickerplant.payload_rows import _read_with_pyarrow, read_columns
from tickerplant.rowpack import compiled

pytestmark = pytest.mark.skipif(compiled() is None, reason="tickerplant._rowpack is not built")

SCHEMA = pa.schema(
    [
        ("time", pa.timestamp("ns")),
        ("s", pa.string()),
        ("q", pa.int64()),
        ("d", pa.float64()),
        ("f", pa.float32()),
        ("i", pa.int32()),
        ("h", pa.int16()),
        ("b", pa.uint8()),
    ],
    metadata={"table": "test"},
)
VALUES = [
    st.integers(0, 2**62),
    st.text(max_size=8),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(),
    st.floats(width=32),
    st.integers(-(2**31), 2**31 - 1),
    st.integers(-(2**15), 2**15 - 1),
    st.integers(0, 255),
]
ROWS = st.lists(st.tuples(*(st.one_of(st.none(), v) for v in VALUES)), max_size=20)


def stream(rows: list[tuple[Any, ...]], schema: pa.Schema = SCHEMA) -> bytes:
    """One batch of ``rows``, as a record's payload holds it."""
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(schema)
    batch = pa.RecordBatch.from_arrays(
        [pa.array(list(c), type=f.type) for c, f in zip(columns, schema, strict=True)],
        schema=schema,
    )
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, schema) as writer:
        writer.write_batch(batch)
    return sink.getvalue().to_pybytes()


def same(a: Any, b: Any) -> bool:
    return repr(a) == repr(b)  # NaN included


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=ROWS)
def test_a_batch_reads_as_pyarrow_reads_it(rows: list[tuple[Any, ...]]) -> None:
    payload = stream(rows)
    got = payload_columns.read(payload)
    if rows:  # an empty batch's layout is not learned from: pyarrow reads that
        assert got is not None
        assert same(got, _read_with_pyarrow(payload))
    assert same(read_columns(payload), _read_with_pyarrow(payload))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=ROWS.filter(bool), data=st.data())
def test_a_corrupted_batch_is_read_as_pyarrow_reads_it_or_left(
    rows: list[tuple[Any, ...]], data: st.DataObject
) -> None:
    payload = bytearray(stream(rows))
    schema_end = 8 + int.from_bytes(payload[4:8], "little")
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(schema_end, len(payload) - 9))  # the batch message
        payload[at] ^= data.draw(st.integers(1, 255))
    got = payload_columns.read(bytes(payload))
    if got is not None:
        reader = ipc.open_stream(pa.py_buffer(bytes(payload)))
        table = reader.read_all()
        table.validate(full=True)
        assert same(got, _read_with_pyarrow(bytes(payload)))


def test_the_order_flow_is_read_in_c() -> None:
    events = [
        Event(
            EventType.ACCEPTED,
            f"V{k}",
            "A1",
            "AAPL",
            f"c{k}",
            Side.BUY,
            OrdStatus.NEW,
            10,
            None,
            0,
            10,
            0.0,
        )
        for k in range(3)
    ]
    for n in (1, 3):
        payload = encode_outputs(events[:n], EVENT_SCHEMA, "0/2", 7)
        got = payload_columns.read(payload)
        assert got is not None and same(got, _read_with_pyarrow(payload))


def test_what_it_does_not_read_is_left_to_the_other_readers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rows = [(1, "a", 1, 1.0, 1.0, 1, 1, 1), (2, "b", None, 2.0, 2.0, 2, 2, 2)]
    one = stream(rows)
    schema_end = 8 + int.from_bytes(one[4:8], "little")
    # Two batch messages: not one batch.
    two = one[:-8] + stream(rows)[schema_end:]
    assert payload_columns.read(two) is None
    assert same(read_columns(two), _read_with_pyarrow(two))
    # A column type it does not read.
    flags = pa.schema([("flag", pa.bool_()), ("x", pa.int64())])
    other = stream([(True, 1)], flags)
    assert payload_columns.read(other) is None
    assert read_columns(other) == (["flag", "x"], [[True], [1]])
    # Not a stream at all, or cut short.
    assert payload_columns.read(b"\x00" * 64) is None
    assert payload_columns.read(one[: len(one) // 2]) is None
    # Without the extension (the pure-Python fallback): the other readers, the same values.
    monkeypatch.setattr(payload_columns, "_compiled", lambda: None)
    assert payload_columns.read(one) is None
    assert same(read_columns(one), _read_with_pyarrow(one))


def test_a_schema_message_not_as_pyarrow_writes_it_is_left_to_pyarrow() -> None:
    """Only a schema message byte for byte as pyarrow writes it is read here: another
    writer's (here pyarrow's own, with the older metadata version) or one declaring
    big-endian data, whose values pyarrow swaps as it reads, goes to pyarrow."""
    rows = [(1, "a", 1, 1.0, 1.0, 1, 1, 1)]
    sink = pa.BufferOutputStream()
    options = ipc.IpcWriteOptions(metadata_version=ipc.MetadataVersion.V4)
    with ipc.new_stream(sink, SCHEMA, options=options) as writer:
        writer.write_batch(
            pa.RecordBatch.from_pylist([dict(zip(SCHEMA.names, rows[0], strict=True))], SCHEMA)
        )
    older = sink.getvalue().to_pybytes()
    assert older[:100] != stream(rows)[:100]
    assert payload_columns.read(older) is None
    assert same(read_columns(older), _read_with_pyarrow(older))
    # The trade table's schema message with three bytes changed (found by the fuzzer):
    # pyarrow reads it as the same schema, big-endian.
    trade = default_schemas()["trade"].arrow
    canonical = trade.serialize().to_pybytes()
    big = bytearray(canonical)
    for at, value in ((40, 0), (42, 128), (467, 61)):
        big[at] = value
    try:
        parsed = ipc.read_schema(pa.py_buffer(bytes(big)))
    except (pa.ArrowException, ValueError):
        pytest.skip("this pyarrow lays the schema message out otherwise")
    if parsed.names != trade.names or parsed.serialize().to_pybytes() == bytes(big):
        pytest.skip("this pyarrow lays the schema message out otherwise")
    one = stream([(0, "A", 1, 1.5, 1.0, 1, 1, 1)])
    batch = pa.RecordBatch.from_pylist([{"time": 0, "sym": "A", "price": 1.5, "size": 0}], trade)
    payload = bytes(big) + batch.serialize().to_pybytes() + one[-8:]
    assert payload_columns.read(payload) is None
    with pytest.raises(payload_rows._Fallback):
        payload_rows._read(payload)


def test_a_field_name_that_is_not_utf8_is_left_to_pyarrow() -> None:
    """Found by the fuzzer: reading the names raised instead of leaving the payload."""
    schema = pa.schema([("zq", pa.int64())])
    good = stream([(1,)], schema)
    bad = good.replace(b"zq", b"\xe4q", 1)
    assert bad != good
    assert payload_columns.read(bad) is None
    with pytest.raises((pa.ArrowException, ValueError, OSError)):
        read_columns(bad)


def test_an_unaligned_buffer_is_left_to_pyarrow() -> None:
    """Found by the fuzzer: the one-row reader read a buffer pyarrow refuses, one at an
    offset that is not a multiple of 8."""
    payload = _one_event()
    meta = 8 + int.from_bytes(payload[4:8], "little") + 8
    root = meta + int.from_bytes(payload[meta : meta + 4], "little")
    header = payload_rows._field(payload, root, 2)
    batch = header + int.from_bytes(payload[header : header + 4], "little")
    buffers, _ = payload_rows._vector(payload, payload_rows._field(payload, batch, 2))
    # The data buffer of the first fixed-width column (``price``): a string column has
    # three buffers (validity, offsets, characters), a fixed-width one two.
    first_fixed = next(i for i, f in enumerate(EVENT_SCHEMA) if f.type != pa.string())
    at = buffers + 16 * (3 * first_fixed + 1)
    bad = bytearray(payload)
    offset = int.from_bytes(bad[at : at + 8], "little")
    bad[at : at + 8] = (offset + 1).to_bytes(8, "little")
    with pytest.raises(payload_rows._Fallback):
        payload_rows._read(bytes(bad))
    assert payload_columns.read(bytes(bad)) is None
    with pytest.raises((pa.ArrowException, OSError)):
        read_columns(bytes(bad))


def _one_event() -> bytes:
    events = [
        Event(
            EventType.ACCEPTED,
            "V1",
            "A1",
            "AAPL",
            "c1",
            Side.BUY,
            OrdStatus.NEW,
            10,
            1.5,
            0,
            10,
            0.0,
        )
    ]
    return encode_outputs(events, EVENT_SCHEMA, "0/2", 7)
