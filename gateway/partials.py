"""Aggregates split into per-backend partials and finished at the gateway.

``Partials`` names each partial expression a backend computes (``_a0``, ``_a1``, ...,
deduplicated); ``finish_aggregate`` is the gateway-side expression that combines them:
count -> sum of counts, avg -> sum / count, first/last -> arg_min/arg_max carrying the key.
"""

from __future__ import annotations

import sqlglot
from sqlglot import exp


class NotDistributable(Exception):
    """The query cannot be split safely; run it whole over pulled rows instead."""


def to_sql(node: exp.Expr) -> str:
    return node.sql(dialect="duckdb")


def parse_sql(text: str) -> exp.Expr:
    return sqlglot.parse_one(text, read="duckdb")


class Partials:
    """Partial aggregate expressions, deduplicated, named _a0, _a1, ..."""

    def __init__(self) -> None:
        self.items: dict[str, str] = {}

    def add(self, text: str) -> str:
        if text not in self.items:
            self.items[text] = f"_a{len(self.items)}"
        return self.items[text]


def finish_aggregate(node: exp.Expr, partials: Partials) -> exp.Expr:
    """The gateway-side expression finishing one aggregate call from its partials."""
    agg, where = (node.this, node.expression.this) if isinstance(node, exp.Filter) else (node, None)
    filt = f" FILTER (WHERE {to_sql(where)})" if where is not None else ""
    also = f" AND ({to_sql(where)})" if where is not None else ""
    arg = agg.this
    if isinstance(arg, exp.Distinct) or agg.args.get("ignore_nulls"):
        raise NotDistributable("DISTINCT aggregate")
    single = isinstance(arg, exp.Expr) and not agg.expressions
    if isinstance(agg, exp.Count) and (isinstance(arg, exp.Star) or single):
        part = partials.add(f"COUNT({to_sql(arg)}){filt}")
        return parse_sql(f"CAST(COALESCE(SUM({part}), 0) AS BIGINT)")
    if isinstance(agg, exp.CountIf) and single:
        # DuckDB's count_if is a sum of booleans: NULL over no rows (or only NULL conditions),
        # so the partials are summed without turning "none" into 0.
        part = partials.add(f"COUNT_IF({to_sql(arg)}){filt}")
        return parse_sql(f"CAST(SUM({part}) AS BIGINT)")
    simple: dict[type, str] = {
        exp.Sum: "SUM",
        exp.Min: "MIN",
        exp.Max: "MAX",
        exp.LogicalAnd: "BOOL_AND",
        exp.LogicalOr: "BOOL_OR",
        exp.AnyValue: "ANY_VALUE",
    }
    if type(agg) in simple and single and not isinstance(arg, exp.Order):
        fn = simple[type(agg)]
        return parse_sql(f"{fn}({partials.add(f'{fn}({to_sql(arg)}){filt}')})")
    if isinstance(agg, exp.Avg) and single and not isinstance(arg, exp.Order):
        total = partials.add(f"SUM({to_sql(arg)}){filt}")
        count = partials.add(f"COUNT({to_sql(arg)}){filt}")
        return parse_sql(f"SUM({total}) / NULLIF(SUM({count}), 0)")
    if (
        isinstance(agg, exp.ArgMin | exp.ArgMax)
        and agg.expression is not None
        and not agg.args.get("count")
    ):
        pick = "MIN" if isinstance(agg, exp.ArgMin) else "MAX"
        value, key = to_sql(arg), to_sql(agg.expression)
        # arg_min skips rows whose value is NULL, so the carried key must skip them too.
        best = partials.add(f"ARG_{pick}({value}, {key}){filt}")
        at = partials.add(f"{pick}({key}) FILTER (WHERE ({value}) IS NOT NULL{also})")
        return parse_sql(f"ARG_{pick}({best}, {at})")
    if isinstance(agg, exp.First | exp.Last) and isinstance(arg, exp.Order):
        keys = arg.expressions
        if len(keys) != 1 or keys[0].args.get("nulls_first"):
            raise NotDistributable("first/last needs exactly one ORDER BY key")
        first = isinstance(agg, exp.First) != bool(keys[0].args.get("desc"))
        pick = "MIN" if first else "MAX"
        value, key = to_sql(arg.this), to_sql(keys[0].this)
        # first/last keep a NULL value; wrapping it in a struct stops arg_min skipping it.
        best = partials.add(f"ARG_{pick}({{'v': {value}}}, {key}){filt}")
        at = partials.add(f"{pick}({key}){filt}")
        return parse_sql(f"STRUCT_EXTRACT(ARG_{pick}({best}, {at}), 'v')")
    if isinstance(agg, exp.Anonymous) and str(agg.name).lower() == "vwap":
        return _vwap(agg, partials, filt)
    raise NotDistributable(f"aggregate {to_sql(agg)} is not decomposable")


def _vwap(agg: exp.Anonymous, partials: Partials, filt: str) -> exp.Expr:
    """The ``vwap`` macro (``queries.macros``) is a ratio of two sums: each backend sums
    ``price * size`` and the sizes of priced rows, the gateway divides the sums of those."""
    if len(agg.expressions) != 2:
        raise NotDistributable("vwap takes price and size")
    price, size = (f"({to_sql(a)})" for a in agg.expressions)
    notional = partials.add(f"SUM({price} * {size}){filt}")
    volume = partials.add(f"SUM(CASE WHEN {price} IS NOT NULL THEN {size} END){filt}")
    return parse_sql(f"SUM({notional}) / NULLIF(SUM({volume}), 0)")
