"""The journal: one append-only file per session, records individually checksummed.

A file is ``JOURNAL_MAGIC`` followed by records in the shape of ``protocol.encode_record``.
Records are handed to the OS whole, in ``writev`` calls of whole records, so a ``kill -9``
between two calls leaves only complete records behind. One landing inside a call can cut
it short (the kernel stops a write at a fatal signal): the last record is then torn, and
nothing in it was published or acknowledged, both of which wait for the write to return.
A torn or corrupt tail (also power loss, full disk, a copy cut short) is found by
``scan_journal``, reported with how much is valid, and removed by ``repair_journal``, which
keeps the cut bytes beside the file (the tickerplant does that itself for a torn last
record alone: ``recovery``).
"""

from __future__ import annotations

import bisect
import datetime as dt
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tickdb.durable import fsync_dir
from tickerplant.checksum import crc32
from tickerplant.journal_space import SpaceReserver
from tickerplant.journal_writev import IOV_MAX, WRITE_BYTES, writev_all
from tickerplant.protocol import (
    BODY_PREFIX,
    JOURNAL_MAGIC,
    KIND_EOD,
    RECORD_HEADER,
    U64,
    UNREADABLE,
    ProtocolError,
    Record,
    check_body,
    decode_body,
)

JOURNAL_SUFFIX = ".tpj"
_READ_BLOCK = 4 * 1024 * 1024
_EMPTY = memoryview(b"")
# A sparse (seq, offset) entry every this many bytes lets replay seek instead of scanning.
INDEX_STRIDE = 1024 * 1024


class JournalCorrupt(Exception):
    """A journal whose tail is torn or corrupt; the message says how to repair it."""

    def __init__(self, scan: ScanResult) -> None:
        self.scan = scan
        super().__init__(scan.describe())


def journal_path(journal_dir: str | Path, session: dt.date) -> Path:
    return Path(journal_dir) / f"{session.isoformat()}{JOURNAL_SUFFIX}"


def journal_files(journal_dir: str | Path) -> list[tuple[dt.date, Path]]:
    """Journal files by session date, oldest first."""
    found = []
    directory = Path(journal_dir)
    if not directory.is_dir():
        return []
    for path in directory.glob(f"*{JOURNAL_SUFFIX}"):
        try:
            found.append((dt.date.fromisoformat(path.name[: -len(JOURNAL_SUFFIX)]), path))
        except ValueError:
            continue
    return sorted(found)


@dataclass
class ScanResult:
    path: Path
    records: int = 0
    valid_bytes: int = 0
    total_bytes: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    last_kind: int | None = None
    error: str | None = None
    rows_by_table: dict[str, int] = field(default_factory=dict)

    @property
    def corrupt(self) -> bool:
        return self.error is not None

    @property
    def torn_tail(self) -> bool:
        """Whether the only fault is a last record cut short (a write cut by a crash)."""
        return self.error is not None and self.error.startswith("torn record")

    @property
    def ends_with_eod(self) -> bool:
        return self.last_kind == KIND_EOD

    def describe(self) -> str:
        if not self.corrupt:
            return (
                f"{self.path}: ok, {self.records} records, {self.valid_bytes} bytes, "
                f"seq {self.first_seq}..{self.last_seq}"
            )
        bad = self.total_bytes - self.valid_bytes
        return (
            f"{self.path}: {self.error}. {self.records} valid records "
            f"({self.valid_bytes} bytes, last seq {self.last_seq}) are followed by {bad} "
            f"bytes that are not. Run `tickdb journal repair {self.path}` to cut the file "
            f"after the last valid record (the cut bytes are kept beside it)."
        )


