"""The public entry point: q text -> one read-only DuckDB SELECT."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from queries.q.context import Context
from queries.q.errors import TranslationError
from queries.q.parser import parse
from queries.q.rel import Aliases, Rel, render
from queries.q.tables import table_rel
from tickdb.schema import TableSchema


@dataclass(frozen=True)
class QTranslation:
    """``sql`` reads the logical tables by name; ``columns`` are the result's (name, q type)
    in order (q type ``list`` for per-group vectors, None where unknown); ``keys`` are the
    key columns of a keyed result (the by columns), which lead ``columns``."""

    q: str
    sql: str
    columns: tuple[tuple[str, str | None], ...]
    keys: tuple[str, ...] = ()


def translate(q: str, schemas: Mapping[str, TableSchema]) -> QTranslation:
    try:
        return _translate(q, schemas)
    except RecursionError:
        # Parsing and translating recurse per level of nesting, infix chains (1+1+...) too.
        raise TranslationError("query nests too deeply", 0) from None


def _translate(q: str, schemas: Mapping[str, TableSchema]) -> QTranslation:
    tree = parse(q)
    aliases = Aliases()
    ctx: Context

    def table(node: object) -> Rel:
        return table_rel(node, schemas, ctx)  # type: ignore[arg-type]

    ctx = Context(table, aliases)
    rel = table(tree)
    return QTranslation(q, render(rel, aliases), rel.columns, rel.keys)
