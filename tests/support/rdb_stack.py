"""Shared set-up for the RDB tests: a real tickerplant, RDB and HDB on ephemeral ports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa

from queries.service import QueryClient
from support.harness import EPHEMERAL_TP, Proc, start_tp, wait_until, write_config
from tickdb.ready import wait_ready
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
        if _has_command("hdb"):
            args = ["hdb", "--config", str(self.config), "--data-dir", str(self.data)]
            proc = Proc(args, self.tmp, name)
        else:
            proc = _HdbProc([str(self.config), str(self.data)], self.tmp, name)
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


def _has_command(name: str) -> bool:
    from tickdb.cli import app

    return any(c.name == name for c in app.registered_commands)


class _HdbProc(Proc):
    """The HDB process, started directly while ``tickdb hdb`` is not registered yet."""

    def __init__(self, args: list[str], workdir: Path, name: str) -> None:
        self.name = name
        self.ready_file = workdir / f"{name}.ready.json"
        self.ready_file.unlink(missing_ok=True)
        self.log_path = workdir / f"{name}.log"
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        code = (
            "import sys; from tickdb.config import load_config; from hdb.server import Hdb; "
            "from tickdb.logs import setup_logging; setup_logging(); "
            "Hdb(load_config(sys.argv[1], sys.argv[2]), shard=None).serve(sys.argv[3])"
        )
        self.popen = subprocess.Popen(
            [sys.executable, "-c", code, *args, str(self.ready_file)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            process_group=0,
        )
        self.info = wait_ready(self.ready_file, 30, alive=lambda: self.popen.poll() is None)


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
