"""End of day: write-down to the HDB while ingesting, and the exactly-once handover of a date."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
from support.harness import wait_until
from support.rdb_stack import Stack, client, publish_trades, roll, scalar, wait_rows

from queries.service import QueryClient, QueryError


def count_for(rdb: QueryClient, hdb: QueryClient, date: str) -> tuple[str, int | None]:
    """The gateway rule: the RDB answers for a date while it lists it, otherwise the HDB.

    The count and whether the RDB served the date come from one query, so one snapshot.
    """
    row = rdb.query(
        f"SELECT (SELECT count(*) FROM trade WHERE date = DATE '{date}') AS n, "
        f"(SELECT count(*) FROM rdb_dates WHERE date = DATE '{date}') AS served"
    ).table.to_pylist()[0]
    if row["served"]:
        return "rdb", row["n"]
    try:
        return "hdb", scalar(hdb, f"SELECT count(*) FROM trade WHERE date = DATE '{date}'")
    except QueryError as exc:  # the date is in neither: the guarantee is broken
        return f"hdb error {exc}", None


def test_eod_hands_the_date_to_the_hdb_with_no_row_missing_or_doubled(
    tmp_path: Path, procs: list
) -> None:
    stack = Stack(tmp_path, procs)
    hdb_proc = stack.start_hdb()
    rdb_proc = stack.start_rdb("rdb", "--hdb", str(hdb_proc.info["address"]))
    rdb, hdb = client(rdb_proc), client(hdb_proc)
    publish_trades(stack.address, 0, 20_000, per_batch=500)
    wait_rows(rdb, "trade", 20_000)
    day = rdb.info()["date"]
    seen: list[tuple[str, int | None]] = []
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            seen.append(count_for(rdb, hdb, day))

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        wait_until(lambda: len(seen) >= 3, 10, "polls before the roll")
        roll(stack.address)
        # The new day ingests while the old one is written and handed over.
        publish_trades(stack.address, 20_000, 2000, per_batch=100)
        wait_until(lambda: day not in rdb.info()["dates"], 30, "the handover")
        polls_at_handover = len(seen)
        wait_until(lambda: len(seen) >= polls_at_handover + 3, 10, "polls after it")
    finally:
        stop.set()
        poller.join()
    assert {n for _, n in seen} == {20_000}, sorted(set(seen), key=str)[:5]
    sources = [s for s, _ in seen]
    assert "rdb" in sources and sources[-1] == "hdb"
    # Once the HDB answers it keeps answering: the date never bounces back.
    assert sources[sources.index("hdb") :] == ["hdb"] * (len(sources) - sources.index("hdb"))
    # The new day is in the RDB, the old one only in the HDB.
    info = rdb.info()
    assert info["dates"] == [(dt.date.fromisoformat(day) + dt.timedelta(days=1)).isoformat()]
    wait_rows(rdb, "trade", 2000)
    assert scalar(rdb, "SELECT count(*) FROM trade") == 2000
    assert scalar(rdb, "SELECT min(size) FROM trade") == 20_000
    # The partition is the lake's layout, sorted by sym then time.
    part = stack.data / "hdb" / "trade" / f"date={day}" / "part-0-of-1.parquet"
    table = pq.read_table(part)
    assert table.num_rows == 20_000
    keys = list(zip(table["sym"].to_pylist(), table["time"].to_pylist(), strict=True))
    assert keys == sorted(keys)
    assert pc.sum(table["size"]).as_py() == sum(range(20_000))
    assert (stack.data / "hdb" / "quote" / f"date={day}").is_dir()  # empty tables too


def test_eod_merges_intraday_chunks_and_restart_mid_writedown_rewrites_the_day(
    tmp_path: Path, procs: list
) -> None:
    # Memory cap 1 MB: most of the day goes to intraday chunks before EOD merges them.
    stack = Stack(tmp_path, procs, memory_limit_mb=1)
    rdb_proc = stack.start_rdb()
    rdb = client(rdb_proc)
    publish_trades(stack.address, 0, 50_000, per_batch=2500)
    wait_rows(rdb, "trade", 50_000)
    wait_until(lambda: rdb.info()["spills"] > 0, 10, "a spill")
    day = rdb.info()["date"]
    # Queries cover chunks and memory together.
    assert scalar(rdb, "SELECT count(DISTINCT size) FROM trade") == 50_000
    chunk_dir = stack.data / "intraday" / "trade" / f"date={day}"
    assert any(chunk_dir.glob("chunk-*.parquet"))
    # Crash right at EOD: the state file still lists the day, so a restart replays it
    # from the journal (chunks included once) and writes it down.
    rdb_proc.kill9()
    roll(stack.address)
    publish_trades(stack.address, 50_000, 500)
    again = client(stack.start_rdb("rdb-again"))
    part = stack.data / "hdb" / "trade" / f"date={day}" / "part-0-of-1.parquet"
    wait_until(lambda: day not in again.info()["dates"], 30, "the write-down after restart")
    table = pq.read_table(part)
    assert table.num_rows == 50_000
    assert sorted(table["size"].to_pylist()) == list(range(50_000))
    assert not chunk_dir.exists()  # chunks are removed once the partition is published
    wait_rows(again, "trade", 500)
    assert scalar(again, "SELECT count(*) FROM trade") == 500


def test_eod_job_writes_a_day_from_the_journal_and_is_idempotent(
    tmp_path: Path, procs: list
) -> None:
    import subprocess
    import sys

    stack = Stack(tmp_path, procs)
    publish_trades(stack.address, 0, 3000)
    day = str(stack.tp.info["session"])
    args = [
        sys.executable,
        "-m",
        "tickdb.cli",
        "eod",
        "--date",
        day,
        "--config",
        str(stack.config),
        "--data-dir",
        str(stack.data),
    ]
    early = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert early.returncode == 1 and "has not ended" in early.stderr
    roll(stack.address)
    part = stack.data / "hdb" / "trade" / f"date={day}" / "part-0-of-1.parquet"
    for _ in range(2):  # a rerun rewrites the same file
        done = subprocess.run(args, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert "write" in done.stdout  # rich progress
        table = pq.read_table(part)
        assert sorted(table["size"].to_pylist()) == list(range(3000))


def test_eod_job_past_its_memory_cap_writes_from_chunks(tmp_path: Path, procs: list) -> None:
    import subprocess
    import sys

    stack = Stack(tmp_path, procs, memory_limit_mb=1)
    publish_trades(stack.address, 0, 60_000, per_batch=1000)  # ~2 MB of Arrow: spilled
    day = str(stack.tp.info["session"])
    roll(stack.address)
    args = ["eod", "--date", day, "--config", str(stack.config), "--data-dir", str(stack.data)]
    done = subprocess.run(
        [sys.executable, "-m", "tickdb.cli", *args], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    table = pq.read_table(stack.data / "hdb" / "trade" / f"date={day}" / "part-0-of-1.parquet")
    assert sorted(table["size"].to_pylist()) == list(range(60_000))
    keys = list(zip(table["sym"].to_pylist(), table["time"].to_pylist(), strict=True))
    assert keys == sorted(keys)
    assert not any((stack.data / "intraday").glob("eod-*"))  # its scratch chunks are gone
