"""PyKX as a kdb+tick feedhandler and subscriber of the tickerplant's kdb+ port.

Run in its own process (a PyKX client and a Python socket server in one process can
deadlock): ``python pykx_tp_client.py PORT COMMAND [ARGS]``; prints one JSON object.

Commands:
  upd SHAPE MODE N   publish N rows of trade as SHAPE (row, columns, table, timed-row)
                     with MODE (sync, async); prints {"results": [...]} (sync responses).
  bad                send bad .u.upd calls; prints {"errors": [...]} (the q error texts).
  sub N SYMS         .u.sub[`trade; SYMS] (SYMS comma-separated, "" for all), then print the
                     first N pushes as {"pushes": [...]} with each table's pandas dtypes.
  bench SHAPE ROWS SECONDS
                     publish trade async in messages of ROWS rows for SECONDS, then one sync
                     call; prints {"messages": m, "rows": r, "seconds": s}.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

os.environ.setdefault("PYKX_UNLICENSED", "true")

import numpy as np
import pandas as pd
import pykx as kx


def trade_data(shape: str, rows: int, start: int = 0) -> Any:
    syms = [f"S{(start + i) % 7}" for i in range(rows)]
    prices = [100.0 + start + i for i in range(rows)]
    sizes = [start + i for i in range(rows)]
    if shape == "row":
        return [kx.SymbolAtom(syms[0]), kx.FloatAtom(prices[0]), kx.LongAtom(sizes[0])]
    if shape == "timed-row":  # tick.q style: a time of day first
        span = kx.TimespanAtom(np.timedelta64(9 * 3600 + 30 * 60, "s").astype("m8[ns]"))
        return [span, kx.SymbolAtom(syms[0]), kx.FloatAtom(prices[0]), kx.LongAtom(sizes[0])]
    if shape == "columns":
        return [
            kx.SymbolVector(syms),
            kx.FloatVector(np.array(prices)),
            kx.LongVector(np.array(sizes, dtype=np.int64)),
        ]
    if shape == "table":
        frame = pd.DataFrame({"sym": syms, "price": prices, "size": sizes})
        return kx.toq(frame)
    raise SystemExit(f"unknown shape {shape}")


def describe(data: Any) -> dict[str, Any]:
    """A pykx.Table's type, pandas dtypes and rows (times as ISO text), for the test."""
    frame = data.pd()
    rows = frame.astype({c: str for c in frame.columns if frame[c].dtype.kind in "Mm"})
    return {
        "type": type(data).__name__,
        "dtypes": {c: str(frame[c].dtype) for c in frame.columns},
        "pytypes": {c: type(frame[c].iloc[0]).__name__ for c in frame.columns},
        "rows": rows.to_dict("records"),
    }


def main(argv: list[str]) -> dict[str, Any]:
    port, command, *args = argv
    conn = kx.SyncQConnection("127.0.0.1", int(port))
    try:
        if command == "upd":
            shape, mode, count = args[0], args[1], int(args[2])
            results = []
            rows = 1 if shape in ("row", "timed-row") else 3
            for i in range(count):
                data = trade_data(shape, rows, start=i * rows)
                if mode == "sync":
                    results.append(str(conn(".u.upd", "trade", data).py()))
                else:
                    conn(".u.upd", "trade", data, wait=False)
            if mode == "async":
                results.append(int(conn(".u.i").py()))  # a sync call after: all were read
            return {"results": results}
        if command == "bad":
            calls = [
                ("nosuch", trade_data("row", 1)),  # unknown table
                ("trade", [kx.SymbolAtom("A"), kx.LongAtom(1), kx.LongAtom(2)]),  # price long
                ("trade", [kx.SymbolAtom("A")]),  # wrong arity
                (
                    "trade",
                    [kx.SymbolVector(["A", "B"]), kx.FloatVector([1.0]), kx.LongVector([1, 2])],
                ),  # ragged columns
            ]
            errors = []
            for table, data in calls:
                try:
                    conn(".u.upd", table, data)
                    errors.append(None)
                except kx.QError as exc:
                    errors.append(str(exc))
            try:
                conn(".u.upd", "trade")
                errors.append(None)
            except kx.QError as exc:
                errors.append(str(exc))
            conn(
                ".u.upd", "trade", [kx.SymbolAtom("A"), kx.LongAtom(1), kx.LongAtom(2)], wait=False
            )  # async: refused, logged, no answer
            errors.append(str(conn(".u.upd", "trade", trade_data("row", 1)).py()))  # still fine
            return {"errors": errors}
        if command == "sub":
            count, syms = int(args[0]), args[1]
            selection: Any = kx.SymbolVector(syms.split(",")) if syms else ""
            answer = conn(".u.sub", "trade", selection)
            print(json.dumps({"subscribed": answer.py()[0]}), flush=True)
            pushes = []
            for _ in range(count):
                # An async push: (`upd; `trade; table). PyKX's public API has no receive
                # on a SyncQConnection, so this uses the private one its own code uses.
                message = conn._recv(acceptAsync=True)
                func, table, data = list(message)  # iterating works unlicensed; indexing not
                pushes.append({"func": func.py(), "table": table.py(), "data": describe(data)})
            return {"pushes": pushes}
        if command == "bench":
            shape, rows, seconds = args[0], int(args[1]), float(args[2])
            data = trade_data(shape, rows)
            sent = 0
            start = time.perf_counter()
            while time.perf_counter() - start < seconds:
                for _ in range(100):
                    conn(".u.upd", "trade", data, wait=False)
                sent += 100
            conn(".u.i")  # sync: returns once every async message before it is read
            elapsed = time.perf_counter() - start
            return {"messages": sent, "rows": sent * rows, "seconds": elapsed}
        raise SystemExit(f"unknown command {command}")
    finally:
        conn.close()


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:])))
