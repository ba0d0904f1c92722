"""Exactly one tier answers for each date, even while ``info()`` is stale.

At end of day an RDB keeps a rolled date D until every HDB serves it, then drops it
(``docs/rdb.md``). The gateway's picture of who holds what comes from ``info()``, refreshed
every second, so on its own it can miss D (RDB already dropped it, HDB not asked) or count
it twice (HDB already loaded it, RDB still holds it). Three things make the answer exact:

1. **RDBs say which dates they answered for**, from the same snapshot as the rows: the
   query is wrapped so its first row carries ``rdb_dates`` (or, when an RDB advertises
   ``query_dates`` in ``info()``, the dates come in the reply's ``dates``).
2. **HDBs never answer for a date an RDB of their shard is assumed to hold**: the tables a
   fetch reads are shadowed by CTEs that drop those dates.
3. **The assumption is checked**: if an RDB answered for other dates than assumed (it dropped
   one, or the HDB exclusion was built from a stale picture), the answer is thrown away,
   ``info()`` is refreshed and the query runs again. That happens around a roll only.

A date an RDB still lists is never answered by an HDB, and a date it no longer lists was
acknowledged by every HDB first, so the re-run finds it there.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

import pyarrow as pa

from gateway.backends import BackendState, Replica, _parse_date
from gateway.predicates import DateSet
from tickdb.types import Shard

DATES_COLUMN = "__tickdb_dates"
DATES_VIEW = "rdb_dates"
_MARKER = "|"


class StaleTopology(Exception):
    """An RDB answered for other dates than the gateway assumed: refresh and run again."""


def query_dates_in_reply(state: Replica) -> bool:
    """The RDB puts its snapshot's dates in each reply (no wrapping needed)."""
    return state.info is not None and bool(state.info.query_dates)


def rdb_sql(sql: str) -> str:
    """``sql`` with a first row whose only non-null value lists the snapshot's dates.

    DuckDB keeps the order of ``UNION ALL`` branches and of an ordered subquery, so the marker
    row comes first and a row limit can only cut the user's rows.
    """
    marker = (
        f"SELECT '{_MARKER}' || coalesce(string_agg(CAST(date AS VARCHAR), ',' ORDER BY date), "
        f"'') AS {DATES_COLUMN} FROM {DATES_VIEW}"
    )
    return f"({marker}) UNION ALL BY NAME (SELECT * FROM ({sql}))"


def split_dates(
    table: pa.Table, names: list[str] | None = None
) -> tuple[pa.Table, frozenset[dt.date]]:
    """Undo ``rdb_sql``: the user's rows (named ``names`` if given) and the dates."""
    if DATES_COLUMN not in table.column_names or table.num_rows == 0:
        raise ValueError("the RDB reply has no dates row")
    first = table.column(DATES_COLUMN)[0].as_py()
    if not isinstance(first, str) or not first.startswith(_MARKER):
        raise ValueError("the RDB reply's first row is not the dates row")
    days = frozenset(dt.date.fromisoformat(d) for d in first[1:].split(",") if d)
    rows = table.slice(1).drop_columns([DATES_COLUMN])
    if names is not None and len(names) == rows.num_columns and rows.column_names != names:
        rows = rows.rename_columns(names)  # DuckDB renames duplicates (a, a_1) in a subquery
    return rows, days


def answered_dates(result: Any) -> frozenset[dt.date] | None:
    """Dates an RDB reply says it answered for, when the RDB sends them itself."""
    dates = getattr(result, "dates", None)
    if dates is None:
        return None
    return frozenset(_parse_date(d) for d in dates)


def assumed_dates(state: Replica) -> frozenset[dt.date] | None:
    """The dates an RDB (or one replica of it) holds according to its last ``info()``
    (None: never answered)."""
    if state.info is None:
        return None
    days = list(state.info.dates or ())
    if state.info.date is not None:
        days.append(state.info.date)
    return frozenset(days)


def overlaps(a: Shard | None, b: Shard | None) -> bool:
    """Whether two shards can hold the same sym."""
    if a is None or b is None or a.count != b.count:
        return True
    return a.index == b.index


def hdb_exclusion(
    hdb: BackendState,
    assumed: dict[str, tuple[Shard | None, frozenset[dt.date] | None]],
    wanted: DateSet | None,
) -> frozenset[dt.date]:
    """Dates the HDB must not answer for: those an RDB over the same syms is assumed to hold.

    ``assumed`` maps each RDB to its shard and ``assumed_dates``, taken once per attempt so
    the exclusion and the check afterwards use the same picture.
    """
    out: set[dt.date] = set()
    for shard, days in assumed.values():
        if overlaps(shard, hdb.shard):
            out |= days or frozenset()
    return frozenset(d for d in out if wanted is None or wanted.contains(d))


def hdb_sql(sql: str, tables: Iterable[str], exclude: frozenset[dt.date]) -> str:
    """``sql`` over each table without the rows of ``exclude`` (shadowing CTEs).

    Only for SQL the gateway generated (no top-level WITH of its own). DuckDB resolves the
    table inside a CTE of the same name to the real table, and pushes the filter into the
    scan (whole Parquet files are skipped by their ``date`` partition).
    """
    if not exclude:
        return sql
    days = ", ".join(f"DATE '{d.isoformat()}'" for d in sorted(exclude))
    ctes = ", ".join(
        f'"{t}" AS (SELECT * FROM "{t}" WHERE date NOT IN ({days}))' for t in sorted(set(tables))
    )
    return f"WITH {ctes} {sql}"


def check_answer(
    name: str,
    assumed: frozenset[dt.date] | None,
    answered: frozenset[dt.date],
    wanted: DateSet | None,
) -> None:
    """Raise ``StaleTopology`` unless the RDB answered for the dates the plan assumed.

    Dates newer than every assumed one are a roll the gateway has not seen: no HDB holds
    them yet, so they need no re-run.
    """

    def relevant(days: frozenset[dt.date]) -> set[dt.date]:
        return {d for d in days if wanted is None or wanted.contains(d)}

    known = assumed or frozenset()
    newest = max(known, default=None)
    got = {d for d in relevant(answered) if newest is None or d <= newest}
    if assumed is None:
        if relevant(answered):
            raise StaleTopology(f"{name} answered before its first info()")
        return
    if got != relevant(known):
        raise StaleTopology(
            f"{name} answered for {sorted(map(str, got))}, "
            f"assumed {sorted(map(str, relevant(known)))}"
        )
