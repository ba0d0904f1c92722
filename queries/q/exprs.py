"""q expressions inside a query -> SQL expressions, dispatching on the node and function.

Operators live in ``operators``, aggregates and uniform (window) functions in
``aggregates``, casts, dotted temporal parts and bars in ``temporal``. This module holds the
leaves (literals, column names) and the dispatch table.
"""

from __future__ import annotations

from queries.deadline import checkpoint
from queries.q import aggregates, operators, temporal
from queries.q.errors import TranslationError
from queries.q.handlers import Handler, Translate, derived
from queries.q.literals import Atom, null_atom, vector_atoms
from queries.q.nodes import Call, Func, ListExpr, Name, Node, Num, Query, Str, Sym
from queries.q.sqlexpr import Expr, Scope, quote_ident, quote_str


def translate(node: Node, scope: Scope) -> Expr:
    checkpoint()  # once per node: the query's time limit (queries.deadline)
    if isinstance(node, Num):
        return _number(node)
    if isinstance(node, Sym):
        return _symbol(node)
    if isinstance(node, Str):
        return Expr(quote_str(node.text), "string", "const", nonnull=True)
    if isinstance(node, Name):
        return column(node, scope)
    if isinstance(node, Call):
        return _call(node, scope)
    if isinstance(node, Func):
        raise TranslationError(
            f"function '{node.name}' used as a value needs an argument", node.pos
        )
    if isinstance(node, ListExpr):
        return _general_list(node, scope)
    if isinstance(node, Query):
        raise TranslationError(
            f"a nested '{node.kind}' is only supported as a table or after 'in'", node.pos
        )
    raise TranslationError(f"unsupported construct {type(node).__name__}", node.pos)


def _from_atoms(atoms: list[Atom]) -> Expr:
    if len(atoms) == 1:
        a = atoms[0]
        return Expr(a.sql, a.qtype, "const", nonnull=not a.is_null, nanos=a.nanos)
    qtypes = {a.qtype for a in atoms}
    qtype = qtypes.pop() if len(qtypes) == 1 else None
    sql = "[" + ", ".join(a.sql for a in atoms) + "]"
    return Expr(sql, qtype, "const", items=tuple(atoms))


def _number(node: Num) -> Expr:
    return _from_atoms(vector_atoms(node.items, node.pos))


def _symbol(node: Sym) -> Expr:
    atoms = [Atom(quote_str(n), "symbol") if n else null_atom("symbol") for n in node.names]
    if node.is_list:
        sql = "[" + ", ".join(a.sql for a in atoms) + "]"
        return Expr(sql, "symbol", "const", items=tuple(atoms))
    return _from_atoms(atoms)


def _general_list(node: ListExpr, scope: Scope) -> Expr:
    """(a;b) of literal atoms is a vector, e.g. the bounds in ``x within (lo;hi)``."""
    atoms: list[Atom] = []
    for item in node.items:
        e = translate(item, scope)
        if e.shape != "const" or e.items is not None:
            raise TranslationError(
                "general lists are only supported as lists of literals", item.pos
            )
        atoms.append(Atom(e.sql, e.qtype or "", not e.nonnull, e.nanos))
    if not atoms:
        raise TranslationError("the empty list () is not supported here", node.pos)
    qtypes = {a.qtype for a in atoms}
    qtype = qtypes.pop() if len(qtypes) == 1 else None
    sql = "[" + ", ".join(a.sql for a in atoms) + "]"
    return Expr(sql, qtype, "const", items=tuple(atoms))


def column(node: Name, scope: Scope) -> Expr:
    name = node.name
    if name in scope.columns:
        return Expr(quote_ident(name), scope.columns[name], "row")
    head, _, part = name.partition(".")
    if part and head in scope.columns:
        base = Expr(quote_ident(head), scope.columns[head], "row")
        return temporal.dot_part(base, part, node.pos)
    if name == "i":
        raise TranslationError("the virtual column 'i' is only supported as 'count i'", node.pos)
    known = ", ".join(sorted(scope.columns))
    raise TranslationError(f"unknown column '{name}' (columns: {known})", node.pos)


def _call(node: Call, scope: Scope) -> Expr:
    if node.adverb is not None:
        raise TranslationError(
            f"adverb {node.adverb!r} after '{node.fn}' is not supported", node.pos
        )
    handler = _HANDLERS.get(node.fn)
    if handler is None:
        raise TranslationError(f"'{node.fn}' is not supported in q translation", node.pos)
    arity = len(node.args)
    expected = _ARITY.get(node.fn, {1, 2})
    if arity not in expected:
        raise TranslationError(
            f"'{node.fn}' takes {'/'.join(map(str, sorted(expected)))} argument(s), got {arity}",
            node.pos,
        )
    return handler(node, scope, translate)


def _null_check(node: Call, scope: Scope, tr: Translate) -> Expr:
    x = tr(node.args[0], scope)
    return x.with_sql(f"({x.sql} IS NULL)", qtype="boolean", nonnull=True)


def _string(node: Call, scope: Scope, tr: Translate) -> Expr:
    x = tr(node.args[0], scope)
    if x.qtype not in ("symbol", "string"):
        raise TranslationError(
            "'string' is only supported on symbols (q formats numbers its own way)", node.pos
        )
    return x.with_sql(x.sql, qtype="string")


def _case(fn: str) -> Handler:
    def handler(node: Call, scope: Scope, tr: Translate) -> Expr:
        x = tr(node.args[0], scope)
        if x.qtype not in ("symbol", "string"):
            raise TranslationError(f"'{fn}' needs symbols or strings", node.pos)
        return x.with_sql(f"{fn}({x.sql})")

    return handler


def _vector_conditional(node: Call, scope: Scope, tr: Translate) -> Expr:
    if len(node.args) != 3:
        raise TranslationError("'?' is only supported as the vector conditional ?[c;a;b]", node.pos)
    cond, a, b = (tr(arg, scope) for arg in node.args)
    operators.require_boolean(cond, node.args[0].pos, "?[c;a;b] condition")
    qtype = a.qtype if a.qtype == b.qtype else operators.promote_or_fail(a, b, node.pos)
    sql = f"(CASE WHEN {cond.sql} THEN {a.sql} ELSE {b.sql} END)"
    return derived(sql, qtype, (cond, a, b), node.pos)


_HANDLERS: dict[str, Handler] = {
    **operators.HANDLERS,
    **aggregates.HANDLERS,
    **temporal.HANDLERS,
    "null": _null_check,
    "string": _string,
    "upper": _case("upper"),
    "lower": _case("lower"),
    "?": _vector_conditional,
}
_ARITY: dict[str, set[int]] = {
    **{fn: {1} for fn in aggregates.MONADIC | operators.MONADIC},
    **{fn: {2} for fn in aggregates.DYADIC | operators.DYADIC | temporal.DYADIC},
    "null": {1},
    "string": {1},
    "upper": {1},
    "lower": {1},
    "?": {3},
}
