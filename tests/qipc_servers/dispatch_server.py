"""A kdb+ IPC test server: a fixed dispatch table instead of a q interpreter.

Run as ``python dispatch_server.py --ready-file PATH [--user U --password P]``; it writes
``{"port": …}`` to the ready file once listening and stops cleanly on SIGTERM. Tests connect
with PyKX from their own process (a PyKX client and a Python server in one process can
deadlock) and with :class:`qipc.client.QClient`.

q text (a char vector) picks a canned answer; a call ``(name; args…)`` runs a function.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
import uuid
from typing import Any

import numpy as np

from qipc import KeyedTable, QConnection, QError, QIpcServer, QTable, ServerLimits, Symbol
from tickdb.ready import write_ready


def sample_table(n: int = 3) -> QTable:
    """One column of every q type a tick system uses, with a null in each nullable one."""
    base = np.datetime64("2024-03-01T09:30:00", "ns")
    rng = np.random.default_rng(7)
    cols: dict[str, Any] = {
        "time": base + np.arange(n).astype("m8[ms]"),
        "sym": np.array([("AAPL", "MSFT", "")[i % 3] for i in range(n)], dtype=object),
        "price": np.round(rng.random(n) * 100, 2),
        "size": np.arange(n, dtype=np.int64),
        "qty": np.arange(n, dtype=np.int32),
        "lots": np.arange(n, dtype=np.int16),
        "flag": np.arange(n) % 2 == 0,
        "code": np.arange(n, dtype=np.uint8),
        "ratio": np.arange(n, dtype=np.float32),
        "date": np.datetime64("2024-03-01") + np.arange(n).astype("m8[D]"),
        "month": np.datetime64("2024-03") + np.arange(n).astype("m8[M]"),
        "span": np.arange(n).astype("m8[ns]"),
        "minute": np.arange(n).astype("m8[m]"),
        "second": np.arange(n).astype("m8[s]"),
        "tm": np.arange(n).astype("m8[ms]"),
        "id": np.array([uuid.UUID(int=i + 1).bytes for i in range(n)], dtype="V16"),
        "note": [f"note {i}" for i in range(n)],
    }
    if n:
        cols["size"][0] = np.iinfo(np.int64).min  # 0N
        cols["price"][0] = np.nan  # 0n
        cols["time"][-1] = np.datetime64("NaT")  # 0Np
    return QTable(cols)


class Dispatcher:
    def __init__(self, server_ref: list[QIpcServer]) -> None:
        self.server_ref = server_ref
        self.upds: list[Any] = []
        self.lock = threading.Lock()

    def __call__(self, value: Any, msg_type: int, conn: QConnection) -> Any:
        if isinstance(value, str) and not isinstance(value, Symbol):
            return self.text(value)
        if isinstance(value, list) and value:
            name, *args = value
            method = getattr(self, "call_" + str(name).replace(".", "_"), None)
            if method is None:
                raise QError(str(name))  # q's error for an undefined name is the name
            return method(conn, *args)
        raise QError("type")

    def text(self, query: str) -> Any:
        if query == "ping":
            return Symbol("pong")
        if query == "trade":
            return sample_table(3)
        if query == "keyed":
            t = sample_table(3)
            keys = QTable({"sym": t.columns.pop("sym")})
            return KeyedTable(keys, QTable({"price": t.columns["price"]}))
        if query == "boom":
            raise QError("boom")
        if query == "crash":
            raise RuntimeError("handler bug")
        if query == "unsendable":
            return object()
        method = getattr(self, "call_" + query.replace(".", "_"), None)
        if method is None:
            raise QError(query)
        return method(None)

    def call_echo(self, conn: QConnection, value: Any) -> Any:
        return value

    def call_length(self, conn: QConnection, value: Any) -> Any:
        return np.int64(len(value))

    def call_rows(self, conn: QConnection, n: Any) -> Any:
        return sample_table(int(n))

    def call_sleep(self, conn: QConnection, seconds: Any) -> Any:
        time.sleep(float(seconds))
        return Symbol("slept")

    def call__u_upd(self, conn: QConnection, table: Any, data: Any) -> None:
        with self.lock:
            self.upds.append((str(table), data))

    def call_count(self, conn: QConnection | None) -> Any:
        with self.lock:
            return np.int64(len(self.upds))

    def call_last(self, conn: QConnection | None) -> Any:
        with self.lock:
            return list(self.upds[-1]) if self.upds else None

    def call__u_sub(self, conn: QConnection, table: Any, syms: Any) -> Any:
        conn.state["sub"] = str(table)
        conn.keep_open = True
        return [Symbol(str(table)), sample_table(0)]

    def call_publish(self, conn: QConnection, n: Any) -> Any:
        """Push ``upd[table; data]`` asynchronously to every subscriber."""
        pushed = 0
        for other in self.server_ref[0].connections():
            if "sub" in other.state:
                other.send_async([Symbol("upd"), Symbol(other.state["sub"]), sample_table(int(n))])
                pushed += 1
        return np.int64(pushed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ready-file", required=True)
    parser.add_argument("--user", default="")
    parser.add_argument("--password", default="")
    parser.add_argument("--max-message-bytes", type=int, default=1 << 30)
    parser.add_argument("--max-connections", type=int, default=256)
    parser.add_argument("--idle-timeout", type=float, default=300.0)
    parser.add_argument("--login-backoff", type=float, default=0.1)
    parser.add_argument("--login-backoff-max", type=float, default=5.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)

    def authenticate(user: str, password: str) -> bool:
        return not args.user or (user, password) == (args.user, args.password)

    server_ref: list[QIpcServer] = []
    server = QIpcServer(
        Dispatcher(server_ref),
        authenticate=authenticate,
        limits=ServerLimits(
            max_message_bytes=args.max_message_bytes,
            max_connections=args.max_connections,
            idle_timeout_s=args.idle_timeout,
            login_backoff_s=args.login_backoff,
            login_backoff_max_s=args.login_backoff_max,
        ),
        name="dispatch",
    )
    server_ref.append(server)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with server:
        write_ready(args.ready_file, {"port": server.port})
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
