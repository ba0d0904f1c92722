"""Finish small merges in Arrow when DuckDB's fixed cost would be most of the work.

An aggregate plan's merge query (``decompose``) groups the stacked partials by their ``_g``
keys and finishes every aggregate: SUM, MIN, MAX, BOOL_AND or BOOL_OR of a partial, combined
by ``/``, ``COALESCE`` and ``NULLIF`` and cast to the output types; then HAVING, ORDER BY,
LIMIT. A rows or groups plan's merge query only casts the parts' columns, sorts them and
cuts (ORDER BY ... LIMIT). Over a few hundred rows DuckDB spends 1.5-4 ms on either
(registering the parts, binding, starting a pipeline); pyarrow takes about 0.2 ms.

``compile_merge`` accepts only merge queries built from those pieces (None otherwise).
``ArrowMerge.run`` raises ``Unsupported`` when the data needs a semantic it does not
reproduce exactly (NaN under MIN/MAX or in a sort key, an integer sum that could overflow,
a cast DuckDB would round): the caller then runs the DuckDB merge, which is always right.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import pyarrow as pa
import pyarrow.compute as pc
import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from gateway.analysis import from_clause
from gateway.decompose import PARTS

HUGEINT = pa.decimal128(38, 0)
# Arrow types of the DuckDB types a merge query casts to; a cast to any other type is not
# compiled.
_TYPES: dict[str, pa.DataType] = {
    "BIGINT": pa.int64(),
    "HUGEINT": HUGEINT,
    "INT128": HUGEINT,  # sqlglot's spelling of HUGEINT
    "INT": pa.int32(),
    "INTEGER": pa.int32(),
    "DOUBLE": pa.float64(),
    "VARCHAR": pa.string(),
    "TEXT": pa.string(),
    "BOOLEAN": pa.bool_(),
    "DATE": pa.date32(),
    "TIMESTAMP_NS": pa.timestamp("ns"),
    "TIMESTAMP": pa.timestamp("us"),
}
# Finishing aggregates: SQL node -> Arrow hash/scalar aggregate.
_AGGREGATES: dict[type, str] = {
    exp.Sum: "sum",
    exp.Min: "min",
    exp.Max: "max",
    exp.LogicalAnd: "all",
    exp.LogicalOr: "any",
}
_COMPARE: dict[type, str] = {
    exp.EQ: "equal",
    exp.NEQ: "not_equal",
    exp.GT: "greater",
    exp.GTE: "greater_equal",
    exp.LT: "less",
    exp.LTE: "less_equal",
}
_SUM_LIMIT = {"int": 2.0**62, "decimal": 1e36}  # beyond: a sum might overflow Arrow's type


class Unsupported(Exception):
    """This merge (or these parts) needs the DuckDB merge."""


# A compiled expression: the aggregated (or, merging rows, the parts') columns -> one array.
Value = Callable[[dict[str, pa.Array]], pa.Array]


@dataclass(frozen=True)
class ArrowMerge:
    rows: bool  # no aggregation: expressions read the parts' columns (by name or #position)
    keys: tuple[str, ...]  # _g columns grouped by
    # (input column, partial column, cast to or None, Arrow aggregate)
    aggregates: tuple[tuple[str, str, pa.DataType | None, str], ...]
    outputs: tuple[Value, ...]
    having: Value | None
    order: tuple[tuple[Value, bool, bool], ...]  # (value, descending, nulls first)
    limit: int | None
    offset: int

    def run(self, parts: pa.Table, schema: pa.Schema) -> pa.Table:
        """The merge's answer with exactly ``schema`` (DuckDB's output types)."""
        env = _columns(parts) if self.rows else self._aggregate(parts)
        if self.having is not None:
            keep = _fit(self.having(env), pa.bool_())
            env = {name: column.filter(keep) for name, column in env.items()}
        columns = [
            _fit(value(env), field.type) for value, field in zip(self.outputs, schema, strict=True)
        ]
        table = pa.Table.from_arrays(columns, schema=schema)
        if self.order:
            table = self._sorted(table, env)
        if self.offset or self.limit is not None:
            table = table.slice(self.offset, self.limit)
        return table

    def _aggregate(self, parts: pa.Table) -> dict[str, pa.Array]:
        for column, partial, cast, fn in self.aggregates:
            if cast is not None and column not in parts.column_names:
                parts = parts.append_column(column, _fit(parts.column(partial), cast))
            _check_aggregate(parts.column(column), fn)
        options = pc.ScalarAggregateOptions(skip_nulls=True, min_count=1)
        if self.keys:
            for key in self.keys:
                if _has_nan(parts.column(key)):
                    raise Unsupported("NaN group key")
            specs = [(column, fn, options) for column, _, _, fn in self.aggregates]
            grouped = parts.group_by(list(self.keys)).aggregate(specs)
            return {name: grouped.column(name).combine_chunks() for name in grouped.column_names}
        env: dict[str, pa.Array] = {}
        for column, _, _, fn in self.aggregates:
            scalar = getattr(pc, fn)(parts.column(column), options=options)
            env[f"{column}_{fn}"] = pa.array([scalar], scalar.type)
        return env

    def _sorted(self, table: pa.Table, env: dict[str, pa.Array]) -> pa.Table:
        columns, sort_keys = [], []
        for i, (value, desc, nulls_first) in enumerate(self.order):
            column = value(env)
            if _has_nan(column):
                raise Unsupported("NaN in a sort key")  # DuckDB: above every number
            columns.append(column)
            placement = "at_start" if nulls_first else "at_end"
            sort_keys.append((f"_k{i}", "descending" if desc else "ascending", placement))
        order = pc.sort_indices(
            pa.table(columns, names=[key[0] for key in sort_keys]), sort_keys=sort_keys
        )
        return table.take(order)


@lru_cache(maxsize=512)  # plans repeat; a program is immutable, so one serves them all
def compile_merge(final_sql: str, *, rows: bool = False) -> ArrowMerge | None:
    """An Arrow program for this merge query, or None if any part of it is outside the set.

    ``rows``: the merge of a rows or groups plan (no aggregates, columns read as they are).
    """
    try:
        select = sqlglot.parse_one(final_sql, read="duckdb")
        return _Compiler(rows).select(select)
    except (Unsupported, SqlglotError):
        return None


def _columns(parts: pa.Table) -> dict[str, pa.Array]:
    env = {f"#{i + 1}": column for i, column in enumerate(parts.columns)}
    env.update(zip(parts.column_names, parts.columns, strict=True))
    return env


class _Compiler:
    def __init__(self, rows: bool) -> None:
        self.rows = rows
        self.keys: list[str] = []
        self.aggregates: dict[tuple[str, str, pa.DataType | None, str], None] = {}

    def select(self, node: exp.Expr) -> ArrowMerge:
        if not isinstance(node, exp.Select):
            raise Unsupported("not a SELECT")
        allowed = {"expressions", "from", "from_", "group", "having", "order", "limit", "offset"}
        extra = [k for k, v in node.args.items() if v and k not in allowed]
        source = from_clause(node)
        if extra or source is None or source.this != exp.to_table(PARTS):
            raise Unsupported(f"merge query shape: {extra}")
        group = node.args.get("group")
        if self.rows and (group or node.args.get("having")):
            raise Unsupported("grouping in a rows merge")
        for key in group.expressions if group else []:
            self.keys.append(self._partial_column(key))
        outputs, aliases = [], []
        for item in node.expressions:
            aliases.append(item.alias_or_name.lower())
            outputs.append(self.value(item.this if isinstance(item, exp.Alias) else item))
        having = node.args.get("having")
        condition = self.value(having.this) if having else None
        order = node.args.get("order")
        ordered = []
        for spec in order.expressions if order else []:
            value = self._order_value(spec.this, aliases, outputs)
            # sqlglot spells out DuckDB's default, NULLS LAST, as nulls_first=False.
            ordered.append((value, bool(spec.args.get("desc")), bool(spec.args.get("nulls_first"))))
        return ArrowMerge(
            rows=self.rows,
            keys=tuple(self.keys),
            aggregates=tuple(self.aggregates),
            outputs=tuple(outputs),
            having=condition,
            order=tuple(ordered),
            limit=_constant(node.args.get("limit")),
            offset=_constant(node.args.get("offset")) or 0,
        )

    def _row_column(self, node: exp.Expr) -> str:
        if not isinstance(node, exp.Column) or node.table:
            raise Unsupported(f"not a column of the parts: {node}")
        return str(node.name)

    def _partial_column(self, node: exp.Expr) -> str:
        if not isinstance(node, exp.Column) or node.table or not node.name.startswith("_"):
            raise Unsupported(f"not a partial column: {node}")
        return node.name

    def _order_value(self, node: exp.Expr, aliases: list[str], outputs: list[Value]) -> Value:
        if isinstance(node, exp.Literal) and not node.is_string:
            return outputs[int(node.this) - 1]
        if isinstance(node, exp.Column) and not node.table and node.name.lower() in aliases:
            return outputs[aliases.index(node.name.lower())]
        return self.value(node)

    def value(self, node: exp.Expr) -> Value:
        if isinstance(node, exp.Paren):
            return self.value(node.this)
        if self.rows and isinstance(node, exp.PositionalColumn | exp.Column):
            if isinstance(node, exp.PositionalColumn):
                name = f"#{_literal(node.this)}"
            else:
                name = self._row_column(node)
            return lambda env: _lookup(env, name)
        if isinstance(node, exp.Column):
            name = self._partial_column(node)
            if name not in self.keys:
                raise Unsupported(f"{name} is not a group key")
            return lambda env: env[name]
        if type(node) in _AGGREGATES and not self.rows:
            fn, arg, cast = _AGGREGATES[type(node)], node.this, None
            if isinstance(arg, exp.Cast):  # BOOL_OR(CAST(_a3 AS BOOLEAN))
                arg, cast = arg.this, _type_of(arg)
            partial = self._partial_column(arg)
            column = partial if cast is None else f"{partial}::{cast}"
            self.aggregates[(column, partial, cast, fn)] = None
            return lambda env: env[f"{column}_{fn}"]
        if isinstance(node, exp.Cast):
            target, inner = _type_of(node), self.value(node.this)
            return lambda env: _fit(inner(env), target)
        if isinstance(node, exp.Div):
            num, den = self.value(node.this), self.value(node.expression)
            return lambda env: pc.divide(_as_double(num(env)), _as_double(den(env)))
        if isinstance(node, exp.Coalesce) and len(node.expressions) == 1:
            first, default = self.value(node.this), _literal(node.expressions[0])
            return lambda env: _coalesce(first(env), default)
        if isinstance(node, exp.Nullif):
            first, other = self.value(node.this), _literal(node.expression)
            return lambda env: _nullif(first(env), other)
        if type(node) in _COMPARE:
            fn, left = _COMPARE[type(node)], self.value(node.this)
            number = _literal(node.expression)
            return lambda env: _compare(fn, left(env), number)
        if isinstance(node, exp.And | exp.Or):
            logic = "and_kleene" if isinstance(node, exp.And) else "or_kleene"
            one, two = self.value(node.this), self.value(node.expression)
            return lambda env: getattr(pc, logic)(one(env), two(env))
        raise Unsupported(f"expression {type(node).__name__}")


def _lookup(env: dict[str, pa.Array], name: str) -> pa.Array:
    column = env.get(name)
    if column is None:  # DuckDB would match names without regard to case
        raise Unsupported(f"no part column {name!r}")
    return column


def _type_of(cast: exp.Cast) -> pa.DataType:
    target = _TYPES.get(cast.to.sql(dialect="duckdb").upper())
    if target is None:
        raise Unsupported(f"cast to {cast.to}")
    return target


def _literal(node: exp.Expr) -> int | float:
    if isinstance(node, exp.Literal) and not node.is_string:
        text = node.this
        return int(text) if text.lstrip("-").isdigit() else float(text)
    raise Unsupported(f"not a number literal: {node}")


def _constant(node: exp.Expr | None) -> int | None:
    if node is None:
        return None
    value = _literal(node.args["expression"])
    if not isinstance(value, int) or value < 0:
        raise Unsupported("LIMIT/OFFSET")
    return value


def _like(number: int | float, values: pa.Array) -> pa.Scalar:
    """A literal as a scalar of the column's type (an inexact cast raises ArrowInvalid)."""
    return pa.scalar(number).cast(values.type)