def _iter_raw(
    path: Path, start: int = 0, stop_at_partial: bool = False
) -> Iterator[tuple[int, memoryview | str, memoryview]]:
    """Yield ``(offset, body)`` per record; ``(offset, error)`` once at the first bad one.

    ``stop_at_partial`` ends quietly at an incomplete last record: a reader racing the
    writer of the live file sees records that are still being written.
    """
    with open(path, "rb") as f:
        if start == 0:
            magic = f.read(len(JOURNAL_MAGIC))
            if magic != JOURNAL_MAGIC:
                yield 0, "not a tickdb journal (bad magic)", _EMPTY
                return
            start = len(JOURNAL_MAGIC)
        f.seek(start)
        buffer = b""
        base = start  # file offset of buffer[0]
        pos = 0
        while True:
            if len(buffer) - pos < RECORD_HEADER.size:
                chunk = f.read(_READ_BLOCK)
                if not chunk:
                    if pos < len(buffer) and not stop_at_partial:
                        yield base + pos, "torn record header at end of file", _EMPTY
                    return
                buffer = buffer[pos:] + chunk
                base += pos
                pos = 0
                continue
            length, crc = RECORD_HEADER.unpack_from(buffer, pos)
            end = pos + RECORD_HEADER.size + length
            if length < BODY_PREFIX.size:
                yield base + pos, f"impossible record length {length}", _EMPTY
                return
            if end > len(buffer):
                chunk = f.read(max(_READ_BLOCK, end - len(buffer)))
                if not chunk:
                    if not stop_at_partial:
                        yield base + pos, "torn record at end of file", _EMPTY
                    return
                buffer = buffer[pos:] + chunk
                base += pos
                pos = 0
                continue
            body = memoryview(buffer)[pos + RECORD_HEADER.size : end]
            if crc32(body) != crc:
                yield base + pos, "checksum mismatch", _EMPTY
                return
            try:
                check_body(body)
            except ProtocolError as exc:
                yield base + pos, f"malformed record ({exc})", _EMPTY
                return
            yield base + pos, body, memoryview(buffer)[pos:end]
            pos = end


def scan_journal(
    path: str | Path,
    progress: Callable[[int], None] | None = None,
    count_rows: bool = False,
    on_record: Callable[[memoryview], None] | None = None,
) -> ScanResult:
    """Validate every record of a journal file; ``on_record`` sees each valid body."""
    path = Path(path)
    result = ScanResult(path, total_bytes=path.stat().st_size, valid_bytes=len(JOURNAL_MAGIC))
    last_progress = 0
    for offset, body, _ in _iter_raw(path):
        if isinstance(body, str):
            result.error = f"{body} at byte {offset}"
            result.valid_bytes = offset
            break
        kind, _v, _n, _o, seq, _ts = BODY_PREFIX.unpack_from(body, 0)
        if result.last_seq is not None and seq != result.last_seq + 1:
            result.error = f"sequence jumps from {result.last_seq} to {seq} at byte {offset}"
            result.valid_bytes = offset
            break
        if count_rows and kind != KIND_EOD:
            try:
                record = decode_body(body)
                rows = record.to_table().num_rows
            except (ProtocolError, *UNREADABLE) as exc:
                # Checksummed yet unreadable: only a bug writes that; say where it is.
                result.error = f"record {seq} at byte {offset} holds no readable rows ({exc})"
                result.valid_bytes = offset
                break
            result.rows_by_table[record.table] = result.rows_by_table.get(record.table, 0) + rows
        if result.first_seq is None:
            result.first_seq = seq
        result.last_seq, result.last_kind = seq, kind
        result.records += 1
        if on_record is not None:
            on_record(body)
        result.valid_bytes = offset + RECORD_HEADER.size + len(body)
        if progress and result.valid_bytes - last_progress > _READ_BLOCK:
            progress(result.valid_bytes)
            last_progress = result.valid_bytes
    if progress:
        progress(result.valid_bytes)
    return result


def repair_journal(path: str | Path) -> ScanResult:
    """Cut a journal after its last valid record, keeping the cut bytes beside it."""
    path = Path(path)
    scan = scan_journal(path)
    if not scan.corrupt:
        return scan
    with open(path, "rb") as f:
        f.seek(scan.valid_bytes)
        tail = f.read()
    keep = path.with_name(f"{path.name}.corrupt-{scan.valid_bytes}")
    keep.write_bytes(tail)
    with open(path, "r+b") as f:
        f.truncate(scan.valid_bytes)
        f.flush()
        os.fsync(f.fileno())
    return scan_journal(path)


def read_journal(
    path: str | Path,
    after: int = 0,
    upto: int | None = None,
    start_offset: int = 0,
    live: bool = False,
) -> Iterator[Record]:
    """Records with ``after < seq <= upto``; raises JournalCorrupt at a bad record.

    ``live`` is for the file the tickerplant is still appending to: an incomplete last
    record is not an error there, it is still being written.
    """
    for record, _ in read_journal_encoded(path, after, upto, start_offset, live):
        yield record


