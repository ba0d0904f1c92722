"""Trades for the HDB tests (write-down, jobs, the HDB server), and the order a
partition must hold them in, computed independently of the writer."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from tickdb.schema import default_schemas

TRADE = default_schemas()["trade"]


def make_trades(n: int, syms: int = 20, seed: int = 1, ties: bool = False) -> pa.Table:
    rng = np.random.default_rng(seed)
    start = np.datetime64("2024-01-02T00:00:00", "ns").astype(np.int64)
    span = 1000 if ties else 86_400 * 10**9  # ties: many rows share (sym, time)
    times = start + np.sort(rng.integers(0, span, n))
    names = np.array([f"S{i:03d}" for i in range(syms)])
    return pa.table(
        {
            "time": pa.array(times.astype("datetime64[ns]")),
            "sym": pa.array(names[rng.integers(0, syms, n)]),
            "price": np.arange(n, dtype=np.float64),  # arrival order, to check stability
            "size": rng.integers(1, 1000, n),
        },
        schema=TRADE.arrow,
    )


def expected_sorted(table: pa.Table) -> pa.Table:
    """The independent expectation: a stable sort by sym, time (arrival order on ties)."""
    frame = table.select(["sym", "time"]).to_pandas()
    order = frame.sort_values(["sym", "time"], kind="stable").index.to_numpy()
    return table.take(pa.array(order))
