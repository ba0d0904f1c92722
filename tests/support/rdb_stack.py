"""Shared set-up for the RDB tests: a real tickerplant, RDB and HDB on ephemeral ports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from queries.service import QueryClient
from support.harness import EPHEMERAL_TP, Proc, start_tp, wait_until, write_config
from tickerplant.publisher import Publisher

SYMS = ("AAPL", "MSFT", "IBM", "GOOG", "AMZN")


def trades(start: int, count: int) -> pa.Table:
    return pa.table(
        {
            "sym": [SYMS[i % len(SYMS)] for i in range(start, start + count)],
            "price": [100.0 + i % 7 for i in range(start, start + count)],
            "size": list(range(start, start + count)),
        }
    )


def quotes(start: int, count: int) -> pa.Table:
    return pa.table(
        {
            "sym": [SYMS[i % len(SYMS)] for i in range(start, start + count)],
            "bid": [99.0] * count,
            "ask": [101.0] * count,
            "bsize": list(range(start, start + count)),
            "asize": [1] * count,
        }
    )


def publish_trades(address: str, start: int, count: int, per_batch: int = 100) -> None:
    with Publisher(address) as pub:
        for i in range(start, start + count, per_batch):
            pub.publish("trade", trades(i, min(per_batch, start + count - i)))
        pub.flush()


class Stack:
    """One tickerplant and the RDBs/HDBs a test starts, sharing ``<tmp>/data``."""

    def __init__(self, tmp: Path, procs: list[Proc], **rdb_settings: Any) -> None:
        self.tmp = tmp
        self.procs = procs
        self.data = tmp / "data"
        self.tp = start_tp(tmp)
        procs.append(self.tp)
        self.address = str(self.tp.info["address"])
        self.config = write_config(
            tmp / "stack.toml",
            {
                "tickerplant": dict(EPHEMERAL_TP),
                "rdb": {"address": "tcp://127.0.0.1:0", **rdb_settings},
                "hdb": {"address": "tcp://127.0.0.1:0"},
            },
        )

    def start_rdb(self, name: str = "rdb", *extra: str) -> Proc:
        args = ["rdb", "--config", str(self.config), "--data-dir", str(self.data)]
        proc = Proc([*args, "--tp", self.address, *extra], self.tmp, name)
        self.procs.append(proc)
        return proc

    def start_hdb(self, name: str = "hdb") -> Proc:
        args = ["hdb", "--config", str(self.config), "--data-dir", str(self.data), "--shard", "all"]
        proc = Proc(args, self.tmp, name)
        self.procs.append(proc)
        return proc


def client(proc: Proc) -> QueryClient:
    return QueryClient(str(proc.info["address"]), timeout_s=10.0)


def scalar(c: QueryClient, sql: str) -> Any:
    return c.query(sql).table.column(0)[0].as_py()


def wait_rows(c: QueryClient, table: str, rows: int, timeout: float = 20.0) -> None:
    wait_until(
        lambda: scalar(c, f"SELECT count(*) FROM {table}") >= rows, timeout, f"{rows} {table}"
    )


def roll(address: str) -> None:
    """Force end of day on the tickerplant (what ``tickdb tp roll`` sends)."""
    import zmq

    from tickerplant.discovery import request
    from tickerplant.protocol import ROLL

    ctx = zmq.Context()
    try:
        request(ctx, address, [ROLL], 10.0)
    finally:
        ctx.term()
