"""Runs whose messages hold several rows each, packed into one batch (``tickerplant.rowpack``).

A gateway sends a burst of order requests as one batch message, a venue its answers to
them, both without ``time``: the tickerplant stamps them by packing, as it does one-row
messages, instead of reading them with pyarrow and writing them again. The C extension
packs them; the pure-Python reference (``PurePython(many_rows=True)``) is held to it byte
for byte, and both to what pyarrow writes for the same rows. The fallback
(``PurePython()``) leaves them to pyarrow's reader: the same bytes, which the tickerplant's
validator shows whichever path it takes.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.ipc as ipc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.row_values import use_rowpack, value_of

from orders.model import NewOrder, OrdType, Side
from orders.rows import encode_requests
from tickdb.schema import TableSchema, default_schemas
from tickerplant.ingest import BatchValidator, IngestError, _stamped, encode_rows, encode_stream
from tickerplant.rowpack import PurePython, RowPacker, compiled
from tickerplant.splice import END_OF_STREAM

SCHEMAS = default_schemas()
TRADE, ORDER = SCHEMAS["trade"], SCHEMAS["order"]
C: Any = compiled()
needs_c = pytest.mark.skipif(C is None, reason="tickerplant._rowpack is not built")
STAMP = 1_790_000_000_123_456_789


def batches_of(schema: pa.Schema) -> st.SearchStrategy[list[list[tuple]]]:
    """A run: 1-5 messages of 1-6 rows each, with nulls, empty and non-ASCII strings."""
    row = st.tuples(*(st.one_of(st.none(), value_of(f.type)) for f in schema))
    return st.lists(st.lists(row, min_size=1, max_size=6), min_size=1, max_size=5)


def message(schema: pa.Schema, rows: list[tuple]) -> bytes:
    """Rows as one batch message, as a publisher sends a table (less the schema message and
    the end marker)."""
    columns = [
        pa.array([r[i] for r in rows], pa.int64() if pa.types.is_timestamp(f.type) else f.type)
        for i, f in enumerate(schema)
    ]
    columns = [c.cast(f.type) for c, f in zip(columns, schema, strict=True)]
    stream = encode_stream(pa.RecordBatch.from_arrays(columns, schema=schema), schema)
    return stream[len(schema.serialize()) : -len(END_OF_STREAM)]


def what_pyarrow_reads(table: TableSchema, timed: bool, messages: list[bytes]) -> pa.Table:
    """The run as pyarrow's reader takes it, checked in full."""
    schema = table.arrow if timed else table.arrow_without_time
    stream = schema.serialize().to_pybytes() + b"".join(messages) + END_OF_STREAM
    read = ipc.open_stream(pa.py_buffer(stream)).read_all()
    read.validate(full=True)
    return read.combine_chunks()


def what_pyarrow_writes(table: TableSchema, timed: bool, messages: list[bytes]) -> bytes:
    """The run read by pyarrow's reader and written as the tickerplant journals it."""
    rows = what_pyarrow_reads(table, timed, messages)
    prefix = table.arrow.serialize().to_pybytes()
    if timed:
        return encode_rows(rows, prefix)
    return bytes(_stamped(rows, table, STAMP, prefix).payload)


def packer(table: TableSchema, impl: Any, timed: bool, first_row: tuple) -> RowPacker:
    """A packer that has learned the writer's layout from a one-row message, as the
    tickerplant does from a publisher's first."""
    pack = RowPacker(table.arrow, table.arrow_without_time, impl)
    schema = table.arrow if timed else table.arrow_without_time
    assert pack.layout_for(timed, memoryview(message(schema, [first_row]))) is not None
    return pack


