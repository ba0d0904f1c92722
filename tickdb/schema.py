"""Table schemas declared with q type names, and their Arrow equivalents.

Every table leads with ``time`` (timestamp, ns, UTC) and ``sym`` (symbol), as tick.q
enforces. The q type of each column is kept in the Arrow field metadata under ``q`` so that
``symbol`` and ``string`` (both Arrow strings) stay distinguishable end to end: the kdb+ IPC
codec needs that to send symbols as symbols.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

import pyarrow as pa

# q type name -> Arrow type. Timestamps are naive ns and always mean UTC: naive types keep
# DuckDB on TIMESTAMP_NS instead of TIMESTAMPTZ, whose functions depend on a session zone.
Q_TO_ARROW: dict[str, pa.DataType] = {
    "timestamp": pa.timestamp("ns"),
    "symbol": pa.string(),
    "string": pa.string(),
    "float": pa.float64(),
    "real": pa.float32(),
    "long": pa.int64(),
    "int": pa.int32(),
    "short": pa.int16(),
    "byte": pa.uint8(),
    "boolean": pa.bool_(),
    "date": pa.date32(),
    "timespan": pa.duration("ns"),
    "time": pa.time32("ms"),
    "second": pa.time32("s"),
    "guid": pa.binary(16),
}

Q_METADATA_KEY = b"q"
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Column names a q-sql or SQL query could not address without quoting, or that clash
# with the virtual partition column of the historical database.
RESERVED_COLUMNS = frozenset({"date", "i"})


class SchemaError(ValueError):
    """A table declaration or a batch that does not fit its table."""


@dataclass(frozen=True)
class Column:
    name: str
    qtype: str

    @property
    def arrow_type(self) -> pa.DataType:
        return Q_TO_ARROW[self.qtype]

    def field(self) -> pa.Field:
        return pa.field(self.name, self.arrow_type, metadata={Q_METADATA_KEY: self.qtype})


@dataclass(frozen=True)
class TableSchema:
    """One table: its name and ordered columns, ``time`` and ``sym`` first."""

    name: str
    columns: tuple[Column, ...]

    def __post_init__(self) -> None:
        where = f"table {self.name!r}"
        if not _IDENTIFIER.match(self.name):
            raise SchemaError(f"{where}: table names must be identifiers")
        names = [c.name for c in self.columns]
        if names[:2] != ["time", "sym"]:
            raise SchemaError(
                f"{where}: the first two columns must be time and sym, got {names[:2]}"
            )
        if self.columns[0].qtype != "timestamp" or self.columns[1].qtype != "symbol":
            raise SchemaError(f"{where}: time must be timestamp and sym must be symbol")
        if len(set(names)) != len(names):
            raise SchemaError(f"{where}: duplicate column names in {names}")
        for col in self.columns:
            if not _IDENTIFIER.match(col.name):
                raise SchemaError(f"{where}: column name {col.name!r} is not an identifier")
            if col.name in RESERVED_COLUMNS:
                raise SchemaError(f"{where}: column name {col.name!r} is reserved")
            if col.qtype not in Q_TO_ARROW:
                known = ", ".join(sorted(Q_TO_ARROW))
                raise SchemaError(
                    f"{where}: column {col.name!r} has unknown q type "
                    f"{col.qtype!r} (known: {known})"
                )

    @classmethod
    def from_mapping(cls, name: str, columns: Mapping[str, str]) -> TableSchema:
        return cls(name, tuple(Column(c, str(t)) for c, t in columns.items()))

    @cached_property
    def arrow(self) -> pa.Schema:
        return pa.schema([c.field() for c in self.columns], metadata={b"table": self.name.encode()})

    @cached_property
    def arrow_without_time(self) -> pa.Schema:
        """The schema a publisher may send when it leaves ``time`` for the tickerplant to stamp."""
        return pa.schema(
            [c.field() for c in self.columns[1:]], metadata={b"table": self.name.encode()}
        )

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def qtypes(self) -> dict[str, str]:
        return {c.name: c.qtype for c in self.columns}

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "columns": [[c.name, c.qtype] for c in self.columns]}

    @classmethod
    def from_json(cls, obj: Mapping[str, object]) -> TableSchema:
        cols = obj["columns"]
        assert isinstance(cols, list)
        return cls(str(obj["name"]), tuple(Column(str(n), str(t)) for n, t in cols))


DEFAULT_TABLES: dict[str, dict[str, str]] = {
    "trade": {"time": "timestamp", "sym": "symbol", "price": "float", "size": "long"},
    "quote": {
        "time": "timestamp",
        "sym": "symbol",
        "bid": "float",
        "ask": "float",
        "bsize": "long",
        "asize": "long",
    },
    # The order flow (docs/orders.md). Requests the gateway let through its risk checks, in
    # the order the venues must apply them: a venue's state is a function of this stream.
    "order_request": {
        "time": "timestamp",
        "sym": "symbol",  # empty for a mass cancel that every venue applies
        "request": "symbol",  # new, cancel, replace, mass_cancel
        "account": "symbol",
        "strategy": "symbol",
        "clordid": "string",
        "orig_clordid": "string",
        "side": "symbol",
        "ord_type": "symbol",
        "tif": "symbol",
        "price": "float",  # null: market order, or unchanged by a replace
        "qty": "long",  # null: unchanged by a replace
    },
    # Order events: one row per state change of an order, with its state after it.
    "order": {
        "time": "timestamp",
        "sym": "symbol",
        "account": "symbol",
        "strategy": "symbol",
        "clordid": "string",
        "orig_clordid": "string",
        "order_id": "string",  # the venue's id
        "venue": "symbol",  # shard k/n; empty for the gateway's risk rejects
        "event": "symbol",
        "status": "symbol",
        "side": "symbol",
        "ord_type": "symbol",
        "tif": "symbol",
        "price": "float",
        "qty": "long",
        "cum_qty": "long",
        "leaves_qty": "long",
        "avg_px": "float",
        "last_qty": "long",
        "last_px": "float",
        "exec_id": "string",
        "reason": "symbol",
        "text": "string",
        "in_seq": "long",  # the sequence number of the input that caused it
    },
    # One row per side of each execution.
    "fill": {
        "time": "timestamp",
        "sym": "symbol",
        "account": "symbol",
        "strategy": "symbol",
        "side": "symbol",
        "qty": "long",
        "price": "float",
        "exec_id": "string",
        "order_id": "string",
        "clordid": "string",
        "liquidity": "symbol",
        "venue": "symbol",
        "in_seq": "long",
    },
    # Admin risk requests (limits, trading state, kill, resume), as they were applied.
    "risk_admin": {
        "time": "timestamp",
        "sym": "symbol",
        "action": "symbol",
        "account": "symbol",
        "strategy": "symbol",
        "detail": "string",  # JSON: what changed
    },
}


def default_schemas() -> dict[str, TableSchema]:
    return {name: TableSchema.from_mapping(name, cols) for name, cols in DEFAULT_TABLES.items()}


def conform(table: pa.Table, schema: TableSchema) -> pa.Table:
    """Reorder and cast a user's table to ``schema`` (client side convenience).

    Missing ``time`` is left out for the tickerplant to stamp; any other missing column or
    an impossible cast raises SchemaError naming the column.
    """
    fields = schema.arrow if "time" in table.column_names else schema.arrow_without_time
    extra = set(table.column_names) - set(schema.column_names)
    if extra:
        raise SchemaError(f"table {schema.name!r}: unknown columns {sorted(extra)}")
    arrays = []
    for field in fields:
        if field.name not in table.column_names:
            raise SchemaError(f"table {schema.name!r}: missing column {field.name!r}")
        col = table.column(field.name)
        if col.type != field.type:
            try:
                col = col.cast(field.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise SchemaError(
                    f"table {schema.name!r}: column {field.name!r} cannot be "
                    f"{schema.qtypes()[field.name]}: {exc}"
                ) from exc
        arrays.append(col)
    return pa.Table.from_arrays(arrays, schema=fields)