def read_journal_encoded(
    path: str | Path,
    after: int = 0,
    upto: int | None = None,
    start_offset: int = 0,
    live: bool = False,
) -> Iterator[tuple[Record, memoryview]]:
    """Like ``read_journal``, with each record's bytes as stored: replay forwards them as is."""
    path = Path(path)
    last_seq: int | None = None  # of the last sound record read, skipped ones included
    for offset, body, encoded in _iter_raw(path, start_offset, stop_at_partial=live):
        if isinstance(body, str):
            raise JournalCorrupt(_reader_fault(path, offset, body, last_seq))
        seq = U64.unpack_from(body, 6)[0]
        if seq <= after:
            last_seq = seq
            continue
        if upto is not None and seq > upto:
            return
        try:
            record = decode_body(body)
        except ProtocolError as exc:
            fault = f"malformed record ({exc})"
            raise JournalCorrupt(_reader_fault(path, offset, fault, last_seq)) from None
        last_seq = seq
        yield record, encoded


def _reader_fault(path: Path, offset: int, error: str, last_seq: int | None) -> ScanResult:
    """What a reader that met a bad record at ``offset`` knows of the file: the sound
    records before it, counted by their seqs (consecutive in a file, so a reader that
    started past the file's head still counts them all), and the last one's seq."""
    first_seq = None
    for _, body, _ in _iter_raw(path):  # the file's first record only
        first_seq = None if isinstance(body, str) else U64.unpack_from(body, 6)[0]
        break
    records = 0 if last_seq is None or first_seq is None else last_seq - first_seq + 1
    return ScanResult(
        path,
        records=records,
        valid_bytes=offset,
        total_bytes=path.stat().st_size,
        first_seq=first_seq if records else None,
        last_seq=last_seq,
        error=f"{error} at byte {offset}",
    )


class JournalIndex:
    """Sparse ``(seq, offset)`` points per journal file, so replay can seek.

    The writer adds points for the live file as it appends; files written before this
    process started are indexed on first use by one scan. Shared between the ingest thread
    (writer) and the replay thread (reader).
    """

    def __init__(self) -> None:
        self._points: dict[Path, tuple[list[int], list[int]]] = {}
        self._lock = threading.Lock()

    def add(self, path: Path, seq: int, offset: int) -> None:
        with self._lock:
            seqs, offsets = self._points.setdefault(path, ([], []))
            seqs.append(seq)
            offsets.append(offset)

    def preset(self, path: Path, seqs: list[int], offsets: list[int]) -> None:
        """The points of a file already indexed elsewhere (a standby's copy, as it wrote it)."""
        with self._lock:
            self._points[path] = (seqs, offsets)

    def seek_offset(self, path: Path, after: int) -> int:
        """The offset of a record with seq <= after + 1 (0 means from the start)."""
        with self._lock:
            if path not in self._points:
                self._points[path] = _build_points(path)
            seqs, offsets = self._points[path]
            i = bisect.bisect_right(seqs, after + 1) - 1
            return offsets[i] if i >= 0 else 0


def _build_points(path: Path) -> tuple[list[int], list[int]]:
    seqs: list[int] = []
    offsets: list[int] = []
    last = -INDEX_STRIDE
    for offset, body, _ in _iter_raw(path, stop_at_partial=True):
        if isinstance(body, str):
            break
        if offset - last >= INDEX_STRIDE:
            seqs.append(U64.unpack_from(body, 6)[0])
            offsets.append(offset)
            last = offset
    return seqs, offsets


