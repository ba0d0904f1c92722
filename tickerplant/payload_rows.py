"""A record's rows as Python values, read straight from its Arrow IPC bytes.

The order path reads one small record per order at each step (a venue its request, the
gateway the venue's answer), and pyarrow's reader plus ``to_pylist`` cost ~60 µs for one
24-column row, nearly all of it fixed per call and per column, and several times that
when the process wakes from idle with cold caches. Here the record batch's flatbuffer
metadata (the nodes and buffers vectors) is read with ``struct`` and each column's values
are unpacked from the body with one ``struct`` call (fixed width) or a slice per value
(strings): ~10 µs for that row.

Values are what ``to_pylist`` gives, except timestamps, which are integers (nanoseconds for
``timestamp[ns]``, the tables' ``time``). Payloads this reader does not handle (other column
types, compressed bodies, dictionary batches, anything malformed) are read by pyarrow
instead (``payload_reader``), with the same result types, so any record a tickerplant
publishes is read; only the cost differs.
"""

from __future__ import annotations

import struct
from operator import add
from typing import Any

import pyarrow as pa
import pyarrow.ipc as ipc

from tickerplant.payload_reader import read_batches

_U16 = struct.Struct("<H").unpack_from
_I32 = struct.Struct("<i").unpack_from
_U32 = struct.Struct("<I").unpack_from
_I64 = struct.Struct("<q").unpack_from
_TWO_I64 = struct.Struct("<qq").unpack_from
_CONTINUATION = 0xFFFFFFFF
_RECORD_BATCH = 3  # MessageHeader.RecordBatch
_MAX_SCHEMAS = 1024

# struct codes of the fixed-width types read here; anything else goes to pyarrow.
_FIXED: dict[pa.DataType, str] = {
    pa.int64(): "q",
    pa.float64(): "d",
    pa.float32(): "f",
    pa.int32(): "i",
    pa.int16(): "h",
    pa.uint8(): "B",
}
_STRING = "s"


class _Layout:
    """A schema's columns as this reader reads them: per column a struct code, or "s" for
    strings, and a function generated for the common batch (one row, no nulls)."""

    def __init__(self, schema: pa.Schema) -> None:
        self.names: list[str] = schema.names
        codes = [_code(field.type) for field in schema]
        self.codes: list[str] | None = None if None in codes else [str(c) for c in codes]
        if self.codes is None:
            return
        self.buffer_count = sum(3 if c == _STRING else 2 for c in self.codes)
        self.nodes = struct.Struct(f"<{2 * len(self.codes)}q").unpack_from
        self.buffers = struct.Struct(f"<{2 * self.buffer_count}q").unpack_from
        self.one_row = self._generate(self.codes)

    @staticmethod
    def _generate(codes: list[str]) -> Any:
        """``one_row(buf, body, buffers)``: the values of a one-row batch without nulls,
        straight-line code (each buffer's offset is ``buffers[2 * k]``)."""
        namespace: dict[str, Any] = {"_OFFSETS": struct.Struct("<ii").unpack_from}
        lines = ["def one_row(buf, body, B):"]
        values = []
        b = 0
        for c, code in enumerate(codes):
            if code == _STRING:
                lines.append(f"    s{c}, e{c} = _OFFSETS(buf, body + B[{2 * (b + 1)}])")
                lines.append(f"    d{c} = body + B[{2 * (b + 2)}]")
                values.append(f"buf[d{c} + s{c} : d{c} + e{c}].decode()")
                b += 3
            else:
                name = f"_U{c}"
                namespace[name] = struct.Struct("<" + code).unpack_from
                values.append(f"{name}(buf, body + B[{2 * (b + 1)}])[0]")
                b += 2
        lines.append(f"    return ({', '.join(values)},)")
        exec(compile("\n".join(lines), "<one-row reader>", "exec"), namespace)
        return namespace["one_row"]


# schema message bytes -> how its batches are read
_layouts: dict[bytes, _Layout] = {}


class _Fallback(Exception):
    """Not a payload this reader handles: pyarrow reads it."""


def _code(kind: pa.DataType) -> str | None:
    if kind == pa.string():
        return _STRING
    if pa.types.is_timestamp(kind):
        return "q"
    return _FIXED.get(kind)


def _layout(key: bytes) -> _Layout:
    found = _layouts.get(key)
    if found is None:
        found = _Layout(ipc.read_schema(pa.py_buffer(key)))
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
    try:
        return _read(buf)
    except (_Fallback, struct.error, UnicodeDecodeError, IndexError, ValueError, pa.ArrowException):
        return _read_with_pyarrow(buf)


