"""Where the historical database keeps things, and the one rule for putting a file there.

``<hdb>/<table>/date=YYYY-MM-DD/part-{k}-of-{n}.parquet``: one file per shard ``k`` of ``n``
(unsharded: ``part-0-of-1.parquet``). Files are written under a hidden temporary name that
no ``*.parquet`` glob matches, fsynced, renamed into place with ``os.replace`` and the
directory fsynced, so a reader (or a crash) sees the whole old file, the whole new one, or
none, never half of one. Names starting with ``.`` are never data.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

from tickdb.types import Shard

_PART = re.compile(r"^part-(\d+)-of-(\d+)\.parquet$")
_DATE_DIR = re.compile(r"^date=(\d{4}-\d{2}-\d{2})$")
_TMP = re.compile(r"^\.(?P<name>.+)\.tmp-(?P<pid>\d+)$")
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


def tmp_path(final: Path) -> Path:
    """The hidden name ``final`` is written under: ``.<name>.tmp-<pid>``."""
    return final.with_name(f".{final.name}.tmp-{os.getpid()}")


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stale_tmp_files(directory: Path) -> Iterator[Path]:
    """Temporary files in ``directory`` left by processes that no longer run."""
    if not directory.is_dir():
        return
    for p in directory.iterdir():
        m = _TMP.match(p.name)
        if m and not _pid_alive(int(m.group("pid"))):
            yield p


def remove_stale_tmp(directory: Path) -> int:
    removed = 0
    for p in stale_tmp_files(directory):
        p.unlink(missing_ok=True)
        removed += 1
    return removed


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_dirs(directory: Path) -> None:
    """Create ``directory`` and fsync each parent whose entries changed."""
    missing = []
    d = directory
    while not d.exists():
        missing.append(d)
        d = d.parent
    directory.mkdir(parents=True, exist_ok=True)
    for d in reversed(missing):
        fsync_dir(d.parent)


def publish(tmp: Path, final: Path) -> None:
    """Make ``tmp`` durable, then atomically give it the name ``final``."""
    fsync_file(tmp)
    os.replace(tmp, final)
    fsync_dir(final.parent)


# -- scratch space ---------------------------------------------------------------------------


def scratch_dir(root: str | Path) -> Path:
    """A per-process scratch directory under ``root/.scratch``; dead processes' are removed."""
    base = Path(root) / SCRATCH_DIR
    base.mkdir(parents=True, exist_ok=True)
    for p in base.iterdir():
        if p.name.isdigit() and not _pid_alive(int(p.name)):
            shutil.rmtree(p, ignore_errors=True)
    mine = base / str(os.getpid())
    mine.mkdir(exist_ok=True)
    return mine
