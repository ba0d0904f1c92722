"""Where the historical database keeps things, and the one rule for putting a file there.

``<hdb>/<table>/date=YYYY-MM-DD/part-{k}-of-{n}.parquet``: one file per shard ``k`` of ``n``
(unsharded: ``part-0-of-1.parquet``). Files are written under a hidden temporary name that
no ``*.parquet`` glob matches, fsynced, renamed into place with ``os.replace`` and the
directory fsynced (``tickdb.durable``), so a reader (or a crash) sees the whole old file,
the whole new one, or none, never half of one. Names starting with ``.`` are never data.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
from pathlib import Path

from tickdb import durable
from tickdb.types import Shard

_PART = re.compile(r"^part-(\d+)-of-(\d+)\.parquet$")
_DATE_DIR = re.compile(r"^date=(\d{4}-\d{2}-\d{2})$")
SCRATCH_DIR = ".scratch"  # DuckDB spill files and staging databases, per process


def part_name(shard: Shard) -> str:
    """The file name of ``shard``'s rows in a date directory: ``part-{k}-of-{n}.parquet``."""
    return f"part-{shard.index}-of-{shard.count}.parquet"


def partition_dir(hdb_dir: str | Path, table: str, date: dt.date) -> Path:
    return Path(hdb_dir) / table / f"date={date.isoformat()}"


def partition_file(hdb_dir: str | Path, table: str, date: dt.date, shard: Shard) -> Path:
    return partition_dir(hdb_dir, table, date) / part_name(shard)


def shard_glob(shard: Shard | None) -> str:
    return "part-*-of-*.parquet" if shard is None else part_name(shard)


def list_tables(hdb_dir: str | Path) -> list[str]:
    root = Path(hdb_dir)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def list_dates(hdb_dir: str | Path, table: str) -> list[dt.date]:
    root = Path(hdb_dir) / table
    if not root.is_dir():
        return []
    dates = []
    for p in root.iterdir():
        m = _DATE_DIR.match(p.name)
        if m and p.is_dir():
            try:
                dates.append(dt.date.fromisoformat(m.group(1)))
            except ValueError:
                continue
    return sorted(dates)


def partition_files(
    hdb_dir: str | Path, table: str, shard: Shard | None
) -> list[tuple[dt.date, Path]]:
    """Every data file of ``table`` for ``shard`` (None: all shards), by date."""
    out = []
    for date in list_dates(hdb_dir, table):
        directory = partition_dir(hdb_dir, table, date)
        if shard is not None:
            path = directory / part_name(shard)
            if path.is_file():
                out.append((date, path))
        else:
            out.extend((date, p) for p in sorted(directory.iterdir()) if _PART.match(p.name))
    return out


def parse_part(name: str) -> Shard | None:
    m = _PART.match(name)
    return Shard(int(m.group(1)), int(m.group(2))) if m else None


# -- atomic publication ----------------------------------------------------------------------
# The rule is tickdb.durable's, one for every file tickdb publishes; the HDB's modules take
# it from here.

tmp_path = durable.tmp_path
stale_tmp_files = durable.stale_tmp_files
remove_stale_tmp = durable.remove_stale_tmp
fsync_dir = durable.fsync_dir
fsync_file = durable.fsync_file
make_dirs = durable.make_dirs
publish = durable.publish


# -- scratch space ---------------------------------------------------------------------------


def scratch_dir(root: str | Path) -> Path:
    """A per-process scratch directory under ``root/.scratch``; dead processes' are removed."""
    base = Path(root) / SCRATCH_DIR
    base.mkdir(parents=True, exist_ok=True)
    for p in base.iterdir():
        if p.name.isdigit() and not durable.pid_alive(int(p.name)):
            shutil.rmtree(p, ignore_errors=True)
    mine = base / str(os.getpid())
    mine.mkdir(exist_ok=True)
    return mine
