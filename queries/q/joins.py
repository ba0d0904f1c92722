"""q joins -> SQL joins: aj/aj0 (ASOF JOIN), lj/ij (keyed joins), wj/wj1 (window joins).

Column rules follow kdb+: the result has the left table's columns, then the right table's
new columns; a column both tables have (other than the join keys) takes the right table's
value where a row matched and keeps the left value where none did.
"""

from __future__ import annotations

from collections.abc import Callable

from queries.q.context import Context
from queries.q.errors import TranslationError
from queries.q.exprs import translate
from queries.q.literals import vector_atoms
from queries.q.nodes import Call, Func, ListExpr, Name, Node, Num, Sym
from queries.q.rel import Rel, window_order
from queries.q.sqlexpr import Scope, quote_ident

JoinHandler = Callable[[Call, Context], Rel]


def _key_names(node: Node, what: str) -> list[str]:
    if not isinstance(node, Sym):
        raise TranslationError(
            f"'{what}' needs the join columns as symbols, e.g. `sym`time", node.pos
        )
    return list(node.names)


def _check_columns(cols: list[str], rel: Rel, side: str, node: Node, what: str) -> None:
    missing = [c for c in cols if c not in rel.names]
    if missing:
        raise TranslationError(f"'{what}': {side} table has no column(s) {missing}", node.pos)


def _combine(
    left: Rel, right: Rel, la: str, ra: str, matched: str, keep_left: set[str]
) -> list[str]:
    """Select list: left columns (common ones from the right when matched), then new ones."""
    q = quote_ident
    right_names = set(right.names)
    listed = []
    for c in left.names:
        if c in right_names and c not in keep_left:
            listed.append(f"CASE WHEN {matched} THEN {ra}.{q(c)} ELSE {la}.{q(c)} END AS {q(c)}")
        else:
            listed.append(f"{la}.{q(c)}")
    listed += [f"{ra}.{q(c)}" for c in right.names if c not in set(left.names)]
    listed += [f"{la}.{q(h)}" for h in left.hidden]
    return listed


def _columns(left: Rel, right: Rel) -> tuple[tuple[str, str | None], ...]:
    types = left.types()
    out = list(left.columns)
    for c, t in right.columns:
        if c in types:
            out[[n for n, _ in out].index(c)] = (c, t)
        else:
            out.append((c, t))
    return tuple(out)


def _asof(use_right_time: bool) -> JoinHandler:
    def handler(node: Call, ctx: Context) -> Rel:
        what = node.fn
        if len(node.args) != 3:
            raise TranslationError(f"'{what}' takes [columns; left table; right table]", node.pos)
        keys = _key_names(node.args[0], what)
        left, right = ctx.table(node.args[1]), ctx.table(node.args[2])
        _check_columns(keys, left, "left", node.args[1], what)
        _check_columns(keys, right, "right", node.args[2], what)
        *eq, t = keys
        la, ra = ctx.aliases.table(), ctx.aliases.table()
        q = quote_ident
        on = [f"{la}.{q(k)} = {ra}.{q(k)}" for k in eq] + [f"{la}.{q(t)} >= {ra}.{q(t)}"]
        keep = set(eq) | (set() if use_right_time else {t})
        listed = _combine(left, right, la, ra, f"{ra}.{q(t)} IS NOT NULL", keep)
        sql = (
            f"SELECT {', '.join(listed)} FROM {left.source} AS {la} "
            f"ASOF LEFT JOIN {right.source} AS {ra} ON {' AND '.join(on)}"
        )
        return Rel(f"({sql})", _columns(left, right), left.order, left.hidden)

    return handler


def _keyed(inner: bool) -> JoinHandler:
    def handler(node: Call, ctx: Context) -> Rel:
        what = node.fn
        left, right = ctx.table(node.args[0]), ctx.table(node.args[1])
        if not right.keys:
            raise TranslationError(
                f"'{what}' needs a keyed table on the right: select ... by k from t or `k xkey t",
                node.args[1].pos,
            )
        _check_columns(list(right.keys), left, "left", node.args[0], what)
        q = quote_ident
        marker = ctx.aliases.column("m")
        listed_right = [q(c) for c in right.names]
        source = f"SELECT {', '.join(listed_right)}, true AS {q(marker)} FROM {right.source}"
        source += f" AS {ctx.aliases.table()}"
        if not right.unique_keys:
            # A keyed table has one row per key: xkey on a table with repeats keeps the first.
            part = ", ".join(q(k) for k in right.keys)
            order = ", ".join(window_order(right.order)) or "1"
            source += f" QUALIFY row_number() OVER (PARTITION BY {part} ORDER BY {order}) = 1"
        la, ra = ctx.aliases.table(), ctx.aliases.table()
        on = " AND ".join(f"{la}.{q(k)} IS NOT DISTINCT FROM {ra}.{q(k)}" for k in right.keys)
        plain_right = Rel(right.source, tuple(c for c in right.columns if c[0] not in right.keys))
        listed = _combine(left, plain_right, la, ra, f"{ra}.{q(marker)}", set())
        join = "JOIN" if inner else "LEFT JOIN"
        sql = f"SELECT {', '.join(listed)} FROM {left.source} AS {la} {join} ({source}) AS {ra}"
        sql += f" ON {on}"
        return Rel(
            f"({sql})",
            _columns(left, plain_right),
            left.order,
            left.hidden,
            left.keys,
            left.unique_keys,
        )

    return handler


