"""Writing a file so that a crash leaves the whole old file or the whole new one, never half.

The one rule, for every file tickdb publishes (HDB partitions, intraday chunks, the RDB's
recovery state, ready files): write it under a hidden temporary name in the same directory,
fsync it, rename it over the final name (``os.replace``, atomic on POSIX), then fsync the
directory, since the rename is a change to the directory and is only durable once the
directory is. ``publish`` does the last three steps for a file something else wrote
(Parquet from DuckDB or pyarrow); ``write_atomic`` does all four for bytes in hand.

Temporary names are ``.<name>.tmp-<pid>``: hidden, so no ``*.parquet`` glob or reader
listing the directory takes one for data; per process, so two writers never share one; and
``remove_stale_tmp`` clears those whose process is gone (a crash between write and rename).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

_TMP = re.compile(r"^\.(?P<name>.+)\.tmp-(?P<pid>\d+)$")


def tmp_path(final: Path) -> Path:
    """The hidden name ``final`` is written under: ``.<name>.tmp-<pid>``."""
    return final.with_name(f".{final.name}.tmp-{os.getpid()}")


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs (one of another user's counts)."""
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
        if m and not pid_alive(int(m.group("pid"))):
            yield p


def remove_stale_tmp(directory: Path) -> int:
    removed = 0
    for p in stale_tmp_files(directory):
        p.unlink(missing_ok=True)
        removed += 1
    return removed


def fsync_dir(directory: Path) -> None:
    """Make the directory's entries (a created, renamed or removed name) durable."""
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


def write_atomic(path: Path, data: bytes | str, *, durable: bool = True) -> None:
    """Replace ``path`` with ``data``: readers see the old content or the new, whole.

    ``durable=False`` keeps the atomic rename but skips both fsyncs, for files that only
    matter while the process that wrote them runs (ready files): a crash makes them stale
    anyway, and a launcher waiting on one should not wait on the disk."""
    tmp = tmp_path(path)
    try:
        tmp.write_bytes(data.encode() if isinstance(data, str) else data)
        if durable:
            publish(tmp, path)
        else:
            os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a failed write leaves nothing behind
        raise
