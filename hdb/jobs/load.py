"""``tickdb hdb load FILE --table T``: backfill partitions from CSV or Parquet.

Rows are partitioned by the UTC date of ``time`` and written exactly as a write-down writes
(same layout, sorting, row groups and footer). The file is staged once in DuckDB (which
spills to disk), each value converted strictly to its q type; rows that do not convert, or
lack ``time`` or ``sym``, are bad rows and are reported. Unless ``skip_bad``, any bad row
means nothing is written. Every partition is written to a temporary file first and only
when all of them are complete are they renamed into place, so a failed load leaves nothing
behind; each rename is atomic.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import duckdb
import pyarrow as pa

from hdb.layout import make_dirs, partition_file, publish, remove_stale_tmp, tmp_path
from hdb.parquet_out import (
    WriteOptions,
    column_list,
    copy_sorted,
    quote_ident,
    row_group_rows,
    sql_path,
    writer_connection,
)
from hdb.schema_io import Q_TO_DUCKDB
from tickdb.schema import Column, TableSchema
from tickdb.types import Shard, shard_of

IfExists = Literal["error", "replace", "append"]
MAX_REPORTED = 20
_INTEGER_TYPES = {"long", "int", "short", "byte"}
_OFFSET = r"([+-][0-9]{2}(:?[0-9]{2})?|Z)$"


class LoadError(Exception):
    """The file cannot be loaded as a whole (unreadable, wrong columns, partitions exist)."""


@dataclass(frozen=True)
class BadRow:
    row: int  # 1-based data record (CSV: line = row + 1 when no line before it was rejected)
    reason: str


@dataclass
class LoadReport:
    rows_read: int = 0
    rows_loaded: int = 0
    bad_count: int = 0
    bad_rows: list[BadRow] = field(default_factory=list)
    partitions: list[tuple[dt.date, Path, int]] = field(default_factory=list)
    written: bool = False


def _source_sql(path: Path, fmt: str) -> str:
    if fmt == "csv":
        # all_varchar: every conversion happens below, where failures become bad rows.
        return (
            f"read_csv({sql_path(path)}, header = true, all_varchar = true, "
            "store_rejects = true, rejects_table = '__rejects', "
            "rejects_scan = '__rejects_scan')"
        )
    return f"read_parquet({sql_path(path)})"


def _convert(col: Column, source_type: str) -> str:
    """SQL converting source column ``col`` to its q type; NULL where it does not convert."""
    x = quote_ident(col.name)
    target = Q_TO_DUCKDB[col.qtype]
    if col.qtype == "timestamp" and source_type == "VARCHAR":
        # A written offset is honoured: the local time before it keeps its nanoseconds and
        # the offset is subtracted in whole nanoseconds (TIMESTAMPTZ holds microseconds, so
        # going through it cut .123456789+00:00 to .123456). Without one the time is UTC.
        text, offset = f"trim({x})", f"regexp_extract(trim({x}), '{_OFFSET}')"
        local = f"TRY_CAST(left({text}, length({text}) - length({offset})) AS TIMESTAMP_NS)"
        return (
            f"CASE WHEN {offset} <> '' "
            f"THEN make_timestamp_ns(epoch_ns({local}) - {_offset_ns(offset)}) "
            f"ELSE TRY_CAST({text} AS TIMESTAMP_NS) END"
        )
    if col.qtype == "timestamp" and source_type.startswith("TIMESTAMP WITH TIME ZONE"):
        return f"CAST({x} AS TIMESTAMP_NS)"
    if col.qtype in _INTEGER_TYPES:
        # TRY_CAST rounds 4.5 to 5; a q long column must not silently round.
        return (
            f"CASE WHEN regexp_full_match(trim(CAST({x} AS VARCHAR)), '[+-]?[0-9]+') "
            f"THEN TRY_CAST(trim(CAST({x} AS VARCHAR)) AS {target}) END"
        )
    return f"TRY_CAST({x} AS {target})"


def _offset_ns(offset: str) -> str:
    """SQL: the nanoseconds east of UTC that an offset text (``Z``, ``+01``, ``-0530``,
    ``+05:30``) says; NULL for an hour or minute out of range, so the row is bad."""
    digits = f"replace(replace({offset}, ':', ''), 'Z', '+0000')"
    hours = f"TRY_CAST(substr({digits}, 2, 2) AS BIGINT)"
    minutes = f"coalesce(TRY_CAST(nullif(substr({digits}, 4, 2), '') AS BIGINT), 0)"
    sign = f"CASE WHEN left({digits}, 1) = '-' THEN -1 ELSE 1 END"
    valid = f"{hours} <= 23 AND {minutes} <= 59"
    return f"(CASE WHEN {valid} THEN {sign} * ({hours} * 3600 + {minutes} * 60) END * 1000000000)"


def _problems(schema: TableSchema) -> str:
    """SQL list of the reasons a staged row is bad (empty list: good)."""
    items = []
    for col in schema.columns:
        c = quote_ident(col.name)
        raw = f"__raw_{col.name}"
        items.append(
            f"CASE WHEN {raw} IS NOT NULL AND {c} IS NULL THEN "
            f"'{col.name}=' || CAST({quote_ident(raw)} AS VARCHAR) || ' is not a {col.qtype}' END"
        )
    items.append("CASE WHEN time IS NULL AND __raw_time IS NULL THEN 'time is missing' END")
    items.append("CASE WHEN sym IS NULL AND __raw_sym IS NULL THEN 'sym is missing' END")
    return f"list_filter([{', '.join(items)}], lambda r: r IS NOT NULL)"


def stage(con: duckdb.DuckDBPyConnection, path: Path, fmt: str, schema: TableSchema) -> None:
    """Create table ``staged``: converted columns, ``__row`` and ``__bad`` reasons."""
    try:
        source = con.sql(f"SELECT * FROM {_source_sql(path, fmt)}")
    except duckdb.Error as exc:
        raise LoadError(f"cannot read {path}: {exc}") from None
    types = dict(zip(source.columns, (str(t) for t in source.types), strict=True))
    missing = [c for c in schema.column_names if c not in types]
    extra = [c for c in types if c not in schema.column_names]
    if missing or extra:
        raise LoadError(
            f"{path}: columns do not match table {schema.name}: missing {missing}, unknown {extra}"
        )
    raws = ", ".join(f"{quote_ident(c)} AS {quote_ident('__raw_' + c)}" for c in types)
    converted = ", ".join(
        f"{_convert(col, types[col.name])} AS {quote_ident(col.name)}" for col in schema.columns
    )
    try:
        con.execute(
            f"CREATE TEMP TABLE converted AS SELECT row_number() OVER () AS __row, {raws}, "
            f"{converted} FROM {_source_sql(path, fmt)}"
        )
        # Sorted by time, so each date's COPY below skips other dates' row groups.
        con.execute(
            f"CREATE TEMP TABLE staged AS SELECT __row, {column_list(schema)}, "
            f"{_problems(schema)} AS __bad FROM converted ORDER BY time, __row"
        )
        con.execute("DROP TABLE converted")
    except duckdb.Error as exc:
        raise LoadError(f"cannot read {path}: {exc}") from None


def _bad_rows(con: duckdb.DuckDBPyConnection, fmt: str, report: LoadReport) -> None:
    rows = con.execute(
        "SELECT __row, array_to_string(__bad, '; ') FROM staged "
        f"WHERE len(__bad) > 0 ORDER BY __row LIMIT {MAX_REPORTED}"
    ).fetchall()
    report.bad_rows = [BadRow(int(r), str(why)) for r, why in rows]
    report.bad_count = _count(con, "SELECT count(*) FROM staged WHERE len(__bad) > 0")
    if fmt == "csv":
        rejects = con.sql(
            "SELECT line, error_type || ': ' || error_message FROM __rejects ORDER BY line"
        ).fetchall()
        report.bad_count += len(rejects)
        report.rows_read += len(rejects)
        report.bad_rows = sorted(
            report.bad_rows + [BadRow(-int(line), f"line {line}: {why}") for line, why in rejects],
            key=lambda b: abs(b.row),
        )[:MAX_REPORTED]


def _count(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    return int(con.sql(sql).fetchall()[0][0])


def detect_format(path: Path, fmt: str | None) -> str:
    fmt = (fmt or path.suffix.lstrip(".")).lower()
    if fmt not in ("csv", "parquet"):
        raise LoadError(f"{path}: unknown format {fmt!r}; use --format csv or parquet")
    return fmt


def load_file(
    hdb_dir: str | Path,
    schema: TableSchema,
    path: str | Path,
    *,
    fmt: str | None = None,
    shards: int = 1,
    if_exists: IfExists = "error",
    skip_bad: bool = False,
    options: WriteOptions | None = None,
    on_partition: Callable[[dt.date, int], None] | None = None,
    on_dates: Callable[[int], None] | None = None,
) -> LoadReport:
    """Load ``path`` into ``schema.name``'s partitions; see the module docstring."""
    path = Path(path)
    fmt = detect_format(path, fmt)
    if not path.is_file():
        raise LoadError(f"{path} does not exist")
    report = LoadReport()
    with writer_connection(hdb_dir, options or WriteOptions()) as con:
        con.execute("SET TimeZone = 'UTC'")
        stage(con, path, fmt, schema)
        report.rows_read = _count(con, "SELECT count(*) FROM staged")
        _bad_rows(con, fmt, report)  # adds the CSV lines the parser rejected
        if report.bad_count and not skip_bad:
            return report
        good = "len(__bad) = 0"
        days = con.sql(
            f"SELECT CAST(time AS DATE) d, count(*) FROM staged WHERE {good} GROUP BY d ORDER BY d"
        ).fetchall()
        if on_dates:
            on_dates(len(days))
        targets = _targets(hdb_dir, schema, [d for d, _ in days], shards, if_exists)
        _register_shards(con, shards)
        con.register("__tickdb_empty", schema.arrow.empty_table())
        tmps: list[tuple[Path, Path]] = []
        try:
            for date, shard, final in targets:
                make_dirs(final.parent)
                remove_stale_tmp(final.parent)
                tmp = tmp_path(final)
                tmps.append((tmp, final))
                select = _partition_sql(
                    schema, date, shard, good, final if if_exists == "append" else None
                )
                rows = copy_sorted(con, select, tmp, schema, _row_group(con, date))
                report.partitions.append((date, final, rows))
                if on_partition:
                    on_partition(date, rows)
            for tmp, final in tmps:  # every file is complete: only now make them visible
                publish(tmp, final)
        except BaseException:
            for tmp, _ in tmps:
                tmp.unlink(missing_ok=True)
            raise
        report.rows_loaded = _count(con, f"SELECT count(*) FROM staged WHERE {good}")
    report.written = True
    return report


