"""kdb+ IPC benchmark: what q clients get from tickdb's kdb+ ports.

    python scripts/bench_kdb_ipc.py [--seconds 2] [--repeat 5]

Sections (each starts its own processes on ephemeral ports and prints medians):

* ``ingest`` — ``.u.upd`` into the tickerplant's kdb+ port from PyKX (``SyncQConnection``,
  unlicensed, its own process, async messages as tick feeds send them, then one sync call
  that returns once everything before it is journaled), in 1-row and 1000-row messages.
  Baseline in the same run: the same rows, already Arrow IPC encoded, through the ZeroMQ
  ``Publisher.publish_ipc`` to the same tickerplant, flushed to the journal.
* ``gateway`` — the gateway's kdb+ port round trip. To be added by whoever wires that port:
  write ``bench_gateway(args) -> list[str]`` and add it to ``SECTIONS``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def tickerplant(workdir: Path) -> Iterator[dict[str, Any]]:
    """A tickerplant process (kdb+ port on) with its journal under ``workdir``."""
    from tickdb.launch import launch

    config = workdir / "tp.toml"
    config.write_text(
        "[tickerplant]\n"
        'address = "tcp://127.0.0.1:0"\npublish_address = "tcp://127.0.0.1:0"\n'
        f'replay_address = "tcp://127.0.0.1:0"\nkdb_port = {_free_port()}\n'
    )
    args = ["tp", "--config", str(config), "--data-dir", str(workdir / "data")]
    log, ready = workdir / "tp.log", workdir / "tp.ready.json"
    tp = launch(args, name="tp", log_path=log, ready_file=ready, ready_timeout_s=30, cwd=ROOT)
    try:
        yield tp.info
    finally:
        tp.stop(grace_s=30)


def pykx_feed(port: int, rows: int, seconds: float) -> dict[str, float]:
    """Runs in its own process: PyKX and a Python socket server in one process can deadlock."""
    os.environ.setdefault("PYKX_UNLICENSED", "true")
    import numpy as np
    import pykx as kx

    syms = [f"S{i % 100}" for i in range(rows)]
    if rows == 1:  # one row of atoms, time left to the tickerplant: a typical tick feed
        data: Any = [kx.SymbolAtom("S1"), kx.FloatAtom(101.5), kx.LongAtom(200)]
    else:  # a list of columns
        data = [
            kx.SymbolVector(syms),
            kx.FloatVector(np.linspace(100, 101, rows)),
            kx.LongVector(np.arange(rows, dtype=np.int64)),
        ]
    with kx.SyncQConnection("127.0.0.1", port) as conn:
        sent, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            for _ in range(50):
                conn(".u.upd", "trade", data, wait=False)
            sent += 50
        conn("")  # sync: answered once every .u.upd before it is journaled
        elapsed = time.perf_counter() - start
    return {"messages": sent, "seconds": elapsed}


def zmq_feed(address: str, rows: int, seconds: float) -> dict[str, float]:
    import numpy as np
    import pyarrow as pa

    from tickerplant.ingest import encode_stream
    from tickerplant.publisher import Publisher

    with Publisher(address) as pub:
        schema = pub.schemas["trade"].arrow_without_time
        table = pa.Table.from_pydict(
            {
                "sym": [f"S{i % 100}" for i in range(rows)],
                "price": np.linspace(100, 101, rows),
                "size": np.arange(rows, dtype=np.int64),
            },
            schema=schema,
        )
        payload = encode_stream(table, schema)
        sent, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            for _ in range(50):
                pub.publish_ipc("trade", payload)
            sent += 50
        pub.flush()
        elapsed = time.perf_counter() - start
    return {"messages": sent, "seconds": elapsed}


def _run_pykx_feed(port: int, rows: int, seconds: float) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--pykx-feed", str(port), str(rows), str(seconds)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYKX_UNLICENSED": "true"},
    )
    return dict(json.loads(out.stdout.splitlines()[-1]))


def _median_rate(runs: list[dict[str, float]], rows: int) -> tuple[float, float]:
    msgs = statistics.median(r["messages"] / r["seconds"] for r in runs)
    return msgs, msgs * rows


def bench_ingest(args: argparse.Namespace) -> list[str]:
    lines = [
        "| message | PyKX `.u.upd` msgs/s | rows/s | ZeroMQ `publish_ipc` msgs/s | rows/s "
        "| ratio |",
        "|---|---|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory() as tmp, tickerplant(Path(tmp)) as info:
        for rows in (1, 1000):
            kdb: list[dict[str, float]] = []
            raw: list[dict[str, float]] = []
            for _ in range(args.repeat):  # interleaved, so drift in load hits both alike
                kdb.append(_run_pykx_feed(info["kdb_port"], rows, args.seconds))
                raw.append(zmq_feed(info["address"], rows, args.seconds))
            kdb_msgs, kdb_rows = _median_rate(kdb, rows)
            raw_msgs, raw_rows = _median_rate(raw, rows)
            lines.append(
                f"| {rows} row{'s' if rows > 1 else ''} | {kdb_msgs:,.0f} | {kdb_rows:,.0f} | "
                f"{raw_msgs:,.0f} | {raw_rows:,.0f} | {kdb_msgs / raw_msgs:.2f} |"
            )
            print(lines[-1], flush=True)
    return lines


# -- gateway: a 1M-row result to PyKX over the kdb+ port vs over HTTP as Arrow ----------
GATEWAY_ROWS = 1_000_000
GATEWAY_DAY = "2024-03-08"
GATEWAY_SQL = "SELECT time, sym, price, size FROM trade"
GATEWAY_Q = "select time, sym, price, size from trade where date=2024.03.08"


@contextmanager
def gateway_stack(workdir: Path) -> Iterator[dict[str, Any]]:
    """An HDB process holding one 1M-row trade partition and a gateway process over it."""
    import datetime as dt

    import numpy as np
    import pyarrow as pa

    from hdb.writer import write_partition
    from tickdb.launch import Launched, launch
    from tickdb.schema import default_schemas

    n = GATEWAY_ROWS
    first = np.datetime64(f"{GATEWAY_DAY}T09:30:00", "ns")
    table = pa.table(
        {
            "time": pa.array(first + np.arange(n) * np.int64(20_000_000), pa.timestamp("ns")),
            "sym": pa.array([f"S{i % 100}" for i in range(n)]),
            "price": np.linspace(100.0, 101.0, n),
            "size": np.arange(n, dtype=np.int64) % 1000,
        }
    )
    write_partition(
        workdir / "data" / "hdb",
        default_schemas()["trade"],
        dt.date.fromisoformat(GATEWAY_DAY),
        table,
    )
    config = workdir / "stack.toml"
    config.write_text(
        f'[hdb]\naddress = "tcp://127.0.0.1:0"\n[gateway]\nkdb_port = {_free_port()}\n'
    )
    procs: list[Launched] = []

    def start(name: str, *args: str) -> dict[str, Any]:
        log, ready = workdir / f"{name}.log", workdir / f"{name}.ready.json"
        procs.append(launch(args, name=name, log_path=log, ready_file=ready, cwd=ROOT))
        return procs[-1].info

    try:
        common = ("--config", str(config))
        hdb = start("hdb", "hdb", *common, "--data-dir", str(workdir / "data"))
        yield start(
            "gateway",
            *("gateway", *common, "--hdb", str(hdb["address"]), "--port", "0"),
            *("--max-rows", str(2 * GATEWAY_ROWS), "--timeout", "120"),
        )
    finally:
        for proc in reversed(procs):
            proc.stop(grace_s=30)


def pykx_fetch(port: int, mode: str) -> dict[str, float]:
    """Runs in its own process: one timed round trip of the 1M-row result into PyKX."""
    os.environ.setdefault("PYKX_UNLICENSED", "true")
    import pykx as kx

    with kx.SyncQConnection("127.0.0.1", port) as conn:
        conn("")  # connected and answered: the timing below is the query alone
        query: tuple[Any, ...] = (
            (GATEWAY_Q,) if mode == "q" else (".tickdb.sql", kx.CharVector(GATEWAY_SQL))
        )
        start = time.perf_counter()
        result = conn(*query)
        elapsed = time.perf_counter() - start
        rows = len(result.pd())  # outside the timing: checks the whole result arrived
    return {"seconds": elapsed, "rows": rows}


def _run_pykx_fetch(port: int, mode: str) -> dict[str, float]:
    code = (
        f"import sys, json; sys.path.insert(0, {str(ROOT / 'scripts')!r}); "
        f"import bench_kdb_ipc as b; print(json.dumps(b.pykx_fetch({port}, {mode!r})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={**os.environ, "PYKX_UNLICENSED": "true"},
    )
    return dict(json.loads(out.stdout.splitlines()[-1]))


def bench_gateway(args: argparse.Namespace) -> list[str]:
    from gateway.client import Client

    runs: dict[str, list[float]] = {"pykx_sql": [], "pykx_q": [], "http": []}
    with (
        tempfile.TemporaryDirectory() as tmp,
        gateway_stack(Path(tmp)) as info,
        Client(info["url"]) as client,
    ):
        client.query(GATEWAY_SQL)  # warm: the HDB's first scan, the gateway's catalog
        for _ in range(args.repeat):  # interleaved, so drift in load hits all alike
            for mode in ("sql", "q"):
                got = _run_pykx_fetch(info["kdb_port"], mode)
                assert got["rows"] == GATEWAY_ROWS, got
                runs[f"pykx_{mode}"].append(got["seconds"])
            start = time.perf_counter()
            table = client.query(GATEWAY_SQL)
            runs["http"].append(time.perf_counter() - start)
            assert table.num_rows == GATEWAY_ROWS
    http = statistics.median(runs["http"])
    lines = [
        "| 1M-row trade result (time, sym, price, size) | median ms | rows/s | vs HTTP Arrow |",
        "|---|---|---|---|",
    ]
    for label, key in (
        ('PyKX `` (`.tickdb.sql; "SELECT …") `` → `pykx.Table`', "pykx_sql"),
        ("PyKX q text `select … where date=…` → `pykx.Table`", "pykx_q"),
        ("HTTP `Client.query` (Arrow IPC stream) → `pa.Table`", "http"),
    ):
        median = statistics.median(runs[key])
        lines.append(
            f"| {label} | {median * 1000:,.0f} | {GATEWAY_ROWS / median:,.0f} "
            f"| {median / http:.2f}x |"
        )
        print(lines[-1], flush=True)
    return lines


SECTIONS: dict[str, Callable[[argparse.Namespace], list[str]]] = {
    "ingest": bench_ingest,
    "gateway": bench_gateway,
}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--pykx-feed":
        port, rows, seconds = int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
        print(json.dumps(pykx_feed(port, rows, seconds)))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="Length of one run.")
    parser.add_argument("--repeat", type=int, default=5, help="Runs per figure (median).")
    parser.add_argument("--only", choices=sorted(SECTIONS), help="One section.")
    args = parser.parse_args()
    for name, section in SECTIONS.items():
        if args.only in (None, name):
            print(f"\n## {name} (median of {args.repeat} x {args.seconds}s)\n")
            print("\n".join(section(args)))


if __name__ == "__main__":
    from stop_on_term import stop_on_term

    stop_on_term()
    main()
