"""``tickdb hdb retain --days N``: drop partitions older than N days, without breaking readers.

A doomed partition is first renamed to a hidden name (one atomic rename per directory, so
nothing ever sees half a partition), then the HDBs are told to reload so their views stop
listing it, and only then are the files deleted. An HDB that was not told retries a query
that hits a vanished file after reloading its views.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hdb.layout import fsync_dir, list_dates, list_tables, partition_dir
from hdb.notify import reload_hdbs

RETIRED_PREFIX = ".retired-"


@dataclass
class RetainReport:
    cutoff: dt.date
    removed: list[tuple[str, dt.date]] = field(default_factory=list)
    kept: int = 0
    notified: dict[str, Any] = field(default_factory=dict)


def doomed(
    hdb_dir: str | Path, cutoff: dt.date, tables: Iterable[str] | None = None
) -> list[tuple[str, dt.date]]:
    names = list(tables) if tables is not None else list_tables(hdb_dir)
    return [(t, d) for t in names for d in list_dates(hdb_dir, t) if d < cutoff]


def retain(
    hdb_dir: str | Path,
    days: int,
    *,
    today: dt.date,
    tables: Iterable[str] | None = None,
    notify: Iterable[str] = (),
    dry_run: bool = False,
    on_remove: Callable[[str, dt.date], None] | None = None,
) -> RetainReport:
    """Remove partitions dated before ``today - days`` (``days=0`` keeps only ``today``)."""
    if days < 0:
        raise ValueError("days must be zero or more")
    root = Path(hdb_dir)
    report = RetainReport(cutoff=today - dt.timedelta(days=days))
    targets = doomed(root, report.cutoff, tables)
    names = list(tables) if tables is not None else list_tables(root)
    report.kept = sum(len(list_dates(root, t)) for t in names) - len(targets)
    if dry_run:
        report.removed = targets
        return report
    retired = []
    for table, date in targets:
        source = partition_dir(root, table, date)
        hidden = source.with_name(f"{RETIRED_PREFIX}{source.name}-{os.getpid()}")
        os.replace(source, hidden)
        fsync_dir(source.parent)
        retired.append(hidden)
        report.removed.append((table, date))
    addresses = list(notify)
    if addresses and retired:
        report.notified = reload_hdbs(addresses)
    for hidden in retired:
        shutil.rmtree(hidden, ignore_errors=True)
    for table, date in report.removed:
        if on_remove:
            on_remove(table, date)
    for table in names:  # leftovers of an interrupted earlier run
        table_dir = root / table
        if table_dir.is_dir():
            for p in table_dir.iterdir():
                if p.name.startswith(RETIRED_PREFIX):
                    shutil.rmtree(p, ignore_errors=True)
    return report
