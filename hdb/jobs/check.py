"""``tickdb hdb check``: is every partition readable, consistent, complete and sorted?

Looks only at Parquet footers (schemas, row counts, row-group statistics), so it is cheap
enough to run over years of partitions; the journal comparison reads the day's journal.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pyarrow.parquet as pq

from hdb.layout import list_dates, list_tables, parse_part, partition_dir, stale_tmp_files
from hdb.schema_io import file_schema
from tickdb.schema import TableSchema

Level = Literal["error", "warning", "info"]


@dataclass(frozen=True)
class Finding:
    level: Level
    table: str
    date: dt.date | None
    message: str

    def __str__(self) -> str:
        where = self.table + (f" {self.date.isoformat()}" if self.date else "")
        return f"{self.level}: {where}: {self.message}"


@dataclass
class CheckReport:
    findings: list[Finding] = field(default_factory=list)
    partitions: int = 0
    files: int = 0
    rows: int = 0

    @property
    def ok(self) -> bool:
        return not any(f.level == "error" for f in self.findings)

    def add(self, level: Level, table: str, date: dt.date | None, message: str) -> None:
        self.findings.append(Finding(level, table, date, message))


JournalCounts = Callable[[dt.date], "dict[str, int] | None"]


def _same_schema(actual: TableSchema, expected: TableSchema) -> str | None:
    if actual.qtypes() == expected.qtypes() and actual.column_names == expected.column_names:
        return None
    return f"columns {actual.qtypes()} differ from {expected.qtypes()}"


def _sorted_by_sym(meta: pq.FileMetaData, sym_index: int) -> bool:
    """Row groups' sym ranges never go backwards (what sorting by sym guarantees)."""
    last_max = None
    for i in range(meta.num_row_groups):
        stats = meta.row_group(i).column(sym_index).statistics
        if stats is None or not stats.has_min_max:
            continue
        if last_max is not None and stats.min < last_max:
            return False
        last_max = stats.max
    return True


def check_file(
    path: Path, table: str, date: dt.date, expected: TableSchema | None, report: CheckReport
) -> int:
    """Check one partition file; returns its row count (0 if unreadable)."""
    try:
        meta = pq.read_metadata(path)
        schema = file_schema(path, table)
    except Exception as exc:
        report.add("error", table, date, f"{path.name} is unreadable: {exc}")
        return 0
    if expected is not None and (diff := _same_schema(schema, expected)):
        report.add("error", table, date, f"{path.name}: {diff}")
    names = [meta.schema.column(i).name for i in range(meta.num_columns)]
    if "sym" in names and not _sorted_by_sym(meta, names.index("sym")):
        report.add("error", table, date, f"{path.name} is not sorted by sym")
    return int(meta.num_rows)


def check_partition(
    hdb_dir: Path, table: str, date: dt.date, expected: TableSchema | None, report: CheckReport
) -> int:
    directory = partition_dir(hdb_dir, table, date)
    report.partitions += 1
    for tmp in stale_tmp_files(directory):
        report.add(
            "warning",
            table,
            date,
            f"{tmp.name} was left by a crashed writer (rerun the write-down or load)",
        )
    shards = {}
    for p in sorted(directory.iterdir()):
        if p.name.startswith("."):
            continue
        shard = parse_part(p.name)
        if shard is None:
            report.add("warning", table, date, f"unexpected file {p.name}")
        else:
            shards[shard] = p
    counts = {s.count for s in shards}
    if len(counts) > 1:
        report.add("error", table, date, f"files of different shard counts {sorted(counts)}")
    for n in counts:
        missing = sorted(set(range(n)) - {s.index for s in shards if s.count == n})
        if missing:
            report.add("error", table, date, f"shard file(s) {missing} of {n} are missing")
    if not shards:
        report.add("error", table, date, "partition directory holds no data file")
    rows = 0
    for p in shards.values():
        report.files += 1
        rows += check_file(p, table, date, expected, report)
    report.rows += rows
    return rows


def check_hdb(
    hdb_dir: str | Path,
    schemas: Mapping[str, TableSchema],
    *,
    journal_counts: JournalCounts | None = None,
    on_partition: Callable[[str, dt.date], None] | None = None,
) -> CheckReport:
    """Check every table and partition; ``journal_counts(date)`` supplies expected rows."""
    root = Path(hdb_dir)
    report = CheckReport()
    rows_by_date: dict[dt.date, dict[str, int]] = {}
    for table in list_tables(root):
        expected = schemas.get(table)
        dates = list_dates(root, table)
        if expected is None and dates:
            report.add(
                "info",
                table,
                None,
                "not in the config: checked against its latest partition's schema",
            )
            first = next(iter(sorted(partition_dir(root, table, dates[-1]).glob("part-*"))), None)
            expected = file_schema(first, table) if first else None
        for date in dates:
            rows = check_partition(root, table, date, expected, report)
            rows_by_date.setdefault(date, {})[table] = rows
            if on_partition:
                on_partition(table, date)
    if journal_counts is not None:
        for date, tables in sorted(rows_by_date.items()):
            compare_with_journal(date, tables, journal_counts(date), report)
    return report


def compare_with_journal(
    date: dt.date,
    hdb_rows: Mapping[str, int],
    journal_rows: Mapping[str, int] | None,
    report: CheckReport,
) -> None:
    """Rows in the partitions of ``date`` against the journal's (all shards together)."""
    if journal_rows is None:
        report.add("info", "*", date, "no journal for this date: row counts not compared")
        return
    for table in sorted(set(hdb_rows) | set(journal_rows)):
        have, want = hdb_rows.get(table), journal_rows.get(table, 0)
        if have is None:
            if want:
                report.add("error", table, date, f"journal has {want} rows, no partition")
        elif have != want:
            report.add("error", table, date, f"partition has {have} rows, journal has {want}")


def count_partitions(hdb_dir: str | Path) -> int:
    return sum(len(list_dates(hdb_dir, t)) for t in list_tables(hdb_dir))
