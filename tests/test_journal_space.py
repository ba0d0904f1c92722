"""Space reserved ahead of the journal's writes (``journal_space``): invisible to readers,
given back at close, and never a reason for a write to fail."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tickerplant import journal_space
from tickerplant.journal import JournalIndex, JournalWriter, read_journal, scan_journal
from tickerplant.journal_space import SpaceReserver
from tickerplant.protocol import KIND_UPD, encode_record

STEP = 4 << 20


def allocated(path: Path) -> int:
    return os.stat(path).st_blocks * 512


def write_records(writer: JournalWriter, first: int, count: int) -> None:
    for seq in range(first, first + count):
        record = encode_record(KIND_UPD, seq, 0, "trade", [(b"p" * 16, seq)], b"x" * 3000)
        writer.append(record, seq)
        writer.flush()


@pytest.mark.skipif(journal_space._CALL is None, reason="no fallocate in this C library")
def test_reserved_space_is_past_the_end_and_given_back_at_close(tmp_path: Path) -> None:
    path = tmp_path / "2026-01-02.tpj"
    writer = JournalWriter(path, JournalIndex(), fsync="never")
    writer._space.step = STEP  # smaller steps than the default 64 MiB
    write_records(writer, 1, 50)
    if not writer._space.enabled:
        pytest.skip("this file system does not reserve space (fallocate refused)")
    size = writer.size
    assert os.stat(path).st_size == size  # readers see records only
    assert allocated(path) >= size + STEP // 2
    assert [r.seq for r in read_journal(path, live=True)] == list(range(1, 51))
    writer.close()
    assert os.stat(path).st_size == size
    assert allocated(path) < size + STEP // 2
    assert scan_journal(path).records == 50
    # Opened again (a restart): appends go on after the last record.
    again = JournalWriter(path, JournalIndex(), fsync="never")
    write_records(again, 51, 10)
    again.close()
    assert [r.seq for r in read_journal(path)] == list(range(1, 61))
    assert allocated(path) < os.stat(path).st_size + STEP // 2


def test_a_refused_reservation_only_stops_reserving(tmp_path: Path) -> None:
    read_end, write_end = os.pipe()  # fallocate on a pipe fails (or there is none)
    try:
        reserver = SpaceReserver(write_end, 0, step=STEP)
        reserver.ensure(1000)
        assert not reserver.enabled
        reserver.ensure(10_000)  # asks no more, raises nothing
        reserver.release(0)
    finally:
        os.close(read_end)
        os.close(write_end)
