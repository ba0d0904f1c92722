"""A record's columns read in C: a payload of one batch message, of any number of rows.

The order path reads a small record at each step: a venue a run of requests, the gateway a
venue's answers to them. ``payload_rows`` reads a one-row batch in Python (~10-15 µs for a
24-column row) and leaves longer ones to pyarrow's reader and ``to_pylist`` (~40-60 µs
whatever the rows, most of it fixed per call and per column). Here the C extension
(``tickerplant._rowpack.columns``) checks the batch against its writer's layout (as
``rows_check`` checks a table: every buffer, offset and UTF-8 value) and makes the values
directly: a few µs for a handful of rows.

Values are what ``payload_rows`` gives (``to_pylist``'s, timestamps as integers). ``read``
returns None for anything else: without the compiled extension (or with
``TICKDB_PURE_PYTHON`` set), a schema message other than pyarrow's own bytes for its schema
(big-endian data, another writer's), a column type it does not read, several batch
messages, a layout it does not know, or a batch that fails a check; the caller's readers
take those.
"""

from __future__ import annotations

import functools
from typing import Any

import pyarrow as pa
import pyarrow.ipc as ipc

from tickerplant.rowpack import Compiled, RowPacker, implementation
from tickerplant.splice import END_OF_STREAM

_MAX_SCHEMAS = 256
# struct codes of the fixed-width types read without pyarrow (here and by ``payload_rows``);
# timestamps are read as int64.
FIXED_CODES: dict[pa.DataType, str] = {
    pa.int64(): "q",
    pa.float64(): "d",
    pa.float32(): "f",
    pa.int32(): "i",
    pa.int16(): "h",
    pa.uint8(): "B",
}
STRING_CODE = "s"


def code_of(kind: pa.DataType) -> str | None:
    """A column type's code (``FIXED_CODES``, ``STRING_CODE``); None: not read here."""
    if kind == pa.string():
        return STRING_CODE
    if pa.types.is_timestamp(kind):
        return "q"
    return FIXED_CODES.get(kind)


class _Schema:
    """One schema's reading: its names, each column's kind, its writers' layouts."""

    def __init__(self, schema: pa.Schema, impl: Compiled) -> None:
        self.names: list[str] = schema.names
        kinds = [code_of(f.type) for f in schema]
        self.kinds = "".join(k for k in kinds if k).encode() if all(kinds) else None
        self.layouts = RowPacker(schema, schema, impl)


_schemas: dict[bytes, _Schema | None] = {}


@functools.cache
def _compiled() -> Compiled | None:
    """The extension, looked up at the first read."""
    found = implementation()
    return found if isinstance(found, Compiled) else None


def read(buf: bytes) -> tuple[list[str], list[list[Any]]] | None:
    """The payload's column names and values, or None (see the module's docstring)."""
    impl = _compiled()
    if impl is None or len(buf) < 16 or buf[:4] != b"\xff\xff\xff\xff":
        return None
    end = 8 + int.from_bytes(buf[4:8], "little", signed=True)
    if not 8 < end < len(buf):
        return None
    key = buf[:end]
    reading = _schemas[key] if key in _schemas else _learn(key, impl)
    if reading is None or reading.kinds is None:
        return None
    stop = len(buf) - 8 if buf[-8:] == END_OF_STREAM else len(buf)
    message = memoryview(buf)[end:stop]
    fitted = reading.layouts.fit_rows(True, message)
    if fitted is None:
        return None
    columns = impl.columns(fitted[1], reading.kinds, message)
    return None if columns is None else (reading.names, columns)


def canonical_schema(key: bytes) -> pa.Schema | None:
    """The schema of a schema message, when the message is exactly what pyarrow writes for
    it; None for another (one may declare big-endian data, whose values pyarrow swaps as it
    reads, or be another writer's flatbuffer). Raises pyarrow's error if it reads none."""
    schema = ipc.read_schema(pa.py_buffer(key))
    return schema if schema.serialize().to_pybytes() == key else None


def _learn(key: bytes, impl: Compiled) -> _Schema | None:
    try:
        schema = canonical_schema(key)
        found = None if schema is None else _Schema(schema, impl)
    except (pa.ArrowException, OSError, ValueError):  # UnicodeDecodeError: a name's bytes
        found = None
    if len(_schemas) >= _MAX_SCHEMAS:
        _schemas.clear()
    _schemas[key] = found
    return found
