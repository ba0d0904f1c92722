"""Spark reads the lake (``hdb.spark.read_table``) and agrees with the gateway.

Spark 4 refuses ``spark.read.parquet("<hdb>/trade")`` outright: the nanosecond ``time`` is an
illegal Parquet type to it. The reader gives Spark an explicit schema and rebuilds ``time``
as a Spark timestamp, keeping the exact nanoseconds in ``time_ns``.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from support.harness import Proc

from gateway.client import Client
from hdb.layout import Shard
from hdb.spark import _uri, lake_schema, spark_ddl
from hdb.writer import write_partition
from tickdb.schema import default_schemas
from tickerplant.protocol import shard_of

SHARDS = 3
SYMS = ["AAPL", "MSFT", "IBM", "GOOG", "AMZN"]
DAYS = [dt.date(2024, 3, 4), dt.date(2024, 3, 5), dt.date(2024, 3, 6)]


def trades(day: dt.date, rows: int) -> pa.Table:
    start = int(dt.datetime.combine(day, dt.time(9, 30), dt.UTC).timestamp()) * 10**9
    return pa.table(
        {
            # Odd nanoseconds: anything that rounds through microseconds shows.
            "time": pa.array([start + i * 1_000_003_457 for i in range(rows)], pa.timestamp("ns")),
            "sym": [SYMS[(i * 7) % len(SYMS)] for i in range(rows)],
            "price": [100.0 + (i * 13) % 29 / 4 for i in range(rows)],
            "size": pa.array([1 + (i * 11) % 97 for i in range(rows)], pa.int64()),
        }
    )


def write_lake(hdb_dir: Path) -> None:
    schema = default_schemas()["trade"]
    for n, day in enumerate(DAYS):
        table = trades(day, 500 + 137 * n)
        syms = table.column("sym").to_pylist()
        for k in range(SHARDS):
            mine = pa.array([shard_of(s, SHARDS) == k for s in syms])
            write_partition(hdb_dir, schema, day, table.filter(mine), shard=Shard(k, SHARDS))


def test_spark_schema_reads_nanoseconds_as_integers(tmp_path: Path) -> None:
    write_lake(tmp_path / "hdb")
    schema = lake_schema(tmp_path / "hdb", "trade")
    assert schema == default_schemas()["trade"]
    assert spark_ddl(schema) == "`time` BIGINT, `sym` STRING, `price` DOUBLE, `size` BIGINT"
    with pytest.raises(FileNotFoundError, match="quote"):
        lake_schema(tmp_path / "hdb", "quote")
    # Spark's Hadoop spellings of S3 are PyArrow's s3://
    assert _uri("s3a://bucket/hdb") == "s3://bucket/hdb"


@pytest.fixture
def spark() -> Iterator[Any]:
    with warnings.catch_warnings():
        # pyspark warns about the pandas version on start; tickdb hands it no pandas.
        warnings.simplefilter("ignore", FutureWarning)
        from pyspark import SparkContext
        from pyspark.sql import SparkSession

        session = (
            SparkSession.builder.master("local[2]")
            .config("spark.ui.enabled", "false")
            .config("spark.sql.shuffle.partitions", "2")
            .config("spark.sql.session.timeZone", "UTC")
            .getOrCreate()
        )
    session.sparkContext.setLogLevel("ERROR")
    gateway = SparkContext._gateway
    jvm: subprocess.Popen[bytes] | None = getattr(gateway, "proc", None)
    try:
        yield session
    finally:
        session.stop()
        gateway.shutdown()
        SparkContext._gateway = None
        SparkContext._jvm = None
        if jvm is not None:  # the JVM exits when its stdin closes; do not leave it behind
            if jvm.stdin is not None:
                jvm.stdin.close()
            try:
                jvm.wait(20)
            except subprocess.TimeoutExpired:
                jvm.kill()
                jvm.wait(10)


@pytest.mark.slow
def test_spark_reads_the_lake_and_agrees_with_the_gateway(
    tmp_path: Path, procs: list[Proc], spark: Any
) -> None:
    data = tmp_path / "data"
    write_lake(data / "hdb")
    hdbs = []
    for k in range(SHARDS):
        args = ["hdb", "--data-dir", str(data), "--address", "tcp://127.0.0.1:0"]
        hdbs.append(Proc([*args, "--shard", f"{k}/{SHARDS}"], tmp_path, f"hdb{k}"))
        procs.append(hdbs[-1])
    args = ["gateway", "--port", "0", "--refresh", "0.2", "--timeout", "20"]
    args += [a for p in hdbs for a in ("--hdb", str(p.info["address"]))]
    gateway = Proc(args, tmp_path, "gateway")
    procs.append(gateway)

    # What a Spark user hits without the reader.
    with pytest.raises(Exception, match="TIMESTAMP\\(NANOS"):
        spark.read.parquet(str(data / "hdb" / "trade")).select("sym").count()

    from hdb.spark import read_table

    df = read_table(spark, data / "hdb", "trade")
    assert [(f.name, f.dataType.simpleString()) for f in df.schema.fields] == [
        ("date", "date"),
        ("time", "timestamp"),
        ("time_ns", "bigint"),
        ("sym", "string"),
        ("price", "double"),
        ("size", "bigint"),
    ]
    df.createOrReplaceTempView("trade")
    by_sym = spark.sql(
        "SELECT sym, count(*) AS n, sum(price * size) / sum(size) AS vwap, "
        "min(time_ns) AS first_ns, min(time) AS first_time "
        "FROM trade GROUP BY sym ORDER BY sym"
    ).collect()
    per_day = spark.sql("SELECT date, count(*) AS n FROM trade GROUP BY date ORDER BY date")

    with Client(str(gateway.info["url"]), timeout_s=30) as gw:
        want = gw.query(
            "SELECT sym, count(*) AS n, vwap(price, size) AS vwap, "
            "epoch_ns(min(time)) AS first_ns FROM trade GROUP BY sym ORDER BY sym"
        ).to_pylist()
        days = gw.query("SELECT date, count(*) AS n FROM trade GROUP BY date ORDER BY date")
    assert [r["sym"] for r in want] == [r.sym for r in by_sym] == sorted(SYMS)
    for got, ref in zip(by_sym, want, strict=True):
        assert got.n == ref["n"]
        assert got.vwap == pytest.approx(ref["vwap"], rel=1e-12)
        assert got.first_ns == ref["first_ns"]  # nanoseconds, exactly
        micros = dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=ref["first_ns"] // 1000)
        assert got.first_time.replace(tzinfo=None) == micros
    assert [tuple(r) for r in per_day.collect()] == [(r["date"], r["n"]) for r in days.to_pylist()]
