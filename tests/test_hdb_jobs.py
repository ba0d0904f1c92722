"""``tickdb hdb check | retain | load``: the jobs and their command line."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest
from support.harness import Proc
from support.hdb_data import TRADE, expected_sorted, make_trades

from hdb.jobs.check import check_hdb
from hdb.jobs.journal_counts import journal_row_counts
from hdb.jobs.load import LoadError, load_file
from hdb.jobs.retain import retain
from hdb.layout import Shard, list_dates, partition_file
from hdb.writer import write_partition
from queries.service import QueryClient
from tickdb.schema import default_schemas
from tickerplant.journal import JournalIndex, JournalWriter, journal_path
from tickerplant.protocol import KIND_EOD, KIND_UPD, encode_record, shard_of

SCHEMAS = default_schemas()
D1, D2 = dt.date(2024, 1, 2), dt.date(2024, 1, 3)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tickdb.cli", "hdb", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def write_journal(journal_dir: Path, date: dt.date, tables: dict[str, list[pa.Table]]) -> None:
    writer = JournalWriter(journal_path(journal_dir, date), JournalIndex(), fsync="never")
    seq = 0
    for name, batches in tables.items():
        for batch in batches:
            sink = pa.BufferOutputStream()
            with ipc.new_stream(sink, batch.schema) as out:
                out.write_table(batch)
            seq += 1
            writer.append(
                encode_record(KIND_UPD, seq, 0, name, [], sink.getvalue().to_pybytes()), seq
            )
    seq += 1
    writer.append(encode_record(KIND_EOD, seq, 0, "", [], date.isoformat().encode()), seq)
    writer.close()


# -- check -----------------------------------------------------------------------------------


def test_check_passes_a_good_lake_and_matches_the_journal(tmp_path: Path) -> None:
    data = make_trades(3000)
    write_partition(tmp_path / "hdb", TRADE, D1, data)
    write_journal(tmp_path / "journal", D1, {"trade": [data.slice(0, 1000), data.slice(1000)]})
    assert journal_row_counts(tmp_path / "journal", D1) == {"trade": 3000}
    report = check_hdb(
        tmp_path / "hdb",
        SCHEMAS,
        journal_counts=lambda d: journal_row_counts(tmp_path / "journal", d),
    )
    assert report.ok, report.findings
    assert (report.partitions, report.files, report.rows) == (1, 1, 3000)
    result = cli("check", "--data-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout


def test_check_finds_each_kind_of_problem(tmp_path: Path) -> None:
    hdb = tmp_path / "hdb"
    data = make_trades(2000)
    write_partition(hdb, TRADE, D1, data)
    write_journal(tmp_path / "journal", D1, {"trade": [data, data.slice(0, 5)]})
    # A file with an extra column, written as if by hand.
    odd = partition_file(hdb, "trade", D2, Shard())
    odd.parent.mkdir(parents=True)
    pq.write_table(data.append_column("extra", pa.array([1] * data.num_rows)), odd)
    # Shard 1 of 2 without shard 0, and an unsorted file.
    reverse = data.take(pa.array(range(data.num_rows - 1, -1, -1)))
    bad_sort = partition_file(hdb, "trade", dt.date(2024, 1, 4), Shard(1, 2))
    bad_sort.parent.mkdir(parents=True)
    pq.write_table(reverse.replace_schema_metadata(None), bad_sort, row_group_size=100)
    (odd.parent / ".part-0-of-1.parquet.tmp-999999999").write_bytes(b"torn")
    result = cli("check", "--data-dir", str(tmp_path))
    assert result.returncode == 1
    out = result.stdout + result.stderr
    assert "partition has 2000 rows, journal has 2005" in out
    assert "2024-01-03: part-0-of-1.parquet: columns" in out
    assert "shard file(s) [0] of 2 are missing" in out
    assert "not sorted by sym" in out
    assert "crashed writer" in out


# -- retain ----------------------------------------------------------------------------------


def test_retain_removes_old_partitions_and_reloads_hdbs(procs: list[Proc], tmp_path: Path) -> None:
    data = tmp_path / "data"
    days = [dt.date(2024, 1, d) for d in (1, 2, 3, 4)]
    for day in days:
        write_partition(data / "hdb", TRADE, day, make_trades(100, seed=day.day))
    proc = Proc(["hdb", "--data-dir", str(data), "--address", "tcp://127.0.0.1:0"], tmp_path, "hdb")
    procs.append(proc)
    client = QueryClient(proc.info["address"])
    dry = retain(data / "hdb", 1, today=days[-1], dry_run=True)
    assert [d for _, d in dry.removed] == days[:2]
    assert list_dates(data / "hdb", "trade") == days
    result = cli(
        "retain",
        "--days",
        "1",
        "--today",
        "2024-01-04",
        "--data-dir",
        str(data),
        "--notify",
        proc.info["address"],
    )
    assert result.returncode == 0, result.stderr
    assert "removed 2 partitions" in result.stdout and "reloaded" in result.stdout
    assert list_dates(data / "hdb", "trade") == days[2:]
    assert [p.name for p in (data / "hdb" / "trade").iterdir()] != []
    assert not any(p.name.startswith(".") for p in (data / "hdb" / "trade").iterdir())
    assert client.info()["tables"]["trade"]["dates"] == ["2024-01-03", "2024-01-04"]
    assert client.query("select count(*) n from trade").table.column("n").to_pylist() == [200]
    client.close()


# -- load ------------------------------------------------------------------------------------


def two_days() -> pa.Table:
    first, second = make_trades(3000, seed=1), make_trades(2000, seed=2)
    shift = pa.array([dt.timedelta(days=1)] * second.num_rows, pa.duration("ns"))
    second = second.set_column(0, "time", pa.compute.add(second.column("time"), shift))
    return pa.concat_tables([first, second])


def test_load_csv_partitions_by_date_like_the_write_down(tmp_path: Path) -> None:
    data = two_days()
    source = tmp_path / "trades.csv"
    pacsv.write_csv(data, source)
    result = cli("load", str(source), "--table", "trade", "--data-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert '"rows_loaded": 5000' in result.stdout
    hdb = tmp_path / "hdb"
    assert list_dates(hdb, "trade") == [D1, D2]
    for day, part in ((D1, data.slice(0, 3000)), (D2, data.slice(3000))):
        got = pq.read_table(partition_file(hdb, "trade", day, Shard()))
        assert got.equals(expected_sorted(part))  # same schema (q metadata), order, values
    assert check_hdb(hdb, SCHEMAS).ok


def test_load_with_bad_rows_writes_nothing_and_names_them(tmp_path: Path) -> None:
    source = tmp_path / "bad.csv"
    source.write_text(
        "time,sym,price,size\n"
        "2024-01-02 09:30:00.123456789,AAPL,1.5,10\n"
        "2024-01-02 09:31:00,MSFT,abc,20\n"
        ",IBM,3,4\n"
        "2024-01-02 10:00:02,Y,3,4.5\n"
        "2024-01-02 10:00:03,Z,3,4,5\n"
    )
    result = cli("load", str(source), "--table", "trade", "--data-dir", str(tmp_path))
    assert result.returncode == 1
    assert "row 2: price=abc is not a float" in result.stderr
    assert "row 3: time is missing" in result.stderr
    assert "row 4: size=4.5 is not a long" in result.stderr
    assert "line 6: TOO MANY COLUMNS" in result.stderr
    assert "nothing written" in result.stderr
    assert not list((tmp_path / "hdb").glob("*/date=*/*"))
    skipped = cli(
        "load", str(source), "--table", "trade", "--data-dir", str(tmp_path), "--skip-bad"
    )
    assert skipped.returncode == 0, skipped.stderr
    table = pq.read_table(partition_file(tmp_path / "hdb", "trade", D1, Shard()))
    assert table.column("sym").to_pylist() == ["AAPL"]
    assert table.column("time")[0].value == 1704187800123456789  # nanoseconds kept


def test_load_honours_utc_offsets(tmp_path: Path) -> None:
    source = tmp_path / "tz.csv"
    source.write_text(
        "time,sym,price,size\n2024-01-02T10:31:00+01:00,A,1,1\n2024-01-02T09:32:00Z,B,1,1\n"
    )
    report = load_file(tmp_path / "hdb", TRADE, source)
    assert report.written and report.rows_loaded == 2
    table = pq.read_table(partition_file(tmp_path / "hdb", "trade", D1, Shard()))
    assert [t.isoformat() for t in table.column("time").to_pylist()] == [
        "2024-01-02T09:31:00",
        "2024-01-02T09:32:00",
    ]


def test_load_parquet_if_exists_and_shards(tmp_path: Path) -> None:
    hdb = tmp_path / "hdb"
    data = make_trades(4000)
    source = tmp_path / "trades.parquet"
    pq.write_table(data.slice(0, 2500), source)
    load_file(hdb, TRADE, source)
    with pytest.raises(LoadError, match="already exist"):
        load_file(hdb, TRADE, source)
    more = tmp_path / "more.parquet"
    pq.write_table(data.slice(2500), more)
    load_file(hdb, TRADE, more, if_exists="append")
    merged = pq.read_table(partition_file(hdb, "trade", D1, Shard()))
    assert merged.equals(expected_sorted(data))
    load_file(hdb, TRADE, more, if_exists="replace")
    replaced = pq.read_table(partition_file(hdb, "trade", D1, Shard()))
    assert replaced.equals(expected_sorted(data.slice(2500)))
    sharded = tmp_path / "sharded"
    load_file(sharded, TRADE, source, shards=3)
    total = 0
    for k in range(3):
        part = pq.read_table(partition_file(sharded, "trade", D1, Shard(k, 3)))
        assert {shard_of(s, 3) for s in part.column("sym").to_pylist()} <= {k}
        total += part.num_rows
    assert total == 2500


def test_load_refuses_wrong_columns(tmp_path: Path) -> None:
    source = tmp_path / "wrong.csv"
    source.write_text("time,sym,px\n2024-01-02 00:00:00,A,1\n")
    with pytest.raises(LoadError, match=r"missing \['price', 'size'\], unknown \['px'\]"):
        load_file(tmp_path / "hdb", TRADE, source)


def test_loaded_lake_reads_like_plain_duckdb(tmp_path: Path) -> None:
    data = two_days()
    source = tmp_path / "trades.parquet"
    pq.write_table(data, source)
    load_file(tmp_path / "hdb", TRADE, source)
    glob = tmp_path / "hdb" / "trade" / "*" / "*.parquet"
    con = duckdb.connect()
    got = con.sql(f"select sum(size) from read_parquet('{glob}')").fetchall()[0][0]
    assert got == sum(data.column("size").to_pylist())


def test_load_keeps_nanoseconds_of_times_with_an_offset(tmp_path: Path) -> None:
    source = tmp_path / "tz.csv"
    source.write_text(
        "time,sym,price,size\n"
        "2024-01-02T10:30:00.123456789+01:00,A,1,1\n"
        "2024-01-02T09:30:00.000000001Z,B,1,1\n"
        "2024-01-02T04:00:00.999999999-05:30,C,1,1\n"
        "2024-01-02T09:30:00+25:00,D,1,1\n"
    )
    report = load_file(tmp_path / "hdb", TRADE, source, skip_bad=True)
    assert report.rows_loaded == 3 and [b.row for b in report.bad_rows] == [4]
    table = pq.read_table(partition_file(tmp_path / "hdb", "trade", D1, Shard()))
    base = 1704187800 * 10**9  # 2024-01-02 09:30 UTC
    times = [t.value for t in table.column("time")]
    assert dict(zip(table.column("sym").to_pylist(), times, strict=True)) == {
        "A": base + 123456789,
        "B": base + 1,
        "C": base + 999999999,
    }
