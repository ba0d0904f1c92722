"""Ingest lag, the RDB's own measure of how far behind the tickerplant its applied rows are."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from typing import Any

import pyarrow as pa
import pyarrow.ipc as ipc
import pytest

from rdb.ingest import Ingest, IngestLag
from rdb.store import Store
from tickdb.schema import default_schemas
from tickerplant.protocol import KIND_UPD, Record
from tickerplant.subscriber import Update

MS = 1_000_000
SCHEMAS = {"trade": default_schemas()["trade"]}


class Clock:
    def __init__(self, now_ns: int) -> None:
        self.now_ns = now_ns

    def __call__(self) -> int:
        return self.now_ns


def test_lag_is_now_minus_the_last_applied_ts_recv() -> None:
    clock = Clock(1_000 * MS)
    lag = IngestLag(clock_ns=clock)
    assert lag.current_ms() is None and lag.p99_ms() is None
    lag.applied([990 * MS, 995 * MS])
    assert lag.current_ms() == 5.0
    clock.now_ns += 20 * MS  # nothing applied since: a stall shows up as it happens
    assert lag.current_ms() == 25.0


def test_p99_covers_only_the_recent_window() -> None:
    clock = Clock(10_000 * MS)
    lag = IngestLag(window_s=5.0, clock_ns=clock)
    lag.applied([clock.now_ns - 400 * MS])  # one slow record
    clock.now_ns += 1_000 * MS
    lag.applied([clock.now_ns - 2 * MS] * 49)
    assert lag.p99_ms() == 400.0  # 1 in 50 is more than 1%
    lag.applied([clock.now_ns - 2 * MS] * 50)
    assert lag.p99_ms() == 2.0  # 1 in 100 is not
    lag.applied([clock.now_ns - 400 * MS])
    assert lag.p99_ms() == 400.0
    clock.now_ns += 4_500 * MS  # the first slow record is older than the window now
    assert lag.p99_ms() == 2.0
    clock.now_ns += 1_000 * MS
    assert lag.p99_ms() is None


def payload(rows: int) -> bytes:
    table = pa.table(
        {
            "time": pa.array([0] * rows, pa.timestamp("ns")),
            "sym": ["IBM"] * rows,
            "price": [1.0] * rows,
            "size": pa.array([1] * rows, pa.int64()),
        },
        schema=SCHEMAS["trade"].arrow,
    )
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


@pytest.mark.parametrize("records", [1, 5])
def test_apply_records_the_lag_of_every_applied_record(records: int) -> None:
    store = Store(SCHEMAS, dt.date(2024, 1, 2))
    subscriber: Any = SimpleNamespace(last_seq=0)
    ingest = Ingest(store, subscriber, on_roll=lambda day, date: None)
    clock = Clock(5_000 * MS)
    ingest.lag = IngestLag(clock_ns=clock)
    group = [
        Update(Record(KIND_UPD, seq, clock.now_ns - (10 + seq) * MS, "trade", (), payload(3)))
        for seq in range(1, records + 1)
    ]
    ingest.apply(group)  # type: ignore[arg-type]
    assert store.snapshot().dates[store.live.date]["trade"].rows == 3 * records
    assert ingest.lag.current_ms() == 10 + records
    assert ingest.lag.p99_ms() == 10 + records
