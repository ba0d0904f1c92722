"""What translating one q expression yields: SQL text plus what the translator knows of it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

from queries.q.literals import Atom

# row: one value per row; agg: one value per group (an aggregate); const: a literal atom.
Shape = Literal["row", "agg", "const"]
# How aggregates are rendered: as GROUP BY aggregates, or as window functions over a partition.
Mode = Literal["agg", "window"]


@dataclass(frozen=True)
class Expr:
    sql: str
    qtype: str | None
    shape: Shape
    # Known never to be null (a non-null literal): comparisons can then skip q's null rules.
    nonnull: bool = False
    # Contains a window function: cannot sit in WHERE, GROUP BY or inside another window.
    window: bool = False
    # A literal vector: its atoms (for in, within, xbar lists).
    items: tuple[Atom, ...] | None = None
    # A timespan literal's exact nanoseconds.
    nanos: int | None = None
    # For time-of-day values cut from a timestamp (time.minute): that timestamp's SQL, so
    # that bars can bucket the timestamp directly.
    tod_source: str | None = None
    # Refers to a window computed one level down: another window cannot be built on it there.
    hoisted: bool = False

    def with_sql(self, sql: str, *, qtype: str | None = None, nonnull: bool | None = None) -> Expr:
        """The same kind of value computed by ``sql`` (literal-only facts dropped)."""
        return replace(
            self,
            sql=sql,
            items=None,
            nanos=None,
            tod_source=None,
            qtype=self.qtype if qtype is None else qtype,
            nonnull=self.nonnull if nonnull is None else nonnull,
        )


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@dataclass
class Scope:
    """Where an expression is evaluated: the columns in reach and how aggregates render."""

    columns: Mapping[str, str | None]
    # SQL of the keys that give the table's row order (time order for tick tables).
    order: tuple[str, ...]
    mode: Mode
    partition: tuple[str, ...] = ()
    # In a WHERE clause a NULL predicate already means false, so q's null rules can be
    # relaxed there and simple comparisons stay pushable into the scan.
    where_ctx: bool = False
    # Registers a window expression to be computed one query level down, returning the
    # column name that holds it; None where no such level exists.
    hoist: Callable[[str], str] | None = None
    # Translates a nested exec (for ``x in exec c from t``) to a one-column SELECT.
    subquery: Callable[[object], str] | None = None
    hoisted: set[str] = field(default_factory=set)