class JournalWriter:
    """Appends records to one session's file.

    ``append`` only queues; ``flush`` hands every queued record to the OS in one writev,
    so complete records are what a crash leaves. ``fsync`` policy: ``always`` syncs in
    every flush (acks then mean durable on disk); ``interval`` syncs every
    ``fsync_interval_ns`` on a background thread, so a slow disk never stalls ingest (acks
    mean the record survives a process kill, and a power loss costs at most one interval);
    ``never`` leaves it to the OS.
    """

    def __init__(
        self,
        path: Path,
        index: JournalIndex,
        fsync: str = "interval",
        fsync_interval_ns: int = 1_000_000_000,
    ) -> None:
        self.path = path
        self.index = index
        self.fsync_policy = fsync
        path.parent.mkdir(parents=True, exist_ok=True)
        existed = path.exists()
        new = not existed or path.stat().st_size == 0
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            if new:
                os.write(self._fd, JOURNAL_MAGIC)
                fsync_dir(path.parent)
            else:
                index.seek_offset(path, 0)  # index what an earlier run wrote, before appending
            self.size = os.fstat(self._fd).st_size
        except BaseException:
            # Opening failed half way (no descriptor left for the directory's fsync, say):
            # leave nothing open and no file this call made, so a retry starts afresh.
            os.close(self._fd)
            if not existed:
                path.unlink(missing_ok=True)
            raise
        self._space = SpaceReserver(self._fd, self.size)
        self._queued: list[bytes | memoryview] = []
        self._queued_bytes = 0
        self._queued_sizes: list[int] = []
        self._queued_seqs: list[int] = []
        self._queued_parts: list[int] = []
        self._last_index_at = -INDEX_STRIDE
        self._dirty = False
        self.records_written = 0
        self._closing = threading.Event()
        self._syncer: threading.Thread | None = None
        if fsync == "interval":
            self._syncer = threading.Thread(
                target=self._sync_every,
                args=(fsync_interval_ns / 1e9,),
                daemon=True,
                name="journal-fsync",
            )
            self._syncer.start()

    def append(self, record: bytes | memoryview, seq: int) -> None:
        self.append_parts((record,), seq)

    def append_parts(self, parts: tuple[bytes | memoryview, ...], seq: int) -> None:
        """One record given as consecutive pieces: the same writev writes them in order."""
        size = sum(map(len, parts))
        self._queued.extend(parts)
        self._queued_bytes += size
        self._queued_sizes.append(size)
        self._queued_seqs.append(seq)
        self._queued_parts.append(len(parts))

    def flush(self) -> None:
        if self._queued:
            offset = self.size
            end = offset + self._queued_bytes
            self._space.ensure(end)
            # Only a record starting a stride past the last point gets one (the last record
            # starts before ``end``): most flushes need not look at their records.
            if end - self._last_index_at > INDEX_STRIDE:
                for size, seq in zip(self._queued_sizes, self._queued_seqs, strict=True):
                    if offset - self._last_index_at >= INDEX_STRIDE:
                        self.index.add(self.path, seq, offset)
                        self._last_index_at = offset
                    offset += size
            if self._queued_bytes <= WRITE_BYTES and len(self._queued) <= IOV_MAX:
                # The common turn: a few small records, whole in one call.
                written = os.writev(self._fd, self._queued)
                if written < self._queued_bytes:
                    writev_all(self._fd, [b"".join(self._queued)[written:]])
            else:
                self._write_whole_records()
            self.records_written += len(self._queued_seqs)
            self.size = end
            self._queued_bytes = 0
            self._queued.clear()
            self._queued_sizes.clear()
            self._queued_seqs.clear()
            self._queued_parts.clear()
            self._dirty = True
        if self._dirty and self.fsync_policy == "always":
            self.sync()

    def _write_whole_records(self) -> None:
        """The queued records in writev calls of about ``WRITE_BYTES``, each call holding
        whole records only (a bigger record is one call of its own): a process killed
        between two calls (``kill -9``, or SIGKILL after SIGSTOP) leaves whole records, so
        it restarts without a repair. Cutting a record across calls left a torn tail."""
        start = part = size = 0
        for count, nbytes in zip(self._queued_parts, self._queued_sizes, strict=True):
            if size and (size + nbytes > WRITE_BYTES or part - start + count > IOV_MAX):
                writev_all(self._fd, self._queued[start:part], limit=size)
                start, size = part, 0
            part += count
            size += nbytes
        if size:
            writev_all(self._fd, self._queued[start:part], limit=max(size, WRITE_BYTES))

    def sync(self) -> None:
        self._dirty = False
        os.fsync(self._fd)

    def _sync_every(self, interval_s: float) -> None:
        while not self._closing.wait(interval_s):
            if self._dirty:
                self.sync()

    def close(self) -> None:
        self.flush()
        self._closing.set()
        if self._syncer is not None:
            self._syncer.join()
        self._space.release(self.size)
        if self._dirty or self.fsync_policy != "never":
            self.sync()
        os.close(self._fd)
