"""A relation produced by a q table expression, how to read it back in q's row order, and
how to cut rows in that order (take, sublist, select[n])."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from itertools import count

from queries.q.errors import TranslationError
from queries.q.literals import vector_atoms
from queries.q.nodes import Call, Name, Node, Num
from queries.q.sqlexpr import quote_ident

Column = tuple[str, str | None]  # name, q type


@dataclass(frozen=True)
class Rel:
    """``source`` is a FROM item (a table name or a parenthesised SELECT).

    ``order`` lists the (column, descending) pairs that give q's row order; they are columns
    of ``source``, either visible or carried as hidden ``__o*`` columns. ``keys`` are the key
    columns of a keyed table (the by columns of a select ... by).
    """

    source: str
    columns: tuple[Column, ...]
    order: tuple[tuple[str, bool], ...] = ()
    hidden: tuple[str, ...] = ()
    keys: tuple[str, ...] = ()
    unique_keys: bool = False

    @property
    def names(self) -> list[str]:
        return [c for c, _ in self.columns]

    def types(self) -> dict[str, str | None]:
        return dict(self.columns)


def keep_order(rel: Rel, visible: list[str]) -> tuple[str, ...]:
    """Hidden columns a projection to ``visible`` must keep so the row order survives."""
    hidden = list(rel.hidden)
    for col, _ in rel.order:
        if col not in visible and col not in hidden:
            hidden.append(col)
    return tuple(hidden)


def order_terms(order: tuple[tuple[str, bool], ...], *, reverse: bool = False) -> list[str]:
    """ORDER BY terms; q sorts nulls as the smallest values."""
    terms = []
    for col, desc in order:
        d = desc != reverse
        terms.append(f"{quote_ident(col)} {'DESC NULLS LAST' if d else 'ASC NULLS FIRST'}")
    return terms


def window_order(order: tuple[tuple[str, bool], ...]) -> tuple[str, ...]:
    """Order keys for window functions and first/last: plain column for ascending keys."""
    return tuple(quote_ident(c) + (" DESC NULLS LAST" if d else "") for c, d in order)


@dataclass
class Aliases:
    """Fresh aliases for subqueries and hidden columns within one translation."""

    counter: count[int] = field(default_factory=count)

    def table(self) -> str:
        return f"_t{next(self.counter)}"

    def column(self, prefix: str) -> str:
        return f"__{prefix}{next(self.counter)}"


def render(rel: Rel, aliases: Aliases) -> str:
    """The final statement: visible columns only, in q's row order."""
    cols = ", ".join(quote_ident(c) for c in rel.names)
    sql = f"SELECT {cols} FROM {rel.source} AS {aliases.table()}"
    terms = order_terms(rel.order)
    return sql + (" ORDER BY " + ", ".join(terms) if terms else "")


# -- cutting rows in row order ---------------------------------------------------------


def int_items(node: Node, what: str) -> list[int]:
    """The literal integer counts of take, sublist and select[n]: ``5``, ``-5``, ``2 3``."""
    if not isinstance(node, Num):
        raise TranslationError(f"'{what}' needs a literal integer count", node.pos)
    atoms = vector_atoms(node.items, node.pos)
    if any(a.qtype not in ("long", "int", "short") or a.is_null for a in atoms):
        raise TranslationError(f"'{what}' needs integer counts", node.pos)
    return [int(a.sql.split("(")[1].split(" ")[0]) for a in atoms]


def limit(rel: Rel, aliases: Aliases, count: int, offset: int = 0, from_end: bool = False) -> Rel:
    """At most ``count`` rows after ``offset`` in row order (from the end: the last ones)."""
    terms = order_terms(rel.order, reverse=from_end)
    sql = f"SELECT * FROM {rel.source} AS {aliases.table()}"
    if terms:
        sql += " ORDER BY " + ", ".join(terms)
    sql += f" LIMIT {count}" + (f" OFFSET {offset}" if offset else "")
    return replace(rel, source=f"({sql})")


def apply_limit(rel: Rel, args: tuple[Node, ...], aliases: Aliases) -> Rel:
    """select[n], select[-n], select[m n], select[>col], select[n;<col]."""
    sort = [a for a in args if isinstance(a, Call) and a.fn in ("<", ">") and len(a.args) == 1]
    counts = [a for a in args if a not in sort]
    for s in sort:
        col = s.args[0]
        if not isinstance(col, Name) or col.name not in rel.names:
            raise TranslationError("select[<col] and select[>col] need a result column name", s.pos)
        kept = tuple(o for o in rel.order if o[0] != col.name)
        rel = replace(rel, order=((col.name, s.fn == ">"), *kept))
    if len(counts) > 1:
        raise TranslationError("select[...] takes one count and one sort", args[0].pos)
    if counts:
        items = int_items(counts[0], "select[n]")
        if len(items) == 1:
            rel = limit(rel, aliases, abs(items[0]), from_end=items[0] < 0)
        elif len(items) == 2:
            rel = limit(rel, aliases, items[1], offset=items[0])
        else:
            raise TranslationError("select[n] takes n, -n or start count", counts[0].pos)
    return rel