def _targets(
    hdb_dir: str | Path, schema: TableSchema, dates: list[dt.date], shards: int, if_exists: IfExists
) -> list[tuple[dt.date, Shard, Path]]:
    targets = [
        (d, Shard(k, shards), partition_file(hdb_dir, schema.name, d, Shard(k, shards)))
        for d in dates
        for k in range(shards)
    ]
    if if_exists == "error":
        clash = sorted({d.isoformat() for d, _, p in targets if p.exists()})
        if clash:
            raise LoadError(
                f"partitions of {schema.name} already exist for {', '.join(clash)}; "
                "use --if-exists replace or append"
            )
    return targets


def _register_shards(con: duckdb.DuckDBPyConnection, shards: int) -> None:
    syms = [
        r[0] for r in con.sql("SELECT DISTINCT sym FROM staged WHERE sym IS NOT NULL").fetchall()
    ]
    mapping = pa.table(
        {
            "sym": pa.array(syms, pa.string()),
            "shard": pa.array([shard_of(s, shards) for s in syms], pa.int32()),
        }
    )
    con.register("__shard_of", mapping)


def _partition_sql(
    schema: TableSchema, date: dt.date, shard: Shard, good: str, existing: Path | None
) -> str:
    cols = column_list(schema)
    start, end = date.isoformat(), (date + dt.timedelta(days=1)).isoformat()
    new = (
        f"SELECT {cols}, 1 AS __src, __row AS __ord FROM staged "
        f"WHERE {good} AND time >= TIMESTAMP_NS '{start}' AND time < TIMESTAMP_NS '{end}' "
        f"AND sym IN (SELECT sym FROM __shard_of WHERE shard = {shard.index})"
    )
    # An empty Arrow scan in the union keeps every column nullable: DuckDB writes columns it
    # can prove null-free (from the staged table's statistics) as REQUIRED otherwise.
    parts = [new, f"SELECT {cols}, 2 AS __src, 0 AS __ord FROM __tickdb_empty"]
    if existing is not None and existing.exists():
        parts.insert(
            0,
            f"SELECT {cols}, 0 AS __src, file_row_number AS __ord "
            f"FROM read_parquet({sql_path(existing)}, file_row_number = true)",
        )
    union = " UNION ALL ".join(parts)
    return f"SELECT {cols} FROM ({union}) ORDER BY sym, time, __src, __ord"


def _row_group(con: duckdb.DuckDBPyConnection, date: dt.date) -> int:
    start, end = date.isoformat(), (date + dt.timedelta(days=1)).isoformat()
    row = con.sql(
        f"SELECT count(*), count(DISTINCT sym) FROM staged WHERE time >= "
        f"TIMESTAMP_NS '{start}' AND time < TIMESTAMP_NS '{end}'"
    ).fetchall()[0]
    rows, syms = int(row[0]), int(row[1])
    return row_group_rows(rows, syms)