@needs_c
@pytest.mark.parametrize("table", [TRADE, ORDER], ids=["trade", "order"])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), timed=st.booleans())
def test_a_run_of_batches_is_what_pyarrow_writes_in_c_and_python_alike(
    table: TableSchema, data: st.DataObject, timed: bool
) -> None:
    schema = table.arrow if timed else table.arrow_without_time
    batches = data.draw(batches_of(schema))
    messages = [message(schema, rows) for rows in batches]
    views = [memoryview(m) for m in messages]
    packed = packer(table, C, timed, batches[0][0]).pack(timed, views, STAMP)
    reference = packer(table, PurePython(many_rows=True), timed, batches[0][0])
    assert packed is not None
    assert packed == reference.pack(timed, views, STAMP)
    assert packed == what_pyarrow_writes(table, timed, messages)
    assert reference.packed_rows(packed) == sum(len(rows) for rows in batches)
    # The fallback packs none of it when a message holds several rows.
    fallback = packer(table, PurePython(), timed, batches[0][0]).pack(timed, views, STAMP)
    assert fallback == (packed if all(len(rows) == 1 for rows in batches) else None)


@needs_c
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches=batches_of(TRADE.arrow), data=st.data())
def test_a_corrupted_batch_gets_the_same_verdict_and_bytes_in_c_and_python(
    batches: list[list[tuple]], data: st.DataObject
) -> None:
    messages = [bytearray(message(TRADE.arrow, rows)) for rows in batches]
    victim = data.draw(st.integers(0, len(messages) - 1))
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(messages[victim]) - 1))
        messages[victim][at] ^= data.draw(st.integers(1, 255))
    views = [memoryview(bytes(m)) for m in messages]
    c = packer(TRADE, C, True, batches[0][0])
    python = packer(TRADE, PurePython(many_rows=True), True, batches[0][0])
    assert c.output is not None and c.output == python.output
    layout = python._layouts[True][0]
    packed = C.pack(c.output, layout, c.prefix, views, None)
    assert packed == PurePython(many_rows=True).pack(c.output, layout, c.prefix, views, None)
    if packed is not None:  # whatever is packed reads as the corrupted messages do
        # Rows, not bytes: a corrupted buffer length that still covers the values (a
        # validity bitmap said to be 3 bytes long, not 1, its padding) is a valid message
        # pyarrow writes back as it came, where the packer writes the canonical length.
        journaled = ipc.open_stream(pa.py_buffer(packed)).read_all()
        journaled.validate(full=True)
        assert journaled.equals(what_pyarrow_reads(TRADE, True, [bytes(v) for v in views]))


def requests(n: int, sym: str | None = "AAPL") -> list[NewOrder]:
    return [
        NewOrder("A1", sym, f"c{i}", Side.BUY, 10 + i, OrdType.LIMIT, 10.0 + i)  # type: ignore[arg-type]
        for i in range(n)
    ]


@pytest.mark.parametrize("pure", [False, True], ids=["c", "fallback"])
def test_the_validator_stamps_a_burst_of_requests_as_pyarrow_would(
    pure: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_rowpack(pure, monkeypatch)
    validator = BatchValidator(SCHEMAS, 1 << 20)
    validator.validate("order_request", encode_requests(requests(1)), STAMP)  # a first row
    burst = encode_requests(requests(3))
    checked = validator.validate("order_request", burst, STAMP)
    assert checked.num_rows == 3
    assert (checked._rows is None) is not pure  # compiled: packed, never read by pyarrow
    table = SCHEMAS["order_request"]
    read = ipc.open_stream(pa.py_buffer(burst)).read_all().combine_chunks()
    prefix = table.arrow.serialize().to_pybytes()
    assert bytes(checked.payload) == bytes(_stamped(read, table, STAMP, prefix).payload)
    # A run of such bursts, as the tickerplant's loop splices them: packed as one batch.
    piece = validator.spliceable(b"order_request", memoryview(burst))
    assert piece is not None and piece[0] is False
    spans = [piece[1], piece[1]]
    run = validator.validate_run("order_request", False, spans, STAMP)
    assert run is not None and run.num_rows == 6


def test_a_burst_with_a_row_without_a_sym_is_refused_naming_the_row() -> None:
    validator = BatchValidator(SCHEMAS, 1 << 20)
    validator.validate("order_request", encode_requests(requests(1)), STAMP)
    burst = encode_requests([*requests(2), *requests(1, sym=None)])
    with pytest.raises(IngestError, match=r"sym is null in 1 of 3 row\(s\) \(first: row 2\)"):
        validator.validate("order_request", burst, STAMP)
