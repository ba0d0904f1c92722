"""Validation of incoming batches: what gets journaled is always a well-formed batch of the
table's exact schema.

Publishers send an Arrow IPC stream per batch. The fast path recognises the table's
canonical schema message by its bytes and only decodes the record batches after it, so a
one-row message costs a few microseconds and is journaled as received. Anything else (a
stream from another Arrow implementation, columns in another order, ``time`` left out for
the tickerplant to stamp) takes the slow path: decode, check names and types, stamp,
re-encode canonically. Mistakes are reported naming the table and column.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

from tickerplant.schema import TableSchema

_END_OF_STREAM = b"\xff\xff\xff\xff\x00\x00\x00\x00"


@dataclass(frozen=True, slots=True)
class Validated:
    """A batch that fits its table: the bytes to journal and the rows they hold."""

    payload: bytes | memoryview
    rows: pa.RecordBatch | pa.Table

    @property
    def num_rows(self) -> int:
        return int(self.rows.num_rows)


class IngestError(ValueError):
    """A batch the tickerplant refuses; the message goes back to the publisher."""


def encode_stream(table: pa.Table | pa.RecordBatch, schema: pa.Schema) -> bytes:
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, schema) as writer:
        if isinstance(table, pa.RecordBatch):
            writer.write_batch(table)
        else:
            writer.write_table(table)
    return sink.getvalue().to_pybytes()


class BatchValidator:
    def __init__(self, schemas: dict[str, TableSchema], max_message_bytes: int) -> None:
        self.schemas = schemas
        self.max_message_bytes = max_message_bytes
        self._canonical_prefix = {
            name: schema.arrow.serialize().to_pybytes() for name, schema in schemas.items()
        }
        # Feeds that leave ``time`` to the tickerplant (as kdb+ feeds do) send this one.
        self._untimed_prefix = {
            name: schema.arrow_without_time.serialize().to_pybytes()
            for name, schema in schemas.items()
        }

    def validate(self, table: str, payload: bytes | memoryview, now_ns: int) -> Validated:
        """The canonical payload and its decoded rows, or IngestError."""
        schema = self.schemas.get(table)
        if schema is None:
            known = ", ".join(sorted(self.schemas))
            raise IngestError(f"unknown table {table!r} (known: {known})")
        if len(payload) > self.max_message_bytes:
            raise IngestError(
                f"message of {len(payload)} bytes exceeds max_message_bytes "
                f"({self.max_message_bytes})"
            )
        view = memoryview(payload)
        prefix = self._canonical_prefix[table]
        if view[: len(prefix)] == prefix:
            batch = self._canonical_batch(schema.arrow, view[len(prefix) :])
            if batch is not None:
                return Validated(view, batch)
        untimed = self._untimed_prefix[table]
        if view[: len(untimed)] == untimed:
            batch = self._canonical_batch(schema.arrow_without_time, view[len(untimed) :])
            if batch is not None:
                return _stamped(batch, schema, now_ns)
        return self._slow_path(schema, payload, now_ns)

    @staticmethod
    def _canonical_batch(schema: pa.Schema, rest: memoryview) -> pa.RecordBatch | None:
        """The one batch after a canonical schema; None when not exactly that shape.

        The common case (one batch, optionally the end-of-stream marker) is checked without
        a stream reader: read the message, the batch, and check nothing else follows.
        """
        try:
            message = ipc.read_message(pa.py_buffer(rest))
            if message.type != "record batch":
                return None
            batch = ipc.read_record_batch(message, schema)
            batch.validate(full=True)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError):
            return None  # let the slow path produce the precise error
        used = 8 + message.metadata.size + message.body.size
        trailer = bytes(rest[used:])
        if trailer not in (b"", _END_OF_STREAM):
            return None  # several batches: the slow path reads them all
        return batch

    def _slow_path(
        self, schema: TableSchema, payload: bytes | memoryview, now_ns: int
    ) -> Validated:
        where = f"table {schema.name!r}"
        try:
            received = ipc.open_stream(pa.py_buffer(payload)).read_all()
            received.validate(full=True)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
            raise IngestError(f"{where}: payload is not a valid Arrow IPC stream: {exc}") from None
        names = received.column_names
        expected = schema.column_names
        extra = [n for n in names if n not in expected]
        if extra:
            raise IngestError(f"{where}: unknown columns {extra} (expected {expected})")
        if len(set(names)) != len(names):
            raise IngestError(f"{where}: duplicate columns in {names}")
        missing = [n for n in expected if n not in names and n != "time"]
        if missing:
            raise IngestError(f"{where}: missing columns {missing}")
        columns = []
        for col in schema.columns:
            if col.name not in names:  # only time can be absent: stamp it
                columns.append(
                    pa.array([now_ns] * received.num_rows, pa.int64()).cast(col.arrow_type)
                )
                continue
            data = received.column(col.name)
            if data.type != col.arrow_type:
                if (
                    pa.types.is_dictionary(data.type) and data.type.value_type == col.arrow_type
                ) or (pa.types.is_large_string(data.type) and col.arrow_type == pa.string()):
                    data = data.cast(col.arrow_type)
                else:
                    raise IngestError(
                        f"{where}: column {col.name!r} must be {col.qtype} "
                        f"({col.arrow_type}), got {data.type}"
                    )
            columns.append(data)
        canonical = pa.Table.from_arrays(columns, schema=schema.arrow).combine_chunks()
        return Validated(encode_stream(canonical, schema.arrow), canonical)


def _stamped(batch: pa.RecordBatch, schema: TableSchema, now_ns: int) -> Validated:
    """A batch without ``time`` gets the tickerplant's receive time on every row."""
    time_type = schema.arrow.field("time").type
    stamp = pa.array(np.full(batch.num_rows, now_ns, dtype=np.int64)).view(time_type)
    full = pa.RecordBatch.from_arrays([stamp, *batch.columns], schema=schema.arrow)
    return Validated(encode_stream(full, schema.arrow), full)


def coalesce(parts: list[Validated], schema: pa.Schema) -> bytes | memoryview:
    """Batched mode: many validated batches of one table become one record's payload."""
    if len(parts) == 1:
        return parts[0].payload
    batches: list[pa.RecordBatch] = []
    for part in parts:
        rows = part.rows
        batches.extend(rows.to_batches() if isinstance(rows, pa.Table) else [rows])
    merged = pa.Table.from_batches(batches, schema=schema).combine_chunks()
    return encode_stream(merged, schema)
