"""``tickdb journal replay``: a summary line per record, a seq range, one table's rows to
Parquet, and clear refusals (``--out`` without ``--table``, a corrupt file)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from tickdb.cli import app
from tickerplant.ingest import encode_stream
from tickerplant.journal import (
    JOURNAL_MAGIC,
    JournalCorrupt,
    JournalIndex,
    JournalWriter,
    read_journal,
)
from tickerplant.protocol import KIND_EOD, KIND_UPD, encode_record

runner = CliRunner()


def write_day(path: Path) -> list[bytes]:
    """Seqs 1-4 trades (sizes 1-4), 5 a quote, 6 the end of day; the records as stored."""
    records = []
    for seq in range(1, 5):
        table = pa.table({"sym": ["A"], "size": [seq]})
        stream = encode_stream(table, table.schema)
        records.append(encode_record(KIND_UPD, seq, seq, "trade", (), stream))
    quote = pa.table({"sym": ["A", "B"], "bid": [1.0, 2.0]})
    records.append(encode_record(KIND_UPD, 5, 5, "quote", (), encode_stream(quote, quote.schema)))
    records.append(encode_record(KIND_EOD, 6, 6, "", (), b"2026-01-02"))
    writer = JournalWriter(path, JournalIndex(), fsync="never")
    for seq, record in enumerate(records, start=1):
        writer.append(record, seq)
    writer.close()
    return records


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    path = tmp_path / "2026-01-02.tpj"
    write_day(path)
    return path


def replay(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["journal", "replay", *args])
    return result.exit_code, result.stdout, result.stderr


def test_a_line_per_record_and_the_end_of_day(journal: Path) -> None:
    code, out, _ = replay(str(journal))
    assert code == 0
    assert out.splitlines() == [
        "#1 trade 1 rows",
        "#2 trade 1 rows",
        "#3 trade 1 rows",
        "#4 trade 1 rows",
        "#5 quote 2 rows",
        "#6 end of day 2026-01-02",
    ]


def test_a_seq_range_and_one_table(journal: Path) -> None:
    code, out, _ = replay(str(journal), "--after", "1", "--upto", "4", "--table", "trade")
    assert code == 0
    assert out.splitlines() == ["#2 trade 1 rows", "#3 trade 1 rows", "#4 trade 1 rows"]


def test_one_tables_rows_to_parquet(journal: Path, tmp_path: Path) -> None:
    out_file = tmp_path / "trade.parquet"
    code, out, _ = replay(str(journal), "--table", "trade", "--after", "2", "--out", str(out_file))
    assert code == 0 and "wrote 2 rows" in out
    assert pq.read_table(out_file).to_pydict() == {"sym": ["A", "A"], "size": [3, 4]}


def test_out_needs_a_table(journal: Path, tmp_path: Path) -> None:
    code, _, err = replay(str(journal), "--out", str(tmp_path / "x.parquet"))
    assert code == 2 and "--out needs --table" in err
    assert not (tmp_path / "x.parquet").exists()


def test_a_corrupt_record_stops_with_exit_1_after_the_good_ones(journal: Path) -> None:
    data = bytearray(journal.read_bytes())
    data[-5] ^= 0xFF  # inside the last record (the end of day)
    journal.write_bytes(bytes(data))
    code, out, err = replay(str(journal))
    assert code == 1
    assert out.splitlines()[-1] == "#5 quote 2 rows"
    assert "5 valid records" in err


@pytest.mark.parametrize("start", ["after", "offset"])
def test_a_reader_past_the_head_counts_the_sound_records_before_a_bad_one(
    tmp_path: Path, start: str
) -> None:
    path = tmp_path / "2026-01-02.tpj"
    records = write_day(path)
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF  # the end of day's record
    path.write_bytes(bytes(data))
    # From seq 4 on: by skipping the first three, or by seeking to the fourth's offset.
    offset = len(JOURNAL_MAGIC) + sum(map(len, records[:3]))
    args = {"after": 3} if start == "after" else {"start_offset": offset}
    with pytest.raises(JournalCorrupt) as caught:
        list(read_journal(path, **args))
    scan = caught.value.scan
    assert (scan.records, scan.first_seq, scan.last_seq) == (5, 1, 5)
    assert scan.valid_bytes == len(data) - len(records[-1])
    assert "checksum mismatch" in str(scan.error) and "5 valid records" in str(caught.value)


def test_repair_of_a_sound_file_changes_nothing(journal: Path) -> None:
    before = journal.read_bytes()
    result = runner.invoke(app, ["journal", "repair", str(journal)])
    assert result.exit_code == 0 and "nothing to repair" in result.stdout
    assert journal.read_bytes() == before
    assert not list(journal.parent.glob("*.corrupt-*"))
