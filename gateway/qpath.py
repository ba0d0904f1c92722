"""q through the gateway: translate q-sql to SQL, then route and merge it like any SQL.

The HTTP API (``{"q": ...}``) and the kdb+ port both come here, so a q query is planned,
sent to backends and merged exactly as the SQL it translates to. What the translation knows
and the SQL result does not (DuckDB results lose Arrow field metadata) travels on the
result table:

* each column's q type as field metadata ``q`` (``qipc.arrow`` reads it), when
  the column's Arrow type can hold it (the translator says ``None`` where it cannot tell);
* the key columns of a keyed result (``select ... by``) as schema metadata ``tickdb.keys``
  (a JSON list), since an Arrow table has no keys.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass

import pyarrow as pa

from gateway.catalog import Catalog
from gateway.deadline import Deadline
from gateway.merge import GatewayResult
from gateway.planner import Plan
from gateway.query_text import parse_within
from gateway.router import Router
from qipc.arrow import Q_METADATA_KEY, default_qtype
from queries.q import QTranslation, TranslationError, translate
from tickdb.schema import SchemaError, TableSchema

META_KEYS = b"tickdb.keys"

# Arrow type families whose q type is a choice the data alone cannot make (a string column
# may be symbol, string or char; a date32 a date or a month; a time32 a minute, second or
# time). Only within a family is a q type hint applied: a hint across families (an ``avg``
# named like a long column) would need a lossy cast, so the Arrow type's own default wins.
_FAMILIES: dict[str, frozenset[str]] = {
    "text": frozenset({"symbol", "string", "char"}),
    "day": frozenset({"date", "month"}),
    "clock": frozenset({"minute", "second", "time", "timespan"}),
}


@dataclass(frozen=True)
class QResult:
    result: GatewayResult
    translation: QTranslation

    @property
    def table(self) -> pa.Table:
        return self.result.table

    @property
    def keys(self) -> tuple[str, ...]:
        return self.translation.keys


class QPath:
    """Translate q against the router's current catalog and run it through the router."""

    def __init__(self, router: Router) -> None:
        self.router = router
        self._lock = threading.Lock()
        self._for: Catalog | None = None
        self._schemas: dict[str, TableSchema] = {}

    def schemas(self) -> dict[str, TableSchema]:
        """The logical tables as the translator wants them, rebuilt when the catalog is."""
        catalog = self.router.catalog
        with self._lock:
            if catalog is not self._for:
                self._schemas = _schemas_of(catalog)
                self._for = catalog
            return self._schemas

    def translate(self, q: str, deadline: Deadline | None = None) -> QTranslation:
        """Raises ``queries.q.TranslationError`` (message and position) for q outside the
        subset, ``QueryError`` for text out of bounds or a translation past ``deadline``
        (None: ``q`` is admitted here, with the gateway's time limit)."""
        if deadline is None:
            deadline = self.router.admit(q, "q")
        schemas = self.schemas()
        return parse_within(deadline, "q translation", lambda: translate(q, schemas))

    def plan(self, q: str) -> tuple[QTranslation, Plan]:
        """The translation and how its SQL would run (``POST /query/plan``)."""
        deadline = self.router.admit(q, "q")
        translation = self.translate(q, deadline)
        return translation, self.router.plan(translation.sql, deadline)

    def run(
        self,
        q: str,
        *,
        timeout_s: float | None = None,
        max_rows: int | None = None,
        allow_partial: bool = False,
    ) -> QResult:
        """Raises ``TranslationError`` (translation) or ``QueryError`` (as ``Router.run_sql``)."""
        deadline = self.router.admit(q, "q", timeout_s)  # translation counts towards it
        translation = self.translate(q, deadline)
        result = self.router.run_sql(
            translation.sql, max_rows=max_rows, allow_partial=allow_partial, deadline=deadline
        )
        table = annotate(result.table, translation.columns, translation.keys)
        return QResult(_with_table(result, table), translation)


def annotate(
    table: pa.Table,
    qtypes: Mapping[str, str | None] | tuple[tuple[str, str | None], ...],
    keys: tuple[str, ...] = (),
) -> pa.Table:
    """``table`` with ``q`` field metadata where a hint fits and ``tickdb.keys`` metadata."""
    hints = dict(qtypes)
    fields = []
    for f in table.schema:
        qtype = fitting_qtype(f.type, hints.get(f.name))
        fields.append(f.with_metadata({**(f.metadata or {}), Q_METADATA_KEY: qtype.encode()}))
    meta = dict(table.schema.metadata or {})
    if keys:
        meta[META_KEYS] = json.dumps(list(keys)).encode()
    # Same types, new metadata: no data is copied.
    return pa.Table.from_arrays(table.columns, schema=pa.schema(fields, metadata=meta))


def fitting_qtype(arrow_type: pa.DataType, hint: str | None) -> str:
    """``hint`` if the Arrow type can carry it unchanged, else the type's default q type.

    Nested columns (per-group lists) are ``list``: the kdb+ port sends them as lists of
    vectors of their value type.
    """
    if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type):
        return "list"
    try:
        default = default_qtype(arrow_type)
    except TypeError:
        return hint or "unknown"
    if hint is None or hint == default:
        return default
    for family in _FAMILIES.values():
        if default in family and hint in family:
            if hint == "char" and not _one_char_ok(arrow_type):
                return default
            return hint
    return default


def _one_char_ok(arrow_type: pa.DataType) -> bool:
    return pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type)


def result_keys(table: pa.Table) -> list[str]:
    """The key columns recorded by :func:`annotate` (empty: not a keyed result)."""
    raw = (table.schema.metadata or {}).get(META_KEYS)
    return list(json.loads(raw)) if raw else []


def _with_table(result: GatewayResult, table: pa.Table) -> GatewayResult:
    return GatewayResult(
        table=table,
        truncated=result.truncated,
        elapsed_ms=result.elapsed_ms,
        plan=result.plan,
        backends=result.backends,
        missing=result.missing,
    )


def _schemas_of(catalog: Catalog) -> dict[str, TableSchema]:
    schemas = {}
    for name, cols in catalog.columns.items():
        try:
            schemas[name] = TableSchema.from_mapping(name, {c: t for c, t in cols if c != "date"})
        except SchemaError:
            continue  # a table q cannot name (no time/sym lead): SQL still reaches it
    return schemas


__all__ = [
    "META_KEYS",
    "QPath",
    "QResult",
    "TranslationError",
    "annotate",
    "fitting_qtype",
    "result_keys",
]
