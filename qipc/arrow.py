"""``pyarrow.Table`` ↔ q table, driven by the ``q`` field metadata of tickdb schemas.

The q type of a column comes from, in order: the ``qtypes`` argument, the field's ``q``
metadata (``tickdb.schema`` sets it), then a default for the Arrow type (plain strings
default to symbol: q clients expect symbols for categorical text). The full mapping, with
what happens to nulls and infinities, is the table in ``docs/kdb-ipc.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from qipc import types as t

Q_METADATA_KEY = b"q"

# q type name -> the Arrow type a decoded column gets.
Q_TO_ARROW: dict[str, pa.DataType] = {
    "boolean": pa.bool_(),
    "guid": pa.binary(16),
    "byte": pa.uint8(),
    "short": pa.int16(),
    "int": pa.int32(),
    "long": pa.int64(),
    "real": pa.float32(),
    "float": pa.float64(),
    "char": pa.string(),
    "symbol": pa.string(),
    "string": pa.string(),
    "timestamp": pa.timestamp("ns"),
    "month": pa.date32(),
    "date": pa.date32(),
    "timespan": pa.duration("ns"),
    "minute": pa.time32("s"),
    "second": pa.time32("s"),
    "time": pa.time32("ms"),
}
_INT_QTYPES = {"short": (pa.int16(), 2), "int": (pa.int32(), 4), "long": (pa.int64(), 8)}


def default_qtype(arrow_type: pa.DataType) -> str:
    """The q type an Arrow column without ``q`` metadata becomes."""
    ty = arrow_type
    if pa.types.is_dictionary(ty):
        return "symbol"
    for test, name in (
        (pa.types.is_boolean, "boolean"),
        (pa.types.is_uint8, "byte"),
        (pa.types.is_int8, "short"),
        (pa.types.is_int16, "short"),
        (pa.types.is_uint16, "int"),
        (pa.types.is_int32, "int"),
        (pa.types.is_integer, "long"),
        (pa.types.is_float16, "real"),
        (pa.types.is_float32, "real"),
        (pa.types.is_floating, "float"),
        (pa.types.is_decimal, "float"),
        (pa.types.is_timestamp, "timestamp"),
        (pa.types.is_date, "date"),
        (pa.types.is_duration, "timespan"),
        (pa.types.is_time64, "timespan"),
    ):
        if test(ty):
            return name
    if pa.types.is_time32(ty):
        return "time" if ty.unit == "ms" else "second"
    if pa.types.is_fixed_size_binary(ty) and ty.byte_width == 16:
        return "guid"
    if pa.types.is_string(ty) or pa.types.is_large_string(ty) or pa.types.is_string_view(ty):
        return "symbol"
    if pa.types.is_binary(ty) or pa.types.is_large_binary(ty):
        return "string"
    raise TypeError(f"Arrow type {ty} has no q equivalent")


def qtype_of(field: pa.Field) -> str:
    meta = field.metadata or {}
    if Q_METADATA_KEY in meta:
        return meta[Q_METADATA_KEY].decode()
    return default_qtype(field.type)


def table_to_q(
    table: pa.Table | pa.RecordBatch, qtypes: Mapping[str, str] | None = None
) -> t.QTable:
    """An Arrow table as a q table (nulls become q nulls)."""
    qtypes = qtypes or {}
    columns: dict[str, Any] = {}
    for i, field in enumerate(table.schema):
        qtype = qtypes.get(field.name) or qtype_of(field)
        columns[field.name] = column_to_q(table.column(i), qtype)
    return t.QTable(columns)


def column_to_q(array: pa.Array | pa.ChunkedArray, qtype: str) -> Any:
    """One Arrow column as the codec's value for a q vector of ``qtype``."""
    arr: pa.Array = array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array
    if pa.types.is_dictionary(arr.type):
        arr = arr.cast(arr.type.value_type)
    if qtype == "boolean":
        return arr.cast(pa.bool_()).fill_null(False).to_numpy(zero_copy_only=False)
    if qtype == "byte":
        return arr.cast(pa.uint8()).fill_null(0).to_numpy(zero_copy_only=False)
    if qtype in _INT_QTYPES:
        ty, width = _INT_QTYPES[qtype]
        return arr.cast(ty).fill_null(t.INT_NULL[width]).to_numpy(zero_copy_only=False)
    if qtype in ("real", "float"):
        ty = pa.float32() if qtype == "real" else pa.float64()
        return arr.cast(ty).fill_null(np.nan).to_numpy(zero_copy_only=False)
    if qtype == "symbol":
        return symbols_to_q(arr)
    if qtype == "string":
        return [s if isinstance(s, str) else s.decode() for s in arr.fill_null("").to_pylist()]
    if qtype == "char":
        text = arr.cast(pa.string()).fill_null(" ").to_pylist()
        return np.array([(s[:1] or " ").encode("latin-1") for s in text], dtype="S1")
    if qtype == "guid":
        filled = pc.fill_null(arr.cast(pa.binary(16)), pa.scalar(b"\0" * 16, pa.binary(16)))
        return np.frombuffer(filled.buffers()[1], "V16", len(filled), filled.offset * 16).copy()
    return _temporal_to_q(arr, qtype)


