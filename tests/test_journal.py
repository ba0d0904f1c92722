"""The journal: checksummed records, torn tails detected, reported and repaired."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import zlib
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.harness import start_tp

from tickerplant import journal_writev
from tickerplant.checksum import crc32
from tickerplant.ingest import encode_stream
from tickerplant.journal import (
    JournalIndex,
    JournalWriter,
    journal_path,
    read_journal,
    repair_journal,
    scan_journal,
)
from tickerplant.protocol import JOURNAL_MAGIC, KIND_UPD, encode_record
from tickerplant.publisher import Publisher
from tickerplant.subscriber import Subscriber


def write_records(path: Path, count: int) -> list[bytes]:
    writer = JournalWriter(path, JournalIndex(), fsync="never")
    records = []
    for seq in range(1, count + 1):
        table = pa.table({"sym": ["A"], "size": [seq]})
        record = encode_record(KIND_UPD, seq, seq, "trade", (), encode_stream(table, table.schema))
        writer.append(record, seq)
        records.append(record)
    writer.close()
    return records


def test_records_round_trip_and_validate(tmp_path: Path) -> None:
    path = tmp_path / "2026-01-02.tpj"
    write_records(path, 50)
    scan = scan_journal(path)
    assert (scan.records, scan.first_seq, scan.last_seq, scan.corrupt) == (50, 1, 50, False)
    got = [r.to_table().column("size")[0].as_py() for r in read_journal(path, after=10, upto=20)]
    assert got == list(range(11, 21))


@pytest.mark.parametrize("damage", ["torn", "flipped", "garbage"])
def test_a_bad_tail_is_reported_with_what_is_valid_and_repaired(
    tmp_path: Path, damage: str
) -> None:
    path = tmp_path / "2026-01-02.tpj"
    records = write_records(path, 20)
    good_size = path.stat().st_size
    data = bytearray(path.read_bytes())
    last_start = good_size - len(records[-1])
    if damage == "torn":
        del data[-10:]
    elif damage == "flipped":
        data[-5] ^= 0xFF
    else:
        data += b"\x00garbage after the last record"
    path.write_bytes(bytes(data))
    scan = scan_journal(path)
    assert scan.corrupt
    expected_valid = 20 if damage == "garbage" else 19
    assert scan.records == expected_valid
    assert scan.valid_bytes == (good_size if damage == "garbage" else last_start)
    assert f"{expected_valid} valid records" in scan.describe()
    assert "tickdb journal repair" in scan.describe()
    with pytest.raises(Exception, match="valid records"):
        list(read_journal(path))
    repaired = repair_journal(path)
    assert not repaired.corrupt and repaired.records == expected_valid
    kept = list(tmp_path.glob("*.corrupt-*"))
    assert len(kept) == 1 and kept[0].read_bytes() == bytes(data[scan.valid_bytes :])


def test_journal_cli_check_and_repair(tmp_path: Path) -> None:
    path = tmp_path / "2026-01-02.tpj"
    write_records(path, 5)
    with open(path, "ab") as f:
        f.write(b"\x05\x00\x00")
    run = [sys.executable, "-m", "tickdb.cli", "journal"]
    check = subprocess.run([*run, "check", str(path)], capture_output=True, text=True)
    assert check.returncode == 1 and "5 valid records" in check.stdout
    fix = subprocess.run([*run, "repair", str(path)], capture_output=True, text=True)
    assert fix.returncode == 0 and "cut 3 bytes" in fix.stdout
    check = subprocess.run([*run, "check", str(path), "--rows"], capture_output=True, text=True)
    assert check.returncode == 0 and "trade: 5 rows" in check.stdout


def test_tickerplant_refuses_a_corrupt_journal_then_repairs_and_continues(
    tmp_path: Path, procs: list
) -> None:
    one_record_per_batch = {"coalesce_queued": False}  # so the counts below are known
    tp = start_tp(tmp_path, tickerplant=one_record_per_batch)
    address = tp.info["address"]
    with Publisher(address) as pub:
        for i in range(10):
            pub.publish("trade", {"sym": "A", "price": 1.0, "size": i})
    tp.stop()
    path = journal_path(tmp_path / "data" / "journal", dt.date.fromisoformat(tp.info["session"]))
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF  # the last record whole, its checksum wrong: not a crash's doing
    path.write_bytes(bytes(data))
    with pytest.raises(RuntimeError, match=r"9 valid records.*tickdb journal repair"):
        start_tp(tmp_path, name="tp-refused", tickerplant=one_record_per_batch)
    tp = start_tp(
        tmp_path, name="tp-repaired", extra_args=["--repair"], tickerplant=one_record_per_batch
    )
    procs.append(tp)
    assert tp.info["seq"] == 9
    address = tp.info["address"]
    with Publisher(address) as pub:
        pub.publish("trade", {"sym": "A", "price": 1.0, "size": 10})
    sub = Subscriber(address, start="journal")
    sizes = []
    while (m := sub.poll(1.0)) is not None:
        sizes.extend(m.data.column("size").to_pylist())
    assert sizes == [*range(9), 10]
    sub.close()


def test_a_torn_last_record_is_cut_at_start_and_kept_beside_the_journal(
    tmp_path: Path, procs: list
) -> None:
    """What a kill inside a journal write leaves: the restart cuts it by itself (it was
    never published or acknowledged), so a supervised tickerplant comes back."""
    one_record_per_batch = {"coalesce_queued": False}
    tp = start_tp(tmp_path, tickerplant=one_record_per_batch)
    with Publisher(tp.info["address"]) as pub:
        for i in range(10):
            pub.publish("trade", {"sym": "A", "price": 1.0, "size": i})
    tp.stop()
    path = journal_path(tmp_path / "data" / "journal", dt.date.fromisoformat(tp.info["session"]))
    whole = path.stat().st_size
    with open(path, "ab") as f:
        f.write(b"\x40\x00\x00\x00half a record")
    tp = start_tp(tmp_path, name="tp-after-crash", tickerplant=one_record_per_batch)
    procs.append(tp)
    assert tp.info["seq"] == 10
    assert path.stat().st_size == whole
    kept = path.with_name(f"{path.name}.corrupt-{whole}")
    assert kept.read_bytes() == b"\x40\x00\x00\x00half a record"
    assert "cutting a torn last record" in tp.log()
    with Publisher(tp.info["address"]) as pub:
        pub.publish("trade", {"sym": "A", "price": 1.0, "size": 10})
    sub = Subscriber(tp.info["address"], start="journal")
    sizes = []
    while (m := sub.poll(1.0)) is not None:
        sizes.extend(m.data.column("size").to_pylist())
    assert sizes == list(range(11))
    sub.close()


@given(st.binary(max_size=70_000), st.binary(max_size=5_000))
def test_record_checksum_is_zlibs_crc32_also_when_chained(head: bytes, payload: bytes) -> None:
    # Journals written before the faster implementation, and any reader using zlib, must
    # agree on every record's checksum, including the head-then-payload chaining.
    assert crc32(head) == zlib.crc32(head)
    assert crc32(payload, crc32(head)) == zlib.crc32(head + payload)


@given(
    sizes=st.lists(st.integers(0, 600_000), max_size=12),
    shorts=st.lists(st.integers(1, 300_000), max_size=20),
)
def test_journal_writes_every_byte_in_order_in_bounded_writev_calls(
    tmp_path_factory: pytest.TempPathFactory, sizes: list[int], shorts: list[int]
) -> None:
    # Buffers above and below the per-call bound, and a kernel that writes short: the file
    # holds exactly the buffers, in order, and no call was given more than the bound.
    buffers = [bytes([i % 251]) * n for i, n in enumerate(sizes)]
    path = tmp_path_factory.mktemp("writev") / "j"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    calls: list[int] = []
    real_writev = os.writev
    short_writes = iter(shorts)

    def writev(fd: int, views: list[memoryview]) -> int:
        asked = sum(len(v) for v in views)
        calls.append(asked)
        limit = next(short_writes, asked)
        joined = b"".join(views)[: min(asked, limit)]
        return real_writev(fd, [joined])

    try:
        os.writev = writev  # type: ignore[assignment]
        journal_writev.writev_all(fd, list(buffers))
    finally:
        os.writev = real_writev  # type: ignore[assignment]
        os.close(fd)
    assert path.read_bytes() == b"".join(buffers)
    assert all(0 < n <= journal_writev.WRITE_BYTES for n in calls)


@given(sizes=st.lists(st.integers(1, 700_000), min_size=1, max_size=12))
def test_each_writev_holds_whole_records(
    tmp_path_factory: pytest.TempPathFactory, sizes: list[int]
) -> None:
    """A process killed between two writev calls of a flush leaves whole records only: the
    journal restarts without a repair (cutting a record across calls left a torn tail)."""
    path = tmp_path_factory.mktemp("j") / "x.tpj"
    writer = JournalWriter(path, JournalIndex(), fsync="never")
    ends, at = set(), writer.size
    for seq, size in enumerate(sizes, 1):
        head, body = b"h" * min(size, 16), b"b" * max(size - 16, 0)
        writer.append_parts((head, body), seq)
        at += len(head) + len(body)
        ends.add(at)
    cuts: list[int] = []
    real_writev = os.writev

    def writev(fd: int, views: list[memoryview]) -> int:
        written = real_writev(fd, views)
        cuts.append(os.fstat(fd).st_size)
        return written

    try:
        os.writev = writev  # type: ignore[assignment]
        writer.flush()
    finally:
        os.writev = real_writev  # type: ignore[assignment]
        writer.close()
    assert cuts and set(cuts) <= ends, (cuts, sorted(ends))
    assert path.stat().st_size == max(ends)


def test_a_short_write_in_a_small_flush_is_finished(tmp_path: Path) -> None:
    """A flush of a few small records is one writev; if the kernel writes less (a signal,
    a full disk freed since), the rest still follows, in order."""
    path = tmp_path / "short.tpj"
    writer = JournalWriter(path, JournalIndex(), fsync="never")
    records = [(b"head%d" % i, b"body" * (i + 1)) for i in range(5)]
    for seq, parts in enumerate(records, 1):
        writer.append_parts(parts, seq)
    real_writev = os.writev
    calls: list[int] = []

    def writev(fd: int, views: list) -> int:
        calls.append(len(calls))
        if len(calls) == 1:
            return real_writev(fd, [b"".join(views)[:7]])
        return real_writev(fd, views)

    try:
        os.writev = writev  # type: ignore[assignment]
        writer.flush()
    finally:
        os.writev = real_writev  # type: ignore[assignment]
        writer.close()
    assert len(calls) == 2
    assert path.read_bytes() == JOURNAL_MAGIC + b"".join(b"".join(r) for r in records)


def test_a_turn_of_tables_is_one_writev_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Twenty 1000-row records (~33 KB each) queued in one turn go to the OS in one call:
    each call has a fixed cost, and cutting a turn at 256 KiB sent its last record alone."""
    calls: list[int] = []
    real_writev = os.writev

    def writev(fd: int, views: list[bytes | memoryview]) -> int:
        calls.append(sum(len(v) for v in views))
        return real_writev(fd, views)

    writer = JournalWriter(tmp_path / "j.tpj", JournalIndex(), fsync="never")
    payload = bytes(33_000)
    records = [encode_record(KIND_UPD, seq, seq, "trade", [], payload) for seq in range(1, 21)]
    for seq, record in enumerate(records, 1):
        writer.append(record, seq)
    monkeypatch.setattr(os, "writev", writev)
    writer.flush()
    monkeypatch.undo()
    writer.close()
    assert calls == [sum(map(len, records))]
    assert [r.seq for r in read_journal(tmp_path / "j.tpj")] == list(range(1, 21))
