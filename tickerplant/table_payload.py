"""Many rows at once (an Arrow table or batch, a pandas DataFrame, a dict of columns) as one
record batch of the table's schema, converting each column once and only if it must.

A table that already has the table's columns, in order, is used as it is; otherwise a column
that already has its type is used as it is (no cast, no copy); one chunk per column becomes
the batch without a copy (``combine_chunks`` only for several); lists
and arrays in a dict are converted straight to the column's type by one ``pa.array``
call, not inferred first and cast after. The batch is then written once, as the IPC
payload (``tickerplant.row_message.payload_of``).

Missing ``time`` is left for the tickerplant to stamp (the batch then has the schema
without it); any other missing column, an unknown column or a value of the wrong type
(or a null ``sym``) raises ``SchemaError`` naming the column.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from tickdb.schema import SchemaError, TableSchema
from tickerplant.row_values import NotAValue
from tickerplant.row_writer import MAX_BUFFERED_ROWS, RowWriter


def to_batch(data: Any, schema: TableSchema) -> pa.RecordBatch:
    """A pyarrow Table/RecordBatch, a pandas DataFrame or a dict of columns as one batch.

    A null ``sym`` is refused here, as the tickerplant would refuse the whole batch (Arrow
    keeps each column's null count, so this costs no scan)."""
    batch = _to_batch(data, schema)
    nulls = batch.column(batch.schema.get_field_index("sym")).null_count
    if nulls:
        raise SchemaError(
            f"table {schema.name!r}: column 'sym' is null in {nulls} of {batch.num_rows} "
            "row(s): every row needs one"
        )
    return batch


def _to_batch(data: Any, schema: TableSchema) -> pa.RecordBatch:
    if isinstance(data, pa.RecordBatch | pa.Table):
        return _from_arrow(data, schema)
    if hasattr(data, "to_dict") and hasattr(data, "columns"):  # pandas DataFrame
        return _from_arrow(pa.Table.from_pandas(data, preserve_index=False), schema)
    if isinstance(data, Mapping):
        return _from_columns(data, schema)
    raise TypeError(
        f"cannot publish {type(data).__name__}: give a pyarrow Table, a pandas DataFrame, "
        "a dict of columns or one row (keyword arguments, a dict, or a tuple)"
    )


def to_arrow(data: Any, schema: TableSchema) -> pa.Table:
    """What ``Publisher.publish`` sends for ``data`` (one row or many), as a table."""
    if isinstance(data, dict | tuple | list):
        writer = RowWriter(schema, limit=MAX_BUFFERED_ROWS, on_full=lambda: None)
        try:
            writer.row(data) if isinstance(data, dict) else writer.tup(data)
            return pa.Table.from_batches(writer.take())
        except NotAValue:
            pass
    return pa.Table.from_batches([to_batch(data, schema)])


def _fields(names: list[str], schema: TableSchema) -> pa.Schema:
    """The message schema for these columns: the table's, without time if it is absent."""
    unknown = [n for n in names if n not in schema.column_names]
    if unknown:
        raise SchemaError(
            f"table {schema.name!r}: unknown columns {sorted(unknown)} "
            f"(columns: {schema.column_names})"
        )
    fields = schema.arrow if "time" in names else schema.arrow_without_time
    missing = [f.name for f in fields if f.name not in names]
    if missing:
        raise SchemaError(f"table {schema.name!r}: missing columns {missing}")
    return fields


def _cast(column: pa.Array | pa.ChunkedArray, field: pa.Field, table: str) -> Any:
    try:
        return column.cast(field.type)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise SchemaError(
            f"table {table!r}: column {field.name!r} cannot be {field.metadata[b'q'].decode()} "
            f"({field.type}): {exc}"
        ) from None


def _from_arrow(data: pa.RecordBatch | pa.Table, schema: TableSchema) -> pa.RecordBatch:
    if data.num_rows and (
        data.schema.equals(schema.arrow_without_time) or data.schema.equals(schema.arrow)
    ):
        # The table's columns, types and order already (metadata aside, which is not sent:
        # the schema message sent is the table's own): the data as it is, ~1 µs.
        if isinstance(data, pa.RecordBatch):
            return data
        batches = data.to_batches()
        if len(batches) == 1:
            return batches[0]
    names = data.schema.names
    fields = _fields(names, schema)
    arrays = []
    for field in fields:
        column = data.column(names.index(field.name))
        if column.type != field.type:
            column = _cast(column, field, schema.name)
        if isinstance(column, pa.ChunkedArray):
            column = column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
        arrays.append(column)
    return pa.RecordBatch.from_arrays(arrays, schema=fields)


def _from_columns(data: Mapping[str, Any], schema: TableSchema) -> pa.RecordBatch:
    fields = _fields(list(data), schema)
    arrays = []
    for field in fields:
        values = data[field.name]
        if isinstance(values, pa.Array | pa.ChunkedArray):
            column = values if values.type == field.type else _cast(values, field, schema.name)
            if isinstance(column, pa.ChunkedArray):
                column = column.combine_chunks()
        else:
            try:
                column = pa.array(values, type=field.type)
            except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as exc:
                raise SchemaError(
                    f"table {schema.name!r}: column {field.name!r} is "
                    f"{field.metadata[b'q'].decode()} ({field.type}): {exc}"
                ) from None
        arrays.append(column)
    try:
        return pa.RecordBatch.from_arrays(arrays, schema=fields)
    except pa.ArrowInvalid as exc:  # columns of different lengths
        raise SchemaError(f"table {schema.name!r}: {exc}") from None
