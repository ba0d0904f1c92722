"""A record's rows as Python values, one-row batches read straight from the Arrow IPC bytes.

The order path reads one small record per order at each step (a venue its request, the
gateway the venue's answer), and pyarrow's reader plus ``to_pylist`` cost ~40-60 µs for one
24-column row, nearly all of it fixed per call and per column, and several times that when
the process wakes from idle with cold caches. A one-row batch is read here instead: the
record batch's flatbuffer metadata (its nodes and buffers vectors) with ``struct``, then
each value by code generated per schema, straight-line (~10-15 µs for that row). From two
rows on pyarrow's column conversion, a C loop per column, is as fast or faster (5 times for a
mass cancel's thousands of rows), so those batches are read by it.

Values are what ``to_pylist`` gives, except timestamps, which are integers (nanoseconds for
``timestamp[ns]``, the tables' ``time``), both ways. Anything this reader does not handle
(other column types, compressed bodies, dictionary batches, a schema message other than
pyarrow's own bytes for its schema, buffers outside the body or unaligned) goes to
pyarrow too, which reads it or raises its own error: only the cost differs. It checks the
numbers it uses, not the rest of the flatbuffer: it reads records the tickerplant has
validated. ``payload_columns`` (C, any number of rows) is asked first.
"""

from __future__ import annotations

import struct
from functools import reduce
from operator import add, ge, or_
from typing import Any

import pyarrow as pa
import pyarrow.ipc as ipc

from tickerplant import payload_columns
from tickerplant.payload_reader import read_batches

_U16 = struct.Struct("<H").unpack_from
_I32 = struct.Struct("<i").unpack_from
_U32 = struct.Struct("<I").unpack_from
_I64 = struct.Struct("<q").unpack_from
_CONTINUATION = 0xFFFFFFFF
_RECORD_BATCH = 3  # MessageHeader.RecordBatch
_MAX_SCHEMAS = 1024

# Column types read here, by the codes the C reader uses too (``payload_columns.code_of``).
_STRING = payload_columns.STRING_CODE


class _Fallback(Exception):
    """Not a payload this reader handles: pyarrow reads it."""


class _Layout:
    """How one schema's one-row batches are read (``one_row`` None: not here)."""

    def __init__(self, schema: pa.Schema | None) -> None:
        """``schema`` None: a stream this reader leaves to pyarrow."""
        self.one_row: Any = None
        if schema is None:
            return
        self.names: list[str] = schema.names
        codes = [payload_columns.code_of(field.type) for field in schema]
        if None in codes:
            return
        # Per column: its validity bitmap, then its data (fixed) or offsets and characters.
        sizes: list[int] = []
        for code in codes:
            sizes += [0, 8, 0] if code == _STRING else [0, struct.calcsize(str(code))]
        self.min_sizes = sizes  # of each buffer, for one row
        self.columns = len(codes)
        self.nodes = struct.Struct(f"<{2 * len(codes)}q").unpack_from
        self.buffers = struct.Struct(f"<{2 * len(sizes)}q").unpack_from
        self.one_row = self._generate([str(c) for c in codes])
        self.readers = self._column_readers([str(c) for c in codes])

    @staticmethod
    def _generate(codes: list[str]) -> Any:
        """``one_row(buf, body, B)``: the values of a one-row batch, each buffer's offset
        and length in ``B`` (checked to lie in the body); a string's offsets are checked
        against its characters' buffer here."""
        namespace: dict[str, Any] = {
            "_OFFSETS": struct.Struct("<ii").unpack_from,
            "_Fallback": _Fallback,
        }
        lines = ["def one_row(buf, body, B):"]
        values, checks = [], []
        b = 0
        for c, code in enumerate(codes):
            if code == _STRING:
                lines.append(f"    s{c}, e{c} = _OFFSETS(buf, body + B[{2 * (b + 1)}])")
                lines.append(f"    d{c} = body + B[{2 * (b + 2)}]")
                checks.append(f"0 <= s{c} <= e{c} <= B[{2 * (b + 2) + 1}]")
                values.append(f"buf[d{c} + s{c} : d{c} + e{c}].decode()")
                b += 3
            else:
                name = f"_U{c}"
                namespace[name] = struct.Struct("<" + code).unpack_from
                values.append(f"{name}(buf, body + B[{2 * (b + 1)}])[0]")
                b += 2
        if checks:
            lines.append(f"    if not ({' and '.join(checks)}):")
            lines.append("        raise _Fallback")
        lines.append(f"    return [{', '.join(values)}]")
        exec(compile("\n".join(lines), "<one-row reader>", "exec"), namespace)
        return namespace["one_row"]

    @staticmethod
    def _column_readers(codes: list[str]) -> list[Any]:
        """Per column, ``read(buf, body, B)``: its value in a one-row batch, checked as
        ``one_row`` checks it (for a caller that needs one column, such as ``sym``)."""
        readers: list[Any] = []
        b = 0
        for code in codes:
            if code == _STRING:
                readers.append(_string_reader(2 * (b + 1)))
                b += 3
            else:
                readers.append(_fixed_reader(code, 2 * (b + 1)))
                b += 2
        return readers


