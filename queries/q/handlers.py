"""What a q function's translation is, shared by the modules that translate them.

A ``Handler`` turns a call into a SQL expression; it is handed ``Translate`` (the
expression translator of ``exprs``) for its arguments, so the modules of handlers
(``operators``, ``aggregates``, ``temporal``) never import ``exprs``, which dispatches to
them. ``derived`` is the expression most handlers build from their arguments'.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from queries.q.errors import MixedShapes
from queries.q.nodes import Call, Node
from queries.q.sqlexpr import Expr, Scope

Translate = Callable[[Node, Scope], Expr]
Handler = Callable[[Call, Scope, Translate], Expr]


def derived(sql: str, qtype: str | None, args: Sequence[Expr], pos: int, **extra: object) -> Expr:
    """An expression computed from ``args``: its shape, windowing and nullness follow them."""
    shapes = {a.shape for a in args}
    if {"row", "agg"} <= shapes:
        raise MixedShapes("mixing per-row values and aggregates here is not supported", pos)
    shape = "row" if "row" in shapes else "agg" if "agg" in shapes else "const"
    nonnull = bool(extra.pop("nonnull", all(a.nonnull for a in args)))
    return Expr(
        sql,
        qtype,
        shape,  # type: ignore[arg-type]
        nonnull=nonnull,
        window=any(a.window for a in args),
        hoisted=any(a.hoisted for a in args),
        **extra,  # type: ignore[arg-type]
    )