def _compare(fn: str, values: pa.Array, number: int | float) -> pa.Array:
    if _has_nan(values):
        raise Unsupported("NaN in a comparison")  # DuckDB: NaN is above every number
    return getattr(pc, fn)(values, _like(number, values))


def _coalesce(values: pa.Array, default: int | float) -> pa.Array:
    return pc.coalesce(values, _like(default, values))


def _nullif(values: pa.Array, other: int | float) -> pa.Array:
    same = pc.equal(values, _like(other, values))
    return pc.if_else(pc.fill_null(same, False), pa.nulls(len(values), values.type), values)


def _as_double(values: pa.Array) -> pa.Array:
    """DuckDB's ``/`` divides as DOUBLE."""
    if pa.types.is_floating(values.type):
        return values.cast(pa.float64())
    if pa.types.is_integer(values.type) or pa.types.is_decimal(values.type):
        return values.cast(pa.float64(), safe=False)  # nearest double, as DuckDB's cast
    raise Unsupported(f"division of {values.type}")


def _fit(values: pa.Array, target: pa.DataType) -> pa.Array:
    """``values`` as ``target`` where the conversion is exact (or DuckDB's own rounding)."""
    source = values.type
    if source == target:
        return values
    numeric = pa.types.is_integer(source) or pa.types.is_decimal(source)
    if numeric and pa.types.is_floating(target):
        return values.cast(target, safe=False)
    whole = pa.types.is_integer(source) or (pa.types.is_decimal(source) and source.scale == 0)
    if whole and (pa.types.is_integer(target) or target == HUGEINT):
        try:
            return values.cast(target)  # checked: an overflow is DuckDB's error to report
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise Unsupported(f"{source} does not fit {target}") from None
    raise Unsupported(f"cast {source} to {target}")


def _has_nan(values: pa.Array | pa.ChunkedArray | None) -> bool:
    if values is None or not pa.types.is_floating(values.type):
        return False
    return bool(pc.any(pc.is_nan(values)).as_py())


def _check_aggregate(values: pa.ChunkedArray, fn: str) -> None:
    """Refuse data whose Arrow aggregate would differ from DuckDB's."""
    kind = values.type
    if fn in ("min", "max") and _has_nan(values):
        raise Unsupported("MIN/MAX over NaN")  # DuckDB orders NaN above every number
    if fn == "sum" and (pa.types.is_integer(kind) or pa.types.is_decimal(kind)):
        total = pc.sum(pc.abs(values.cast(pa.float64(), safe=False))).as_py() or 0.0
        if total >= _SUM_LIMIT["int" if pa.types.is_integer(kind) else "decimal"]:
            raise Unsupported("a sum that might overflow")
    if fn in ("all", "any") and not pa.types.is_boolean(kind):
        raise Unsupported(f"BOOL_AND/OR of {kind}")
