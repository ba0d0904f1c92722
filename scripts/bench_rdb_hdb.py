"""Benchmark the RDB and HDB against raw DuckDB on the same data and the same machine.

Sections (run all, or some with ``--only``):

- ``writedown``: ``hdb.writer.write_partition`` of an in-memory day against raw DuckDB
  ``COPY (SELECT * FROM t ORDER BY sym, time) TO … (FORMAT parquet)`` of the same Arrow
  table. Target: ≤ 1.3x raw.
- ``handover``: the RDB's end of day, from the roll to the HDB serving the day: a ``Store``
  holding ``--handover-rows`` trades as an RDB holds them at the end of a session (appended
  in 4096-row batches, compacted), rolled, then ``rdb.handover.Handover.complete`` (write
  the partition, RELOAD a real ``tickdb hdb`` process, wait until it serves the date, drop
  the day), against raw DuckDB's ``COPY (SELECT * FROM t ORDER BY sym, time) TO …`` of the
  same rows as one Arrow table. Target: ≤ 1.3x raw + 1 s.
- ``hdb_query``: a real ``tickdb hdb`` process answering over ZeroMQ against raw DuckDB
  (in this process, same files, views over a glob) for VWAP by sym, 1-minute OHLCV bars and a
  one-sym filter. Target: ≤ 1.2x raw + 2 ms.

Each figure is the median of ``--reps`` runs, raw and tickdb interleaved so that noise from
other work on the machine hits both. To add a section (RDB replay, RDB queries), write a
function ``(args) -> list[Row]`` and add it to ``SECTIONS``.

    python scripts/bench_rdb_hdb.py [--only writedown,handover,hdb_query]
                                    [--rows 1000000,10000000] [--handover-rows 5000000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hdb.writer import write_partition  # noqa: E402
from queries.service import QueryClient  # noqa: E402
from rdb.handover import Handover  # noqa: E402
from rdb.recovery import RdbState  # noqa: E402
from rdb.store import Store  # noqa: E402
from tickdb.launch import Launched, launch  # noqa: E402
from tickdb.schema import default_schemas  # noqa: E402
from tickdb.types import UNSHARDED  # noqa: E402

TRADE = default_schemas()["trade"]
DAY = dt.date(2024, 1, 2)
SYMS = 200


@dataclass
class Row:
    section: str
    case: str
    raw_ms: float
    tickdb_ms: float
    target: str

    @property
    def ratio(self) -> float:
        return self.tickdb_ms / self.raw_ms

    def meets(self) -> bool:
        if self.target.startswith("1.2x"):
            return self.tickdb_ms <= 1.2 * self.raw_ms + 2.0
        if self.target.endswith("+ 1 s"):
            return self.tickdb_ms <= 1.3 * self.raw_ms + 1000.0
        return self.tickdb_ms <= 1.3 * self.raw_ms


def trades(n: int, day: dt.date = DAY, seed: int = 1) -> pa.Table:
    rng = np.random.default_rng(seed)
    start = np.datetime64(day.isoformat(), "ns").astype(np.int64)
    times = start + np.sort(rng.integers(0, 86_400 * 10**9, n))
    names = np.array([f"S{i:03d}" for i in range(SYMS)])
    return pa.table(
        {
            "time": pa.array(times.astype("datetime64[ns]")),
            "sym": pa.array(names[rng.integers(0, SYMS, n)]),
            "price": rng.normal(100, 5, n),
            "size": rng.integers(1, 1000, n),
        },
        schema=TRADE.arrow,
    )


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


# -- write-down ------------------------------------------------------------------------------


def bench_writedown(args: argparse.Namespace) -> list[Row]:
    rows = []
    for n in args.rows:
        data = trades(n)
        raw_t, ours_t = [], []
        with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
            out = Path(tmp) / "raw.parquet"
            for _ in range(args.reps):
                con = duckdb.connect()
                con.register("t", data)
                started = time.perf_counter()
                con.execute(
                    f"COPY (SELECT * FROM t ORDER BY sym, time) TO '{out}' (FORMAT parquet)"
                )
                raw_t.append(time.perf_counter() - started)
                con.close()
                started = time.perf_counter()
                write_partition(Path(tmp) / "hdb", TRADE, DAY, data)
                ours_t.append(time.perf_counter() - started)
        rows.append(
            Row("writedown", f"{n:,} rows", median_ms(raw_t), median_ms(ours_t), "1.3x raw")
        )
        print(
            f"  writedown {n:,}: raw {median_ms(raw_t):.0f} ms, tickdb {median_ms(ours_t):.0f} ms",
            file=sys.stderr,
        )
    return rows


# -- end-of-day handover ---------------------------------------------------------------------


def rdb_store(data: pa.Table, day: dt.date) -> Store:
    """``data`` as an RDB holds it at the end of a session: appended in the batches it
    arrived in, compacted (symbols interned) as its maintenance thread does."""
    store = Store({"trade": TRADE}, day)
    for batch in data.to_batches(max_chunksize=4096):
        with store.lock:
            store.live.append_locked("trade", [batch], 1)
        store.live.compact("trade")
    return store


def bench_handover(args: argparse.Namespace) -> list[Row]:
    n = args.handover_rows
    data = trades(n)
    raw_t, ours_t = [], []
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        data_dir = Path(tmp)
        hdb = start_hdb(data_dir)
        address = str(hdb.info["address"])
        steps: list[tuple[float, str]] = []  # (when, message) of the handover's progress
        try:
            for rep in range(args.reps):
                day = DAY + dt.timedelta(days=rep)
                store = rdb_store(data, day)
                handover = Handover(
                    store,
                    RdbState(data_dir / "rdb"),
                    hdb_dir=data_dir / "hdb",
                    intraday_root=data_dir / "intraday",
                    shard=UNSHARDED,
                    hdb_addresses=[address],
                    memory_limit_mb=2048,
                )
                steps.clear()
                handover.on_progress = lambda m: steps.append((time.perf_counter(), m))
                con = duckdb.connect()
                con.register("t", data)
                started = time.perf_counter()
                con.execute(
                    f"COPY (SELECT * FROM t ORDER BY sym, time) TO '{data_dir / 'raw.parquet'}' "
                    "(FORMAT parquet)"
                )
                raw_t.append(time.perf_counter() - started)
                con.close()
                started = time.perf_counter()
                handover.complete(store.roll(day, day + dt.timedelta(days=1), rep + 1))
                ours_t.append(time.perf_counter() - started)
                marks = ", ".join(
                    f"{m.partition(': ')[2][:20]} {t - started:.2f}s" for t, m in steps
                )
                print(
                    f"  handover {n:,} rows: raw {raw_t[-1]:.2f}s, tickdb {ours_t[-1]:.2f}s "
                    f"({marks})",
                    file=sys.stderr,
                )
        finally:
            hdb.stop()
    return [
        Row(
            "handover",
            f"{n:,} rows, roll to HDB serving",
            median_ms(raw_t),
            median_ms(ours_t),
            "1.3x raw + 1 s",
        )
    ]


# -- HDB queries -----------------------------------------------------------------------------

QUERIES = {
    "VWAP by sym": "SELECT sym, sum(price * size) / sum(size) AS vwap FROM trade "
    "WHERE date = DATE '{day}' GROUP BY sym",
    "1-min OHLCV bars": "SELECT sym, time_bucket(INTERVAL 1 MINUTE, time) AS minute, "
    "first(price ORDER BY time) AS open, max(price) AS high, min(price) AS low, "
    "last(price ORDER BY time) AS close, sum(size) AS volume FROM trade "
    "WHERE date = DATE '{day}' GROUP BY ALL",
    "one-sym filter": "SELECT time, price, size FROM trade "
    "WHERE date = DATE '{day}' AND sym = 'S042'",
}


def build_lake(data_dir: Path, days: int, rows_per_day: int) -> list[dt.date]:
    dates = [DAY + dt.timedelta(days=k) for k in range(days)]
    for k, day in enumerate(dates):
        write_partition(data_dir / "hdb", TRADE, day, trades(rows_per_day, day, seed=k))
    return dates


def start_hdb(data_dir: Path) -> Launched:
    args = ["hdb", "--data-dir", str(data_dir), "--address", "tcp://127.0.0.1:0"]
    return launch(
        args,
        name="hdb",
        log_path=data_dir / "hdb.log",
        ready_file=data_dir / "hdb.ready.json",
        env={"TICKDB_LOG_LEVEL": "WARNING"},
        cwd=ROOT,
    )


def bench_hdb_query(args: argparse.Namespace) -> list[Row]:
    rows = []
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        data_dir = Path(tmp)
        dates = build_lake(data_dir, args.days, args.day_rows)
        day = dates[len(dates) // 2].isoformat()
        hdb = start_hdb(data_dir)
        address = str(hdb.info["address"])
        try:
            client = QueryClient(address, timeout_s=120)
            raw = duckdb.connect()
            glob = data_dir / "hdb" / "trade" / "*" / "*.parquet"
            raw.execute(
                f"CREATE VIEW trade AS SELECT * FROM read_parquet('{glob}', "
                "hive_partitioning = true, hive_types = {'date': DATE})"
            )
            for case, template in QUERIES.items():
                sql = template.format(day=day)
                raw_t, ours_t = [], []
                for rep in range(args.reps + 2):  # two warm-up rounds
                    started = time.perf_counter()
                    expected = raw.sql(sql).to_arrow_table()
                    raw_s = time.perf_counter() - started
                    started = time.perf_counter()
                    got = client.query(sql, max_rows=10_000_000).table
                    ours_s = time.perf_counter() - started
                    if rep >= 2:
                        raw_t.append(raw_s)
                        ours_t.append(ours_s)
                assert got.num_rows == expected.num_rows, case
                rows.append(
                    Row(
                        "hdb_query",
                        f"{case} ({expected.num_rows:,} rows out)",
                        median_ms(raw_t),
                        median_ms(ours_t),
                        "1.2x raw + 2 ms",
                    )
                )
                print(
                    f"  {case}: raw {median_ms(raw_t):.1f} ms, tickdb {median_ms(ours_t):.1f} ms",
                    file=sys.stderr,
                )
            client.close()
        finally:
            hdb.stop(grace_s=30)
    return rows


SECTIONS: dict[str, Callable[[argparse.Namespace], list[Row]]] = {
    "writedown": bench_writedown,
    "handover": bench_handover,
    "hdb_query": bench_hdb_query,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections")
    parser.add_argument("--rows", default="1000000,10000000", help="write-down sizes")
    parser.add_argument("--handover-rows", type=int, default=5_000_000)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--days", type=int, default=5, help="HDB partitions")
    parser.add_argument("--day-rows", type=int, default=1_000_000, help="rows per partition")
    parser.add_argument("--tmp", default=None, help="scratch directory (default: system temp)")
    parser.add_argument("--json", action="store_true", help="print rows as JSON")
    args = parser.parse_args()
    args.rows = [int(x) for x in args.rows.split(",")]
    results: list[Row] = []
    for name in args.only.split(","):
        print(f"{name} ...", file=sys.stderr)
        results.extend(SECTIONS[name](args))
    if args.json:
        print(json.dumps([{**r.__dict__, "ratio": r.ratio, "meets": r.meets()} for r in results]))
        return
    print("| section | case | raw DuckDB | tickdb | ratio | target | met |")
    print("|---|---|---:|---:|---:|---|---|")
    for r in results:
        print(
            f"| {r.section} | {r.case} | {r.raw_ms:.1f} ms | {r.tickdb_ms:.1f} ms | "
            f"{r.ratio:.2f}x | {r.target} | {'yes' if r.meets() else 'NO'} |"
        )


if __name__ == "__main__":
    from stop_on_term import stop_on_term

    stop_on_term()
    main()