def symbols_to_q(arr: pa.Array) -> t.SymbolVector:
    """An Arrow string column as a wire-ready q symbol vector (nulls are the null symbol)."""
    text = arr.cast(pa.string()).fill_null("")
    if not len(text):
        return t.SymbolVector(0, b"")
    joined = pc.binary_join_element_wise(text, "", "\0")  # each item followed by a NUL
    buffers = joined.buffers()
    offsets = np.frombuffer(buffers[1], np.int32, len(joined) + 1, joined.offset * 4)
    data = buffers[2].to_pybytes()[int(offsets[0]) : int(offsets[-1])]
    if data.count(b"\0") != len(text):
        raise ValueError("a symbol cannot contain a NUL character")
    return t.SymbolVector(len(text), data)


def _ints(arr: pa.Array) -> npt.NDArray[np.int64]:
    """The integer storage of a temporal array, nulls as NaT's bits."""
    if pa.types.is_date32(arr.type) or pa.types.is_time32(arr.type):
        arr = arr.cast(pa.int32())  # Arrow casts 32-bit temporals only to their storage
    return arr.cast(pa.int64()).fill_null(t.NAT).to_numpy(zero_copy_only=False)


def _temporal_to_q(arr: pa.Array, qtype: str) -> npt.NDArray[Any]:
    if qtype == "timestamp":
        tz = arr.type.tz if pa.types.is_timestamp(arr.type) else None
        return _ints(arr.cast(pa.timestamp("ns", tz))).view("M8[ns]")
    if qtype in ("date", "month"):
        days = _ints(arr.cast(pa.date32())).view("M8[D]")
        return days if qtype == "date" else days.astype("M8[M]")
    if qtype == "timespan":
        if pa.types.is_time(arr.type):
            return _ints(arr.cast(pa.time64("ns"))).view("m8[ns]")
        return _ints(arr.cast(pa.duration("ns"))).view("m8[ns]")
    unit = {"minute": "s", "second": "s", "time": "ms"}.get(qtype)
    if unit is None:
        raise TypeError(f"unknown q type {qtype!r}")
    if pa.types.is_duration(arr.type):
        values = _ints(arr.cast(pa.duration(unit)))
    else:
        values = _ints(arr.cast(pa.time32(unit)))
    if qtype == "minute":
        values = np.where(values == t.NAT, t.NAT, values // 60)
        return values.view("m8[m]")
    return values.view(f"m8[{unit}]")


def q_to_table(value: t.QTable | t.KeyedTable) -> pa.Table:
    """A q table (a keyed one loses its key: key columns come first) as an Arrow table."""
    if isinstance(value, t.KeyedTable):
        columns = {**value.keys.columns, **value.values.columns}
    elif isinstance(value, t.QTable):
        columns = value.columns
    else:
        raise TypeError(f"expected a q table, got {type(value).__name__}")
    arrays, fields = [], []
    for name, column in columns.items():
        array, qtype = column_to_arrow(column)
        arrays.append(array)
        fields.append(pa.field(name, array.type, metadata={Q_METADATA_KEY: qtype}))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def column_to_arrow(column: Any) -> tuple[pa.Array, str]:
    """A decoded q vector → (Arrow array, q type name). q nulls become Arrow nulls."""
    if isinstance(column, list):
        if all(isinstance(s, str) for s in column):
            return pa.array(column, pa.string()), "string"
        raise TypeError("a general-list column other than strings has no Arrow type")
    if isinstance(column, t.SymbolVector):
        column = np.array(column.tolist(), dtype=object)
    if not isinstance(column, np.ndarray):
        raise TypeError(f"not a q vector: {type(column).__name__}")
    kind, dtype = column.dtype.kind, column.dtype
    if kind in "OU":
        mask = column == ""
        return pa.array(column, pa.string(), mask=mask if mask.any() else None), "symbol"
    if kind == "S":
        return pa.array(column.astype("U1"), pa.string()), "char"
    if kind == "V":
        array = pa.FixedSizeBinaryArray.from_buffers(
            pa.binary(16), len(column), [None, pa.py_buffer(column.tobytes())]
        )
        null = np.all(column.view(np.uint8).reshape(-1, 16) == 0, axis=1)
        return (pc.if_else(pa.array(null), None, array) if null.any() else array), "guid"
    if kind == "b":
        return pa.array(column, pa.bool_()), "boolean"
    if kind in "iu" or kind == "f":
        qtype = t.TYPE_NAMES[t.DTYPE_TO_TYPE[dtype]]
        if kind == "f":
            mask = np.isnan(column)
        elif kind == "i":
            mask = column == t.INT_NULL[dtype.itemsize]
        else:
            mask = None
        has_nulls = mask is not None and bool(mask.any())
        return pa.array(column, mask=mask if has_nulls else None), qtype
    if kind in "Mm":
        return _temporal_to_arrow(column)
    raise TypeError(f"numpy dtype {dtype} has no Arrow mapping")


def _temporal_to_arrow(column: npt.NDArray[Any]) -> tuple[pa.Array, str]:
    if column.dtype == t.NUMPY_DTYPE[t.DATETIME]:
        # q's deprecated datetime (type z): named as q names it, so an error says
        # "got datetime" rather than a numpy dtype; callers refuse or convert it.
        ms = column.view(np.int64)
        array = pa.array(ms, pa.int64(), mask=ms == t.NAT).cast(pa.timestamp("ms"))
        return array.cast(pa.timestamp("ns")), "datetime"
    qtype = t.DTYPE_TO_TYPE.get(column.dtype)
    raw = column.view(np.int64)
    nat = raw == t.NAT
    if qtype in (t.TIMESTAMP, t.TIMESPAN):
        ty = pa.timestamp("ns") if qtype == t.TIMESTAMP else pa.duration("ns")
        return pa.array(raw, pa.int64(), mask=nat).cast(ty), t.TYPE_NAMES[qtype]
    if qtype is None:
        raise TypeError(f"numpy dtype {column.dtype} has no q type")
    # The 32-bit temporal types lose their infinities: Arrow has no value to hold them.
    mask = nat | (raw == t.NP_INF) | (raw == t.NP_NINF)
    if qtype == t.MONTH:
        raw = np.where(mask, 0, column.astype("M8[D]").view(np.int64))
    if qtype == t.MINUTE:
        raw = np.where(mask, 0, raw * 60)
    ty = Q_TO_ARROW[t.TYPE_NAMES[qtype]]
    ints = pa.array(np.where(mask, 0, raw).astype(np.int32), pa.int32(), mask=mask)
    return ints.cast(ty), t.TYPE_NAMES[qtype]