def read_rows(payload: bytes | memoryview) -> list[dict[str, Any]]:
    """A record's rows, each a dict of column name to value."""
    names, columns = read_columns(payload)
    return [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)]


def _read(buf: bytes) -> tuple[list[str], list[list[Any]]]:
    size = len(buf)
    if size < 8 or _U32(buf, 0)[0] != _CONTINUATION:
        raise _Fallback
    end = 8 + _I32(buf, 4)[0]
    layout = _layout(buf[:end])
    names, codes = layout.names, layout.codes
    if codes is None:
        raise _Fallback
    columns: list[list[Any]] = [[] for _ in codes]
    pos = end
    while pos + 8 <= size:
        if _U32(buf, pos)[0] != _CONTINUATION:
            raise _Fallback
        meta_size = _I32(buf, pos + 4)[0]
        if meta_size == 0:  # the end of the stream
            return names, columns
        meta = pos + 8
        body = meta + meta_size
        root = meta + _U32(buf, meta)[0]
        kind_at = _field(buf, root, 1)
        header_at = _field(buf, root, 2)
        if not kind_at or buf[kind_at] != _RECORD_BATCH or not header_at:
            raise _Fallback  # a dictionary batch, or something else
        length_at = _field(buf, root, 3)
        body_length = _I64(buf, length_at)[0] if length_at else 0
        if body_length < 0 or body + body_length > size:
            raise _Fallback
        batch = header_at + _U32(buf, header_at)[0]
        if _field(buf, batch, 3):
            raise _Fallback  # compressed buffers
        rows_at = _field(buf, batch, 0)
        rows = _I64(buf, rows_at)[0] if rows_at else 0
        nodes_at, buffers_at = _field(buf, batch, 1), _field(buf, batch, 2)
        if not nodes_at or not buffers_at:
            raise _Fallback
        nodes, node_count = _vector(buf, nodes_at)
        buffers, buffer_count = _vector(buf, buffers_at)
        if node_count != len(codes) or buffer_count != layout.buffer_count:
            raise _Fallback
        numbers = layout.buffers(buf, buffers)
        if min(numbers) < 0 or max(map(add, numbers[::2], numbers[1::2])) > body_length:
            raise _Fallback  # a buffer outside the body
        counts = layout.nodes(buf, nodes)
        if rows == 1 and counts[::2].count(1) == len(codes) and not any(counts[1::2]):
            for column, value in zip(columns, layout.one_row(buf, body, numbers), strict=True):
                column.append(value)
        else:
            _read_batch(buf, codes, columns, rows, counts, numbers, body)
        pos = body + body_length
    raise _Fallback  # no end-of-stream marker


def _read_batch(
    buf: bytes,
    codes: list[str],
    columns: list[list[Any]],
    rows: int,
    counts: tuple[int, ...],
    numbers: tuple[int, ...],
    body: int,
) -> None:
    """Any batch: ``counts`` are each column's (length, null count), ``numbers`` each
    buffer's (offset, length), all checked to lie inside the body."""
    b = 0  # the next buffer: per column its validity bitmap, then data (or offsets, chars)
    for c, code in enumerate(codes):
        length, nulls = counts[2 * c], counts[2 * c + 1]
        if length != rows or nulls < 0:
            raise _Fallback
        data, size = numbers[2 * b + 2], numbers[2 * b + 3]
        if code == _STRING:
            if size < 4 * (rows + 1):
                raise _Fallback
            offsets = struct.unpack_from(f"<{rows + 1}i", buf, body + data)
            chars = body + numbers[2 * b + 4]
            if offsets[0] < 0 or offsets[-1] > numbers[2 * b + 5]:
                raise _Fallback
            values: list[Any] = [
                buf[chars + offsets[i] : chars + offsets[i + 1]].decode() for i in range(rows)
            ]
        else:
            if size < rows * struct.calcsize(code):
                raise _Fallback
            values = list(struct.unpack_from(f"<{rows}{code}", buf, body + data))
        if nulls:
            bitmap, bitmap_bytes = body + numbers[2 * b], numbers[2 * b + 1]
            if bitmap_bytes * 8 < rows:
                raise _Fallback
            for i in range(rows):
                if not buf[bitmap + (i >> 3)] >> (i & 7) & 1:
                    values[i] = None
        b += 3 if code == _STRING else 2
        columns[c] += values


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
