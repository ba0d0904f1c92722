"""``payload_reader`` remembers the schema message it read last: payloads of different
schemas, taking turns, in every form a caller hands in, each read with its own schema."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.ipc as ipc
import pytest

from tickerplant import payload_reader
from tickerplant.payload_reader import read_batches


def _stream(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, table.schema) as out:
        out.write_table(table)
    return sink.getvalue().to_pybytes()


def test_schemas_taking_turns_are_each_read_with_their_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Two schemas whose schema messages are the same length: only their bytes differ.
    ints = pa.table({"a": pa.array([1, 2], pa.int64())})
    narrow = pa.table({"a": pa.array([1, 2], pa.int32())})
    named = pa.table({"b": pa.array([3, 4], pa.int64())})
    payloads = [_stream(t) for t in (ints, narrow, named)]
    assert len({len(ipc.read_schema(pa.py_buffer(p)).serialize()) for p in payloads}) == 1
    monkeypatch.setattr(payload_reader, "_with_reader", None)  # the fast path or a failure
    for _ in range(3):
        for table, payload in zip((ints, narrow, named), payloads, strict=True):
            for form in (payload, memoryview(payload), pa.py_buffer(payload)):
                (batch,) = read_batches(form)
                assert pa.Table.from_batches([batch]).equals(table)