def _window_bounds(node: Node) -> tuple[int, int]:
    """wj windows: lo hi +\\: t.time with lo and hi timespan literals."""
    if (
        isinstance(node, Call)
        and node.fn == "+"
        and node.adverb == "\\:"
        and isinstance(node.args[0], Num)
        and isinstance(node.args[1], Name)
        and node.args[1].name.endswith(".time")
    ):
        atoms = vector_atoms(node.args[0].items, node.pos)
        if len(atoms) == 2 and all(a.nanos is not None for a in atoms):
            lo, hi = (a.nanos for a in atoms)
            assert lo is not None and hi is not None
            return lo, hi
    raise TranslationError(
        "'wj' windows are supported as two timespans added to the left table's "
        "times, e.g. -0D00:00:02 0D00:00:01+\\:trade.time",
        node.pos,
    )


def _window_join(include_prevailing: bool) -> JoinHandler:
    def handler(node: Call, ctx: Context) -> Rel:
        what = node.fn
        if len(node.args) != 4:
            raise TranslationError(
                f"'{what}' takes [windows; columns; table; (table;(f;`c);...)]", node.pos
            )
        lo, hi = _window_bounds(node.args[0])
        keys = _key_names(node.args[1], what)
        left = ctx.table(node.args[2])
        spec = node.args[3]
        if not isinstance(spec, ListExpr) or len(spec.items) < 2:
            raise TranslationError(
                f"'{what}' needs (table;(f;`c);...) as its last argument", spec.pos
            )
        right = ctx.table(spec.items[0])
        _check_columns(keys, left, "left", node.args[2], what)
        _check_columns(keys, right, "right", spec.items[0], what)
        *eq, t = keys
        q = quote_ident
        rid = ctx.aliases.column("id")
        la, ra, g = ctx.aliases.table(), ctx.aliases.table(), ctx.aliases.table()
        numbered = f"SELECT *, row_number() OVER () AS {q(rid)} FROM {left.source} AS {g}"
        start = f"make_timestamp_ns(epoch_ns({la}.{q(t)}) + {lo})"
        end = f"make_timestamp_ns(epoch_ns({la}.{q(t)}) + {hi})"
        eq_on = [f"{la}.{q(k)} = {ra}.{q(k)}" for k in eq]
        right_cols = ", ".join(q(c) for c in right.names)
        rsrc = f"(SELECT {right_cols} FROM {right.source} AS {ctx.aliases.table()})"
        first_op = ">" if include_prevailing else ">="
        in_window = [*eq_on, f"{ra}.{q(t)} {first_op} {start}", f"{ra}.{q(t)} <= {end}"]
        ranged = (
            f"SELECT {la}.{q(rid)}, {ra}.* FROM ({numbered}) AS {la} JOIN {rsrc} AS {ra} "
            f"ON {' AND '.join(in_window)}"
        )
        if include_prevailing:
            # wj also takes the quote prevailing at the window start.
            at_start = [*eq_on, f"{start} >= {ra}.{q(t)}"]
            prevailing = (
                f"SELECT {la}.{q(rid)}, {ra}.* FROM ({numbered}) AS {la} ASOF JOIN "
                f"{rsrc} AS {ra} ON {' AND '.join(at_start)}"
            )
            ranged = f"{ranged} UNION ALL {prevailing}"
        scope = Scope(right.types(), window_order(right.order), "agg")
        aggs = []
        for item in spec.items[1:]:
            if not (
                isinstance(item, ListExpr)
                and len(item.items) == 2
                and isinstance(item.items[0], Func)
                and isinstance(item.items[1], Sym)
            ):
                raise TranslationError(f"'{what}' aggregations are written (f;`column)", item.pos)
            fn, col = item.items
            assert isinstance(fn, Func) and isinstance(col, Sym)
            e = translate(Call(fn.pos, fn.name, (Name(col.pos, col.names[0]),)), scope)
            if e.shape != "agg":
                raise TranslationError(f"'{what}' needs an aggregate, not '{fn.name}'", fn.pos)
            aggs.append((col.names[0], e))
        w = ctx.aliases.table()
        agg_list = ", ".join(f"{e.sql} AS {q(c)}" for c, e in aggs)
        grouped = f"SELECT {q(rid)}, {agg_list} FROM ({ranged}) AS {w} GROUP BY 1"
        a = ctx.aliases.table()
        # Empty windows get what the aggregate gives over no rows (0 for count and sum, ...).
        empty = {
            c: f"(SELECT {e.sql} FROM {rsrc} AS {ctx.aliases.table()} WHERE false)" for c, e in aggs
        }
        agg_names = [c for c, _ in aggs]
        listed = [f"{la}.{q(c)}" for c in left.names if c not in agg_names]
        listed += [f"coalesce({a}.{q(c)}, {empty[c]}) AS {q(c)}" for c in agg_names]
        listed += [f"{la}.{q(h)}" for h in left.hidden]
        sql = (
            f"SELECT {', '.join(listed)} FROM ({numbered}) AS {la} LEFT JOIN ({grouped}) "
            f"AS {a} ON {la}.{q(rid)} = {a}.{q(rid)}"
        )
        cols = tuple(c for c in left.columns if c[0] not in agg_names) + tuple(
            (c, e.qtype) for c, e in aggs
        )
        return Rel(f"({sql})", cols, left.order, left.hidden)

    return handler


JOINS: dict[str, JoinHandler] = {
    "aj": _asof(False),
    "aj0": _asof(True),
    "lj": _keyed(False),
    "ij": _keyed(True),
    "wj": _window_join(True),
    "wj1": _window_join(False),
}
