"""Micro-benchmark: the q IPC codec against PyKX's serialiser on a 1M-row trade table.

    python scripts/bench_qipc_codec.py [--rows 1000000] [--repeat 7]

Prints the median of ``--repeat`` runs for each step (the machine is shared and noisy) and
the ratio to PyKX's ``serialize``/``deserialize`` (kdb+'s own C code) on the same bytes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa

from qipc import codec
from qipc.arrow import q_to_table, table_to_q
from tickdb.schema import default_schemas


def trade_table(rows: int) -> pa.Table:
    rng = np.random.default_rng(0)
    start = np.datetime64("2024-03-01T09:30:00", "ns").astype(np.int64)
    return pa.Table.from_pydict(
        {
            "time": pa.array(start + np.arange(rows) * 1000).cast(pa.timestamp("ns")),
            "sym": rng.choice(["AAPL", "MSFT", "IBM", "GOOG", "AMZN"], rows),
            "price": np.round(rng.random(rows) * 100, 2),
            "size": rng.integers(1, 1000, rows),
        },
        schema=default_schemas()["trade"].arrow,
    )


def median_seconds(fn: Callable[[], Any], repeat: int) -> float:
    fn()  # warm up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    os.environ.setdefault("PYKX_UNLICENSED", "true")
    import pykx as kx  # imported here: it costs a second and is only the reference

    arrow = trade_table(args.rows)
    qtable = table_to_q(arrow)
    message = codec.encode(qtable)
    ktable = kx.deserialize(message)
    assert kx.serialize(ktable).copy() == message  # same bytes as kdb+ writes

    results = {
        "ours encode (q table -> bytes)": median_seconds(lambda: codec.encode(qtable), args.repeat),
        "ours decode (bytes -> q table)": median_seconds(
            lambda: codec.decode(message), args.repeat
        ),
        "ours Arrow -> bytes": median_seconds(lambda: codec.encode(table_to_q(arrow)), args.repeat),
        "ours bytes -> Arrow": median_seconds(
            lambda: q_to_table(codec.decode(message)[1]), args.repeat
        ),
        "pykx.serialize": median_seconds(lambda: kx.serialize(ktable).copy(), args.repeat),
        "pykx.deserialize": median_seconds(lambda: kx.deserialize(message), args.repeat),
    }
    print(
        f"{args.rows:,} rows (time, sym, price, size), {len(message) / 1e6:.1f} MB message, "
        f"median of {args.repeat}"
    )
    for name, secs in results.items():
        print(f"  {name:34s} {secs * 1000:9.1f} ms")
    enc, dec = results["pykx.serialize"], results["pykx.deserialize"]
    print(f"  encode ratio ours/pykx: {results['ours encode (q table -> bytes)'] / enc:6.1f}x")
    print(f"  decode ratio ours/pykx: {results['ours decode (bytes -> q table)'] / dec:6.1f}x")


if __name__ == "__main__":
    from stop_on_term import stop_on_term

    stop_on_term()
    main()
