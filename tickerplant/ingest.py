"""Validation of incoming batches: what gets journaled is always a well-formed batch of the
table's exact schema.

Publishers send an Arrow IPC stream per batch. The fast path recognises the table's
canonical schema message by its bytes, then checks the one batch message after it against
its writer's layout without a reader (``rowpack`` for one row, ``rows_check`` for any
number: ~2 µs for 1000 rows) and journals the payload as received; a batch the layout
does not fit is read and validated by pyarrow. Anything else (a
stream from another Arrow implementation, columns in another order, ``time`` left out for
the tickerplant to stamp) takes the slow path: decode, check names and types, stamp,
re-encode canonically. Mistakes are reported naming the table and column.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc

from tickdb.schema import TableSchema
from tickerplant.onerow import OneRowDecoder
from tickerplant.protocol import UNREADABLE
from tickerplant.rowpack import RowPacker, implementation
from tickerplant.splice import END_OF_STREAM, batch_spans, join


class Validated:
    """A batch that fits its table: the bytes to journal and the rows they hold.

    Rows checked without a reader (``rowpack``) are decoded only if someone asks for them
    (batched mode's coalescing).
    """

    __slots__ = ("_rows", "num_rows", "payload")

    def __init__(
        self,
        payload: bytes | memoryview,
        rows: pa.RecordBatch | pa.Table | None,
        num_rows: int | None = None,
    ) -> None:
        self.payload = payload
        self._rows = rows
        self.num_rows = int(rows.num_rows) if rows is not None else int(num_rows or 0)

    @property
    def rows(self) -> pa.RecordBatch | pa.Table:
        if self._rows is None:
            self._rows = ipc.open_stream(pa.py_buffer(self.payload)).read_all()
        return self._rows


# Runs at least this long try the one-row decoder first: below it, its fixed cost (a few
# dozen array operations) is more than a reader's cost per batch. Shorter runs, and single
# messages, are checked and packed message by message (``rowpack``).
ONE_ROW_RUN = 32


class IngestError(ValueError):
    """A batch the tickerplant refuses; the message goes back to the publisher, ``reason``
    names the kind in the tickerplant's counters (``errors_by_reason``)."""

    def __init__(self, message: str, reason: str = "bad_batch") -> None:
        super().__init__(message)
        self.reason = reason


# ``sym`` is every table's second column (``tickdb.schema``): first without ``time``.
SYM = 1


def null_sym_error(table: str, nulls: int, rows: int, first: int) -> IngestError:
    """The refusal of a batch with rows whose ``sym`` is null.

    Such rows used to be journaled and acknowledged, then matched no shard, so no RDB ever
    held them: the whole batch is refused instead, before anything of it is journaled.
    """
    return IngestError(
        f"table {table!r}: sym is null in {nulls} of {rows} row(s) (first: row {first}); "
        "every row needs a sym, so the whole batch was refused",
        reason="null_sym",
    )


def null_syms(rows: pa.RecordBatch | pa.Table) -> int:
    """How many rows have no ``sym`` (Arrow keeps the count: no scan)."""
    return int(rows.column("sym").null_count)


def check_syms(table: str, rows: pa.RecordBatch | pa.Table) -> None:
    """IngestError when a row of ``rows`` has a null ``sym``."""
    nulls = null_syms(rows)
    if nulls:
        first = pc.index(pc.is_null(rows.column("sym")), True).as_py()
        raise null_sym_error(table, nulls, rows.num_rows, first)


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
        self._one_row = {
            (name, has_time): OneRowDecoder(schema.arrow if has_time else schema.arrow_without_time)
            for name, schema in schemas.items()
            for has_time in (True, False)
        }
        self.rowpack = rowpack = implementation()
        # Runs packed message by message: all of them in C, short ones in pure Python (the
        # same bytes either way; long runs are then onerow's).
        self._pack_below = 1 << 62 if rowpack.name == "c" else ONE_ROW_RUN
        self._packers = {
            name: RowPacker(schema.arrow, schema.arrow_without_time, rowpack)
            for name, schema in schemas.items()
        }
        # Where a packed payload holds its sym column's null count (packed runs are in the
        # table's canonical layout): one read tells whether any row lacks a sym.
        self._packed_sym_nulls = {
            name: packer.packed_nulls_at(SYM) for name, packer in self._packers.items()
        }
        # Keyed by the table name as it arrives on the wire, for the per-message hot path.
        self._wire_prefixes = {
            name.encode(): (self._canonical_prefix[name], self._untimed_prefix[name])
            for name in schemas
        }

    def canonical_prefix(self, table: str) -> bytes:
        """The bytes of the table's schema message, as every journaled payload starts."""
        return self._canonical_prefix[table]

    def spliceable(self, table: bytes, payload: memoryview) -> tuple[bool, memoryview] | None:
        """``(has_time, batch messages)`` of a payload that may join a run, else None.

        A payload may join a run of its table when it starts with the table's canonical
        schema (with or without ``time``). This is the per-message hot path, so the rest is
        checked when the run is validated; None sends the payload down the one-at-a-time
        path, which also produces any error message.
        """
        prefixes = self._wire_prefixes.get(table)
        if prefixes is None or len(payload) > self.max_message_bytes:
            return None
        timed, untimed = prefixes
        # As bytes: bytes == bytes is one memcmp, a memoryview compares byte by byte (that
        # was a fifth of the tickerplant's instructions per one-row message).
        if bytes(payload[: len(timed)]) == timed:
            has_time, start = True, len(timed)
        elif bytes(payload[: len(untimed)]) == untimed:
            has_time, start = False, len(untimed)
        else:
            return None
        end = len(payload) - 8 if bytes(payload[-8:]) == END_OF_STREAM else len(payload)
        return has_time, payload[start:end]

    def validate_run(
        self,
        table: str,
        has_time: bool,
        spans: list[memoryview],
        now_ns: int,
    ) -> Validated | None:
        """Many spliceable payloads of one table as one canonical batch, or None.

        Runs of one-row messages are checked and packed message by message (``rowpack``;
        in pure Python only short ones), long ones decoded together by array operations
        (``onerow``); anything else is read by one reader over the spliced stream, after
        checking that each payload is whole messages. All give the same bytes. None when
        any piece fails: the caller then validates the pieces one at a time, so each bad one
        gets its own error and the good ones still go through.
        """
        schema = self.schemas[table]
        rows: pa.Table | pa.RecordBatch | None = None
        if len(spans) < self._pack_below:
            packer = self._packers[table]
            packed = packer.pack(has_time, spans, now_ns)
            if packed is not None:
                if self._packed_null_syms(table, packed):
                    return None  # one at a time: only the rows without a sym are refused
                return Validated(packed, None, packer.packed_rows(packed))
        if len(spans) >= ONE_ROW_RUN:
            rows = self._one_row[table, has_time].decode(spans, [len(s) for s in spans])
        if rows is None:
            sent_prefix = self._canonical_prefix[table] if has_time else self._untimed_prefix[table]
            whole = batch_spans(spans, b"")
            if whole is None:
                return None
            try:
                read = ipc.open_stream(pa.py_buffer(join(sent_prefix, whole))).read_all()
                read.validate(full=True)
            except UNREADABLE:
                return None
            rows = read.combine_chunks()
        if null_syms(rows):
            return None
        prefix = self._canonical_prefix[table]
        if not has_time:
            return _stamped(rows, schema, now_ns, prefix)
        return Validated(encode_rows(rows, prefix), rows)

    def validate_one(
        self, table: str, has_time: bool, payload: memoryview, now_ns: int
    ) -> Validated | None:
        """One spliceable payload, checked (and stamped) without a reader, as ``validate``
        would take it; None when that takes more, and then ``validate`` has to."""
        packer = self._packers[table]
        if has_time:
            span = _one_message(payload, len(self._canonical_prefix[table]))
            layout = packer.layout_for(True, span)
            if layout is None or span[layout.nulls_at[SYM]]:
                return None  # ``validate`` says what is wrong
            return Validated(payload, None, 1)
        span = _one_message(payload, len(self._untimed_prefix[table]))
        packed = packer.pack(False, [span], now_ns)
        if packed is None or self._packed_null_syms(table, packed):
            return None
        return Validated(packed, None, packer.packed_rows(packed))

    def _packed_null_syms(self, table: str, packed: bytes) -> int:
        at = self._packed_sym_nulls[table]
        return int.from_bytes(packed[at : at + 8], "little")

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
        packer = self._packers[table]
        # bytes == bytes is one memcmp; a memoryview compares byte by byte.
        if bytes(view[: len(prefix)]) == prefix:
            # Rows as the table's own schema: journaled as they came once checked, by a
            # layout (``rows_check``) or else by a reader. A null sym is refused; its error
            # (which rows) comes from the reader below, this path only sees the count.
            message = _one_message(view, len(prefix))
            fitted = packer.fit_rows(True, message)
            if fitted is not None:
                rows, layout = fitted
                at = layout.nulls_at[SYM]
                if not any(message[at : at + 8]):
                    return Validated(view, None, rows)
            batch = self._canonical_batch(schema.arrow, view[len(prefix) :])
            if batch is not None:
                check_syms(table, batch)
                return Validated(view, batch)
        untimed = self._untimed_prefix[table]
        if view[: len(untimed)] == untimed:
            packed = packer.pack(False, [_one_message(view, len(untimed))], now_ns)
            # With a row without a sym, the reader below says which rows those are.
            if packed is not None and not self._packed_null_syms(table, packed):
                return Validated(packed, None, packer.packed_rows(packed))
            batch = self._canonical_batch(schema.arrow_without_time, view[len(untimed) :])
            if batch is not None:
                check_syms(table, batch)
                return _stamped(batch, schema, now_ns, prefix)
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
        except UNREADABLE:  # EOFError: the end marker, no batch (a valid empty stream)
            return None  # let the slow path produce the precise error
        used = 8 + message.metadata.size + message.body.size
        trailer = bytes(rest[used:])
        if trailer not in (b"", END_OF_STREAM):
            return None  # several batches: the slow path reads them all
        return batch

    def _slow_path(
        self, schema: TableSchema, payload: bytes | memoryview, now_ns: int
    ) -> Validated:
        where = f"table {schema.name!r}"
        try:
            received = ipc.open_stream(pa.py_buffer(payload)).read_all()
            received.validate(full=True)
            names = received.column_names
        except UNREADABLE as exc:
            raise IngestError(f"{where}: payload is not a valid Arrow IPC stream: {exc}") from None
        except UnicodeDecodeError:  # pyarrow decodes field names only when asked for them
            raise IngestError(f"{where}: a column name is not UTF-8") from None
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
        check_syms(schema.name, canonical)
        return Validated(encode_stream(canonical, schema.arrow), canonical)


def _one_message(payload: memoryview, start: int) -> memoryview:
    """What follows the schema message: one batch message if the stream is that simple."""
    end = len(payload) - 8 if payload[-8:] == END_OF_STREAM else len(payload)
    return payload[start:end]


def _stamped(
    rows: pa.RecordBatch | pa.Table, schema: TableSchema, now_ns: int, prefix: bytes
) -> Validated:
    """Rows without ``time`` get the tickerplant's receive time on every row."""
    time_type = schema.arrow.field("time").type
    stamp = pa.array(np.full(rows.num_rows, now_ns, dtype=np.int64)).view(time_type)
    full: pa.RecordBatch | pa.Table
    if isinstance(rows, pa.Table):
        full = pa.Table.from_arrays([stamp, *rows.columns], schema=schema.arrow)
    else:
        full = pa.RecordBatch.from_arrays([stamp, *rows.columns], schema=schema.arrow)
    return Validated(encode_rows(full, prefix), full)


def encode_rows(rows: pa.RecordBatch | pa.Table, prefix: bytes) -> bytes:
    """A canonical stream of ``rows``, given the bytes of their schema's message.

    One batch is framed directly, without a stream writer's set-up.
    """
    if isinstance(rows, pa.Table):
        batches = rows.to_batches()
        if len(batches) != 1:
            return encode_stream(rows, rows.schema)
        rows = batches[0]
    return b"".join([prefix, rows.serialize(), END_OF_STREAM])


# Batches at least this big are joined as they are; smaller ones are merged into one batch.
JOIN_AS_IS_BYTES = 16 << 10


def coalesce(parts: list[Validated], schema: pa.Schema, prefix: bytes) -> bytes | memoryview:
    """Batched mode: many validated batches of one table become one record's payload.

    Big batches keep their own batch messages, spliced behind one schema message: no decode
    and re-encode, just one copy. Small ones are merged into one batch, so subscribers do
    not get thousands of tiny chunks.
    """
    if len(parts) == 1:
        return parts[0].payload
    if all(len(part.payload) >= JOIN_AS_IS_BYTES for part in parts):
        spans = batch_spans([memoryview(part.payload) for part in parts], prefix)
        if spans is not None:
            return join(prefix, spans)
    batches: list[pa.RecordBatch] = []
    for part in parts:
        rows = part.rows
        batches.extend(rows.to_batches() if isinstance(rows, pa.Table) else [rows])
    merged = pa.Table.from_batches(batches, schema=schema).combine_chunks()
    return encode_stream(merged, schema)
