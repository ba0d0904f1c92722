"""Generated trades and quotes over today and past days, the in-process router over them
split across shards, and the comparison of a distributed answer with one DuckDB's.

Shared by the gateway tests: the property test, the planner, the Arrow merge, the
handover, the macros, and the HTTP and q stacks (whose backends serve this data).
"""

from __future__ import annotations

import datetime as dt
import math
import random
from decimal import Decimal
from typing import Any

import duckdb
import pyarrow as pa

from gateway.backends import BackendState, Topology
from gateway.local import local_topology
from gateway.router import Router

TODAY = dt.date(2024, 3, 8)
DAYS = [TODAY - dt.timedelta(days=d) for d in range(4)]
SYMS = ["AAPL", "MSFT", "IBM", "GOOG", "TSLA", "AMZN", "NVDA"]


def make_data(seed: int, rows: int, nsyms: int, null_rate: float) -> dict[str, pa.Table]:
    rng = random.Random(seed)
    syms = SYMS[:nsyms]

    def table(kind: str, n: int) -> pa.Table:
        times, dates, symc, a, b = [], [], [], [], []
        for i in range(n):
            day = rng.choice(DAYS)
            # Unique timestamps: first/last and ORDER BY time are deterministic.
            times.append(
                dt.datetime.combine(day, dt.time(9, 30))
                + dt.timedelta(milliseconds=i * 997 + rng.randrange(997))
            )
            dates.append(day)
            symc.append(rng.choice(syms))
            price = round(rng.uniform(10, 20), 2)
            a.append(None if rng.random() < null_rate else price)
            b.append(rng.randrange(1, 100))
        cols: dict[str, Any] = {
            "time": pa.array(times, pa.timestamp("ns")),
            "sym": pa.array(symc, pa.string()),
        }
        if kind == "trade":
            cols |= {"price": pa.array(a, pa.float64()), "size": pa.array(b, pa.int64())}
        else:
            cols |= {
                "bid": pa.array(a, pa.float64()),
                "ask": pa.array([None if x is None else x + 0.02 for x in a], pa.float64()),
                "bsize": pa.array(b, pa.int64()),
                "asize": pa.array(b, pa.int64()),
            }
        cols["date"] = pa.array(dates, pa.date32())
        return pa.table(cols)

    return {"trade": table("trade", rows), "quote": table("quote", rows // 2 + 1)}


# -- comparison ---------------------------------------------------------------------------


def _norm(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def _same(a: Any, b: Any) -> bool:
    a, b = _norm(a), _norm(b)
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9) or (math.isnan(a) and math.isnan(b))
    return bool(a == b)


def assert_same_answer(got: pa.Table, want: pa.Table, ordered: bool, sql: str) -> None:
    assert got.column_names == want.column_names, sql
    assert [str(t) for t in got.schema.types] == [str(t) for t in want.schema.types], sql
    rows_got = [tuple(r.values()) for r in got.to_pylist()]
    rows_want = [tuple(r.values()) for r in want.to_pylist()]
    if not ordered:
        rows_got.sort(key=repr)
        rows_want.sort(key=repr)
    assert len(rows_got) == len(rows_want), sql
    for g, w in zip(rows_got, rows_want, strict=True):
        assert all(_same(x, y) for x, y in zip(g, w, strict=True)), f"{sql}\n{g}\n{w}"


def build(
    tables: dict[str, pa.Table], shards: int, query_dates: bool = False
) -> tuple[Router, duckdb.DuckDBPyConnection]:
    backends = local_topology(tables, shards=shards, today=TODAY, query_dates=query_dates)
    topology = Topology([BackendState(name, b.role, b) for name, b in backends.items()])
    topology.refresh()
    reference = duckdb.connect()
    for name, table in tables.items():
        reference.register(name, table)
    return Router(topology), reference