_OFFSET_PAIR = struct.Struct("<ii").unpack_from


def _string_reader(at: int) -> Any:
    """A string column's value: offsets at buffer ``at / 2``, characters at the next."""

    def read(buf: bytes, body: int, B: Any) -> str:
        start, end = _OFFSET_PAIR(buf, body + B[at])
        if not 0 <= start <= end <= B[at + 3]:
            raise _Fallback
        data = body + B[at + 2]
        return buf[data + start : data + end].decode()

    return read


def _fixed_reader(code: str, at: int) -> Any:
    unpack = struct.Struct("<" + code).unpack_from

    def read(buf: bytes, body: int, B: Any) -> Any:
        return unpack(buf, body + B[at])[0]

    return read


# schema message bytes -> how its batches are read
_layouts: dict[bytes, _Layout] = {}


def _layout(key: bytes) -> _Layout:
    found = _layouts.get(key)
    if found is None:
        # Only a schema message as pyarrow writes it: another goes to pyarrow.
        found = _Layout(payload_columns.canonical_schema(key))
        if len(_layouts) >= _MAX_SCHEMAS:
            _layouts.clear()
        _layouts[key] = found
    return found


def _field(buf: bytes, table: int, index: int) -> int:
    """Where field ``index`` of the flatbuffer table at ``table`` is; 0 when absent."""
    vtable = table - _I32(buf, table)[0]
    at = 4 + 2 * index
    if at >= _U16(buf, vtable)[0]:
        return 0
    offset: int = _U16(buf, vtable + at)[0]
    return table + offset if offset else 0


def _vector(buf: bytes, where: int) -> tuple[int, int]:
    """(first element, length) of the vector a table field at ``where`` points to."""
    start = where + _U32(buf, where)[0]
    return start + 4, _U32(buf, start)[0]


def read_columns(payload: bytes | memoryview) -> tuple[list[str], list[list[Any]]]:
    """A record's column names and each column's values (all its batches, in order)."""
    buf = payload if isinstance(payload, bytes) else bytes(payload)
    compiled = payload_columns.read(buf)  # in C, any number of rows, when it is built
    if compiled is not None:
        return compiled
    try:
        return _read(buf)
    except (_Fallback, struct.error, UnicodeDecodeError, IndexError, ValueError, pa.ArrowException):
        return _read_with_pyarrow(buf)


def read_one_row_column(payload: bytes | memoryview, name: str) -> list[Any] | None:
    """Column ``name``'s values, for a payload whose batches each hold one row; None for
    anything else (and when it has no such column), with no pyarrow fallback: for a caller
    with its own path for those, the tickerplant's per-topic row selection, which needs one
    column (``sym`` or ``account``) of a one-row order request."""
    buf = payload if isinstance(payload, bytes) else bytes(payload)
    try:
        return _read_column(buf, name)
    except (_Fallback, struct.error, UnicodeDecodeError, IndexError, ValueError, pa.ArrowException):
        return None


def read_rows(payload: bytes | memoryview) -> list[dict[str, Any]]:
    """A record's rows, each a dict of column name to value."""
    names, columns = read_columns(payload)
    return [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)]


def _read(buf: bytes) -> tuple[list[str], list[list[Any]]]:
    """The stream's batches if each has one row; ``_Fallback`` otherwise."""
    layout, pos = _schema(buf)
    names = layout.names
    columns: list[list[Any]] = [[] for _ in names]
    while (batch := _next_batch(buf, pos)) is not None:
        pos = _one_row(buf, *batch, layout, columns)
    return names, columns


