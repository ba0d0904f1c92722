"""A relation produced by a q table expression, and how to read it back in q's row order."""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import count

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
