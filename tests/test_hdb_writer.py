"""End-of-day write-down and intraday chunks, checked against plain DuckDB and other readers."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from support.harness import wait_until
from support.hdb_data import TRADE, expected_sorted, make_trades

from hdb import writer
from hdb.intraday import list_chunks, remove_chunks, write_chunk
from hdb.layout import Shard, partition_file
from hdb.parquet_out import WriteOptions
from hdb.sym_order import sym_ordered
from hdb.writer import write_partition
from tickdb.schema import SchemaError

DAY = dt.date(2024, 1, 2)


def read_back(path: Path) -> pa.Table:
    return pq.read_table(path).select(TRADE.column_names)


def test_partition_is_sorted_and_complete(tmp_path: Path) -> None:
    data = make_trades(50_000)
    result = write_partition(tmp_path, TRADE, DAY, data)
    assert result.path == tmp_path / "trade" / "date=2024-01-02" / "part-0-of-1.parquet"
    assert result.rows == 50_000
    assert read_back(result.path).equals(expected_sorted(data))


def test_equal_keys_keep_arrival_order(tmp_path: Path) -> None:
    data = make_trades(30_000, syms=3, ties=True)
    result = write_partition(tmp_path, TRADE, DAY, data)
    assert read_back(result.path).equals(expected_sorted(data))


def test_rows_in_time_order_skip_the_sort_and_make_the_same_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two feeds' rows interleaved: every sym in time order, the whole table not.
    early, late = make_trades(20_000, syms=10, ties=True), make_trades(20_000, syms=10, seed=2)
    late = late.set_column(1, "sym", pc.binary_join_element_wise(late.column("sym"), "x", ""))
    data = pa.concat_tables([late, early])
    assert sym_ordered(data) is not None
    shortcut = write_partition(tmp_path / "shortcut", TRADE, DAY, data)
    monkeypatch.setattr(writer, "sym_ordered", lambda _data: None)
    sorted_by_duckdb = write_partition(tmp_path / "duckdb", TRADE, DAY, data)
    assert read_back(shortcut.path).equals(expected_sorted(data))
    assert shortcut.path.read_bytes() == sorted_by_duckdb.path.read_bytes()


def test_a_sym_out_of_time_order_is_sorted_by_duckdb(tmp_path: Path) -> None:
    data = make_trades(20_000, syms=5)
    times = data.column("time").to_numpy().copy()
    times[100:200] = times[100:200][::-1]  # some rows of each sym arrived late
    data = data.set_column(0, "time", pa.array(times))
    assert sym_ordered(data) is None
    assert sym_ordered(data.slice(1000)) is not None
    result = write_partition(tmp_path, TRADE, DAY, data)
    assert read_back(result.path).equals(expected_sorted(data))


def test_null_syms_go_last(tmp_path: Path) -> None:
    data = make_trades(5000, syms=5)
    syms = data.column("sym").to_pylist()
    syms[10] = syms[4000] = None
    data = data.set_column(1, "sym", pa.array(syms, pa.string()))
    assert sym_ordered(data) is None
    result = write_partition(tmp_path, TRADE, DAY, data)
    assert read_back(result.path).equals(expected_sorted(data))
    assert read_back(result.path).column("sym")[-2:].to_pylist() == [None, None]


def test_more_syms_than_16_bit_ranks_hold(tmp_path: Path) -> None:
    data = make_trades(60_000, syms=40_000)
    assert sym_ordered(data) is not None
    result = write_partition(tmp_path, TRADE, DAY, data)
    assert read_back(result.path).equals(expected_sorted(data))


def test_chunks_and_memory_merge_in_arrival_order(tmp_path: Path) -> None:
    data = make_trades(40_000, syms=5, ties=True)
    intraday = tmp_path / "intraday"
    write_chunk(intraday, TRADE, DAY, data.slice(0, 15_000))
    write_chunk(intraday, TRADE, DAY, data.slice(15_000, 10_000))
    chunks = list_chunks(intraday, "trade", DAY)
    assert [p.name for p in chunks] == ["chunk-0.parquet", "chunk-1.parquet"]
    result = write_partition(tmp_path / "hdb", TRADE, DAY, data.slice(25_000), chunks=chunks)
    assert read_back(result.path).equals(expected_sorted(data))
    assert remove_chunks(intraday, "trade", DAY) == 2
    assert list_chunks(intraday, "trade", DAY) == []


def test_merge_of_chunks_alone_spills_under_a_small_memory_limit(tmp_path: Path) -> None:
    data = make_trades(1_500_000, syms=50)  # ~60 MB in Arrow: more than the limit
    intraday = tmp_path / "intraday"
    for k in range(3):
        write_chunk(intraday, TRADE, DAY, data.slice(k * 500_000, 500_000))
    options = WriteOptions(memory_limit="40MB", threads=1)
    result = write_partition(
        tmp_path / "hdb", TRADE, DAY, chunks=list_chunks(intraday, "trade", DAY), options=options
    )
    assert read_back(result.path).equals(expected_sorted(data))


def test_chunks_are_sorted_with_q_types(tmp_path: Path) -> None:
    data = make_trades(5000)
    path = write_chunk(tmp_path, TRADE, DAY, data)
    assert read_back(path).equals(expected_sorted(data))
    assert pq.read_schema(path).field("sym").metadata == {b"q": b"symbol"}
    assert write_chunk(tmp_path, TRADE, DAY, data).name == "chunk-1.parquet"


def test_q_types_in_footer_and_lake_readable_by_others(tmp_path: Path) -> None:
    data = make_trades(10_000)
    write_partition(tmp_path, TRADE, DAY, data)
    write_partition(tmp_path, TRADE, DAY + dt.timedelta(days=1), data)
    path = partition_file(tmp_path, "trade", DAY, Shard())
    schema = pq.read_schema(path)
    assert [f.metadata[b"q"].decode() for f in schema] == ["timestamp", "symbol", "float", "long"]
    assert schema.field("time").type == pa.timestamp("ns")
    glob = str(tmp_path / "trade" / "*" / "*.parquet")
    con = duckdb.connect()
    by_duckdb = con.sql(
        f"select date, count(*) n from read_parquet('{glob}', hive_partitioning=true) "
        "group by date order by date"
    ).fetchall()
    assert by_duckdb == [(DAY, 10_000), (DAY + dt.timedelta(days=1), 10_000)]
    lake = ds.dataset(tmp_path / "trade", format="parquet", partitioning="hive")
    assert lake.count_rows(filter=ds.field("date") == "2024-01-02") == 10_000
    frame = pl.scan_parquet(glob, hive_partitioning=True).filter(pl.col("sym") == "S001")
    expected = pc_count(data, "S001") * 2
    assert frame.select(pl.len()).collect().item() == expected
    assert con.sql(f"describe select time from '{path}'").fetchall()[0][1] == "TIMESTAMP_NS"


def pc_count(table: pa.Table, sym: str) -> int:
    return int(sum(1 for s in table.column("sym").to_pylist() if s == sym))


def test_row_groups_let_one_sym_skip_most_of_the_file(tmp_path: Path) -> None:
    data = make_trades(400_000, syms=40)
    result = write_partition(tmp_path, TRADE, DAY, data)
    meta = pq.read_metadata(result.path)
    assert meta.num_row_groups > 4
    sym = meta.schema.names.index("sym")
    for name in ("S000", "S017", "S039"):
        hit = 0
        for i in range(meta.num_row_groups):
            stats = meta.row_group(i).column(sym).statistics
            if stats.min <= name <= stats.max:
                hit += meta.row_group(i).num_rows
        # A sym owns 1/40 of the rows; its row groups hold at most a few times that.
        assert hit <= 4 * pc_count(data, name) + 2 * (400_000 // meta.num_row_groups)
        assert hit < 400_000 / 4


def test_empty_day_writes_an_empty_file_with_the_schema(tmp_path: Path) -> None:
    result = write_partition(tmp_path, TRADE, DAY)
    assert result.rows == 0
    table = pq.read_table(result.path)
    assert table.num_rows == 0 and table.schema.names == TRADE.column_names


def test_rerun_replaces_and_shards_get_their_own_file(tmp_path: Path) -> None:
    first = make_trades(1000, seed=1)
    second = make_trades(2000, seed=2)
    write_partition(tmp_path, TRADE, DAY, first)
    result = write_partition(tmp_path, TRADE, DAY, second)
    assert read_back(result.path).equals(expected_sorted(second))
    sharded = write_partition(tmp_path, TRADE, DAY, first, shard=Shard(1, 2))
    assert sharded.path.name == "part-1-of-2.parquet"
    assert sorted(p.name for p in result.path.parent.iterdir()) == [
        "part-0-of-1.parquet",
        "part-1-of-2.parquet",
    ]


def test_wrong_columns_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match="price"):
        write_partition(tmp_path, TRADE, DAY, make_trades(10).drop_columns(["price"]))
    assert not (tmp_path / "trade" / "date=2024-01-02" / "part-0-of-1.parquet").exists()


def test_columns_are_reordered_and_cast(tmp_path: Path) -> None:
    data = make_trades(100)
    shuffled = data.select(["sym", "size", "time", "price"]).set_column(
        1, "size", data.column("size").cast(pa.int32())
    )
    result = write_partition(tmp_path, TRADE, DAY, shuffled)
    assert read_back(result.path).equals(expected_sorted(data))


WRITER = textwrap.dedent(
    """
    import datetime as dt, sys
    sys.path.insert(0, {tests!r})
    from support.hdb_data import TRADE, make_trades
    from hdb.parquet_out import WriteOptions
    from hdb.writer import write_partition
    data = make_trades({rows}, syms=200, seed={seed})
    write_partition({hdb!r}, TRADE, dt.date(2024, 1, 2), data,
                    options=WriteOptions(threads=1, memory_limit="64MB"))
    """
)


def run_writer(hdb: Path, rows: int, seed: int) -> subprocess.Popen[bytes]:
    script = WRITER.format(tests=str(Path(__file__).parent), rows=rows, seed=seed, hdb=str(hdb))
    return subprocess.Popen([sys.executable, "-c", script], env={**os.environ})


def test_kill_9_mid_write_leaves_no_partial_partition_and_rerun_completes(
    tmp_path: Path,
) -> None:
    hdb = tmp_path / "hdb"
    assert run_writer(hdb, 20_000, seed=1).wait(60) == 0
    visible = sorted(hdb.glob("*/date=*/*.parquet"))
    before = pq.read_table(visible[0])
    writer = run_writer(hdb, 3_000_000, seed=2)
    directory = visible[0].parent
    try:
        wait_until(
            lambda: any(p.name.startswith(".part-0-of-1") for p in directory.iterdir()),
            timeout=60,
            what="the writer's temporary file",
        )
        writer.kill()
        writer.wait(10)
    finally:
        if writer.poll() is None:
            writer.kill()
    # Readers' glob sees exactly the old, whole partition; the torn file is hidden.
    assert sorted(hdb.glob("*/date=*/*.parquet")) == visible
    assert pq.read_table(visible[0]).equals(before)
    assert any(p.name.startswith(".part-0-of-1.parquet.tmp-") for p in directory.iterdir())
    assert run_writer(hdb, 30_000, seed=3).wait(60) == 0
    assert [p.name for p in directory.iterdir()] == ["part-0-of-1.parquet"]
    assert read_back(visible[0]).equals(expected_sorted(make_trades(30_000, syms=200, seed=3)))