def _read_column(buf: bytes, name: str) -> list[Any]:
    """One column of the stream's batches if each has one row; ``_Fallback`` otherwise."""
    layout, pos = _schema(buf)
    if name not in layout.names:
        raise _Fallback
    column = layout.names.index(name)
    read = layout.readers[column]
    values: list[Any] = []
    while (batch := _next_batch(buf, pos)) is not None:
        body, numbers, nulls, pos = _batch(buf, *batch, layout)
        values.append(None if nulls[column] else read(buf, body, numbers))
    return values


def _schema(buf: bytes) -> tuple[_Layout, int]:
    """The stream's layout (one this reader handles) and where its first batch starts."""
    size = len(buf)
    if size < 8 or _U32(buf, 0)[0] != _CONTINUATION:
        raise _Fallback
    end = 8 + _I32(buf, 4)[0]
    layout = _layout(buf[:end])
    if layout.one_row is None:
        raise _Fallback
    return layout, end


def _next_batch(buf: bytes, pos: int) -> tuple[int, int] | None:
    """(its metadata's start, its size) of the message at ``pos``; None at the stream's end
    marker, ``_Fallback`` without one."""
    if pos + 8 > len(buf) or _U32(buf, pos)[0] != _CONTINUATION:
        raise _Fallback
    meta_size = _I32(buf, pos + 4)[0]
    return None if meta_size == 0 else (pos + 8, meta_size)


def _one_row(buf: bytes, meta: int, meta_size: int, layout: _Layout, out: list[list[Any]]) -> int:
    """Append the one-row batch whose metadata is at ``meta``; returns where it ends."""
    body, numbers, nulls, end = _batch(buf, meta, meta_size, layout)
    values = layout.one_row(buf, body, numbers)
    if any(nulls):  # a column's one value is null (its data is there, unused)
        for c, null in enumerate(nulls):
            if null:
                values[c] = None
    for column, value in zip(out, values, strict=True):
        column.append(value)
    return end


def _batch(
    buf: bytes, meta: int, meta_size: int, layout: _Layout
) -> tuple[int, tuple[int, ...], tuple[int, ...], int]:
    """A one-row batch's body start, buffer offsets and lengths, nulls per column and end,
    each checked to lie in the payload; ``_Fallback`` for any other batch."""
    body = meta + meta_size
    root = meta + _U32(buf, meta)[0]
    kind_at, header_at, length_at = _field(buf, root, 1), _field(buf, root, 2), _field(buf, root, 3)
    if not kind_at or buf[kind_at] != _RECORD_BATCH or not header_at:
        raise _Fallback  # a dictionary batch, or something else
    body_length = _I64(buf, length_at)[0] if length_at else 0
    if body_length < 0 or body + body_length > len(buf):
        raise _Fallback
    batch = header_at + _U32(buf, header_at)[0]
    rows_at, nodes_at, buffers_at = (
        _field(buf, batch, 0),
        _field(buf, batch, 1),
        _field(buf, batch, 2),
    )
    if _field(buf, batch, 3) or not (rows_at and nodes_at and buffers_at):
        raise _Fallback  # compressed, or not a batch this reader knows
    if _I64(buf, rows_at)[0] != 1:
        raise _Fallback  # pyarrow's column conversion is faster from two rows on
    nodes, node_count = _vector(buf, nodes_at)
    buffers, buffer_count = _vector(buf, buffers_at)
    if node_count != layout.columns or buffer_count != len(layout.min_sizes):
        raise _Fallback
    numbers = layout.buffers(buf, buffers)
    sizes = numbers[1::2]
    if (
        min(numbers) < 0
        or max(map(add, numbers[::2], sizes)) > body_length
        or not all(map(ge, sizes, layout.min_sizes))
        or reduce(or_, numbers[::2]) & 7
    ):
        raise _Fallback  # a buffer outside the body, too small for its row, or unaligned
    counts = layout.nodes(buf, nodes)
    nulls = counts[1::2]
    if counts[::2].count(1) != layout.columns or min(nulls) < 0 or max(nulls) > 1:
        raise _Fallback
    return body, numbers, nulls, body + body_length


def _read_with_pyarrow(buf: bytes) -> tuple[list[str], list[list[Any]]]:
    batches = read_batches(buf)
    if not batches:
        schema = ipc.open_stream(buf).schema
        return schema.names, [[] for _ in schema.names]
    names = batches[0].schema.names
    columns: list[list[Any]] = [[] for _ in names]
    for batch in batches:
        for c, column in enumerate(batch.columns):
            if pa.types.is_timestamp(column.type):
                column = column.cast(pa.int64())
            columns[c] += column.to_pylist()
    return names, columns
