"""The data of a q ``.u.upd[t; data]`` as an Arrow table of ``t``'s schema.

kdb+tick feedhandlers send one of three shapes, and this accepts all of them:

* one row: a general list of atoms, ``(`AAPL; 101.5; 200)``;
* many rows: a list of columns, ``(`AAPL`MSFT; 101.5 20.1; 200 300)``;
* a table (or a dictionary of columns), columns matched by name.

A row or list of columns may leave ``time`` out (one item short); it is then stamped with
``now_ns``, the call's own arrival, as tick.q stamps each ``upd`` with ``.z.N`` (the
tickerplant's stamp would be one per turn of its loop, shared by every call it read in that
turn). When ``time`` is there it may be a timestamp (kept), or a timespan, time,
second or minute, which tick.q feeds send as time of day: it becomes today (UTC, by the
tickerplant's clock) plus that time. Types are checked as q's ``insert`` checks them (a long
is not a float), except that symbols and strings stand in for each other, because Python
clients cannot always tell them apart. A mistake raises :class:`QError` naming the table and
column, in q's style (``type``, ``length``, ``mismatch``, ``rank``).
"""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from qipc.arrow import column_to_arrow
from qipc.types import Char, KeyedTable, QDict, QError, QTable, Symbol
from tickdb.schema import TableSchema

NS_PER_DAY = 86_400 * 1_000_000_000
# q types a feed uses for a time of day, and nanoseconds per unit of their Arrow storage.
_TIME_OF_DAY_NS = {"timespan": 1, "time": 1_000_000, "second": 1_000_000_000}
_TEXT_QTYPES = {"symbol", "string"}


def upd_to_arrow(schema: TableSchema, data: Any, now_ns: int) -> pa.Table:
    """``data`` as a table of ``schema``; ``time``, if the feed left it out, is ``now_ns``."""
    columns = _named_columns(schema, data)
    stamped = "time" not in columns
    fields = schema.arrow_without_time if stamped else schema.arrow
    arrays: list[pa.Array] = []
    rows: int | None = None
    for field in fields:
        qtype = schema.qtypes()[field.name]
        array = _column(schema, field.name, qtype, columns[field.name], now_ns)
        if rows is None:
            rows = len(array)
        elif len(array) != rows:
            raise QError(
                f"length: {schema.name}.{field.name} has {len(array)} values, "
                f"the columns before it {rows}"
            )
        arrays.append(array if array.type == field.type else array.cast(field.type))
    if stamped:
        count = rows if rows is not None else 0
        arrays.insert(
            0, pa.array(np.full(count, now_ns, dtype="datetime64[ns]"), pa.timestamp("ns"))
        )
        fields = schema.arrow
    return pa.Table.from_arrays(arrays, schema=fields)


def _named_columns(schema: TableSchema, data: Any) -> dict[str, Any]:
    """Column name -> q vector (or list of strings), ``time`` absent when left out."""
    names = schema.column_names
    if isinstance(data, KeyedTable):
        data = QTable({**data.keys.columns, **data.values.columns})
    if isinstance(data, QDict):
        keys = [str(k) for k in _items(data.keys)]
        values = _items(data.values)
        if len(keys) != len(values):
            raise QError(f"length: {schema.name}: dictionary of {len(keys)} keys")
        vectors = [_as_vector(v) for v in values]
        if all(v is not None for v in vectors):
            data = QTable(dict(zip(keys, vectors, strict=True)))
        else:  # a dictionary of atoms is one row
            data = QTable(
                {k: _atom_vector(schema, k, v) for k, v in zip(keys, values, strict=True)}
            )
    if isinstance(data, QTable):
        given = list(data.columns)
        extra = [n for n in given if n not in names]
        missing = [n for n in names[1:] if n not in given]
        if extra or missing:
            raise QError(
                f"mismatch: {schema.name} has columns {', '.join(names)}"
                + (f"; unknown {', '.join(extra)}" if extra else "")
                + (f"; missing {', '.join(missing)}" if missing else "")
            )
        return dict(data.columns)
    if isinstance(data, (list, tuple, np.ndarray)):
        items = _items(data)
        if len(items) == len(names) - 1:
            names = names[1:]  # no time: the tickerplant stamps it
        elif len(items) != len(names):
            raise QError(
                f"length: {schema.name} needs {len(names) - 1} items "
                f"({', '.join(names[1:])}) or {len(names)} with time first, got {len(items)}"
            )
        vectors = [_as_vector(item) for item in items]
        if all(v is not None for v in vectors):
            return dict(zip(names, vectors, strict=True))
        if any(v is not None for v in vectors):
            raise QError(
                f"type: {schema.name}: give one row of atoms or a list of columns, "
                "not a mix of atoms and lists"
            )
        return {n: _atom_vector(schema, n, v) for n, v in zip(names, items, strict=True)}
    raise QError(
        f"type: {schema.name}: data must be a row, a list of columns or a table, "
        f"got {type(data).__name__}"
    )


def _items(value: Any) -> list[Any]:
    if isinstance(value, np.ndarray):
        # A simple vector is a row whose atoms share one type (q collapses such lists).
        return [str(v) if value.dtype.kind in "OU" else v for v in value]
    if isinstance(value, (list, tuple)):
        return list(value)
    raise QError(f"type: expected a list, got {type(value).__name__}")


def _as_vector(value: Any) -> Any:
    """``value`` itself if it is a column (q vector or list of strings), else None (an atom)."""
    if isinstance(value, np.ndarray) and value.ndim == 1:
        return value
    if isinstance(value, list) and all(isinstance(s, str) for s in value):
        return value  # a string column: a general list of char vectors
    return None


def _atom_vector(schema: TableSchema, name: str, value: Any) -> Any:
    """A one-item column holding the atom ``value``."""
    if isinstance(value, Symbol):
        return np.array([str(value)], dtype=object)
    if isinstance(value, Char):
        return np.array([str(value).encode("latin-1")], dtype="S1")
    if isinstance(value, str):
        return [value]  # a char vector: one q string
    if isinstance(value, uuid.UUID):
        return np.array([value.bytes], dtype="V16")
    if isinstance(value, np.generic):
        return np.array([value])
    raise QError(f"type: {schema.name}.{name}: cannot store a {type(value).__name__}")


def _column(schema: TableSchema, name: str, qtype: str, values: Any, now_ns: int) -> pa.Array:
    where = f"{schema.name}.{name}"
    try:
        array, given = column_to_arrow(values)
    except TypeError as exc:
        raise QError(f"type: {where} must be {qtype}: {exc}") from None
    if name == "time" and given in _TIME_OF_DAY_NS:
        return _today_plus(array, _TIME_OF_DAY_NS[given], now_ns)
    if given == "minute" and name == "time":
        return _today_plus(array, 1_000_000_000, now_ns)  # Arrow keeps minutes as seconds
    if given == qtype or (given in _TEXT_QTYPES and qtype in _TEXT_QTYPES):
        return array
    raise QError(f"type: {where} must be {qtype}, got {given}")


def _today_plus(array: pa.Array, ns_per_unit: int, now_ns: int) -> pa.Array:
    """Time of day -> timestamp today (UTC), nulls kept."""
    storage = array.cast(pa.int32()) if pa.types.is_time32(array.type) else array
    nanos = pc.multiply(storage.cast(pa.int64()), ns_per_unit)
    midnight = now_ns - now_ns % NS_PER_DAY
    return pc.add(nanos, midnight).cast(pa.timestamp("ns"))
