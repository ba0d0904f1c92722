"""Gateway results as q values: tables with q types, keyed tables where q would key them.

A result's q types come from its fields' ``q`` metadata (set by :mod:`gateway.qpath` for q
queries) or, for SQL, from the logical tables' schemas by column name where the Arrow type
can hold that q type (a ``string`` column stays a string, not a symbol); anything else gets
the Arrow type's default (``qipc.arrow``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from gateway.qpath import fitting_qtype, result_keys
from qipc.arrow import Q_METADATA_KEY, column_to_q, default_qtype
from qipc.types import KeyedTable, QError, QTable


def qtypes_by_name(schemas: Mapping[str, list[tuple[str, str]]]) -> dict[str, str]:
    """Column name -> q type, for names every table that has them types alike."""
    seen: dict[str, set[str]] = {}
    for columns in schemas.values():
        for name, qtype in columns:
            seen.setdefault(name, set()).add(qtype)
    return {name: next(iter(types)) for name, types in seen.items() if len(types) == 1}


def result_to_q(table: pa.Table, hints: Mapping[str, str] | None = None) -> QTable | KeyedTable:
    """``table`` as a q table, keyed by the columns its ``tickdb.keys`` metadata names."""
    hints = hints or {}
    columns: dict[str, Any] = {}
    for i, f in enumerate(table.schema):
        meta = f.metadata or {}
        if Q_METADATA_KEY in meta:
            qtype = meta[Q_METADATA_KEY].decode()
        else:
            qtype = fitting_qtype(f.type, hints.get(f.name))
        columns[f.name] = _column(table.column(i), qtype, f.name)
    keys = [k for k in result_keys(table) if k in columns]
    if not keys or len(keys) == len(columns):
        return QTable(columns)
    return KeyedTable(
        QTable({k: columns[k] for k in keys}),
        QTable({k: v for k, v in columns.items() if k not in keys}),
    )


def _column(array: pa.ChunkedArray, qtype: str, name: str) -> Any:
    try:
        if qtype == "list":
            return _nested(array)
        return column_to_q(array, qtype)
    except (TypeError, ValueError, pa.ArrowException) as exc:
        raise QError(f"type: column {name} ({array.type}) cannot be sent to q: {exc}") from None


def _nested(array: pa.ChunkedArray) -> list[Any]:
    """A list column (``select price by sym``): one q vector per row, as q groups it."""
    flat = array.combine_chunks()
    if not (pa.types.is_list(flat.type) or pa.types.is_large_list(flat.type)):
        raise TypeError("not a list column")
    value_qtype = default_qtype(flat.type.value_type)
    out: list[Any] = []
    for i in range(len(flat)):
        item = flat[i]
        values = item.values if item.is_valid else pa.array([], flat.type.value_type)
        out.append(column_to_q(values, value_qtype))
    return out
