"""The tickerplant's kdb+ port, end to end: a real tickerplant process, PyKX in its own
process as a q feedhandler and q subscriber, our QClient, and ZeroMQ subscribers checking
what reached the journal and the live feed."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import argon2
import numpy as np
import pandas as pd
import pytest
import zmq
from support.harness import Proc, free_port, start_tp, wait_until

from qipc import QClient, QError, QTable, Symbol
from tickdb.auth import hash_token
from tickerplant.discovery import request
from tickerplant.protocol import ROLL
from tickerplant.subscriber import EndOfDay, Subscriber, Update

CLIENT = Path(__file__).parent / "qipc_clients" / "pykx_tp_client.py"
needs_pykx = pytest.mark.skipif(importlib.util.find_spec("pykx") is None, reason="needs PyKX")


@pytest.fixture
def tp(tmp_path: Path, procs: list[Proc]) -> Iterator[Proc]:
    proc = start_tp(tmp_path, tickerplant={"kdb_port": free_port()})
    procs.append(proc)
    yield proc
    assert proc.alive(), f"tickerplant died:\n{proc.log()}"


def pykx(tp: Proc, *args: str) -> dict[str, Any]:
    """Run the PyKX client (in its own process: see the module docstring there)."""
    done = subprocess.run(
        [sys.executable, str(CLIENT), str(tp.info["kdb_port"]), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYKX_UNLICENSED": "true", "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout.splitlines()[-1]))


def q(tp: Proc) -> QClient:
    return QClient("127.0.0.1", tp.info["kdb_port"], timeout=10)


def journal_rows(tp: Proc) -> list[tuple[int, dict[str, Any]]]:
    """Every trade row on the journal, with its seq, read back by replay."""
    rows = []
    with Subscriber(tp.info["address"], tables=["trade"], start="journal") as sub:
        while (message := sub.poll(0.5)) is not None:
            if isinstance(message, Update):
                rows.extend((message.seq, row) for row in message.data.to_pylist())
    return rows


def drain(sub: Subscriber, rows: int) -> list[dict[str, Any]]:
    received: list[dict[str, Any]] = []
    while len(received) < rows:
        message = sub.poll(10)
        assert message is not None, f"got {len(received)} of {rows} rows"
        if isinstance(message, Update):
            received.extend(message.data.to_pylist())
    assert sub.poll(0.2) is None, "more rows than were published"
    return received


@needs_pykx
@pytest.mark.parametrize(
    ("shape", "mode", "count", "rows_each"),
    [
        ("row", "sync", 5, 1),
        ("row", "async", 5, 1),
        ("columns", "sync", 3, 3),
        ("columns", "async", 3, 3),
        ("table", "sync", 3, 3),
        ("table", "async", 3, 3),
    ],
)
def test_pykx_upd_reaches_subscribers_and_the_journal_exactly_once(
    tp: Proc, shape: str, mode: str, count: int, rows_each: int
) -> None:
    live = Subscriber(tp.info["address"], tables=["trade"])
    try:
        answer = pykx(tp, "upd", shape, mode, str(count))
        total = count * rows_each
        if mode == "sync":
            assert answer["results"] == ["None"] * count  # the generic null, as tick.q
        received = drain(live, total)
    finally:
        live.close()
    expected = [(f"S{i % 7}", 100.0 + i, i) for i in range(total)]
    assert [(r["sym"], r["price"], r["size"]) for r in received] == expected
    journaled = journal_rows(tp)
    assert [row for _, row in journaled] == received
    # Stamped by the tickerplant: left-out time is now-ish, never null.
    assert all(abs(r["time"] - dt.datetime.now()) < dt.timedelta(minutes=5) for r in received)
    if mode == "async":
        assert answer["results"] == [journaled[-1][0]]  # .u.i: the last committed seq


def test_sync_upd_returns_once_journaled(tp: Proc) -> None:
    with q(tp) as conn:
        for i in range(20):
            row = [Symbol("AAPL"), np.float64(i), np.int64(i)]
            assert conn.sync(".u.upd", Symbol("trade"), row) is None
            seq = int(conn.sync(".u.i"))
            assert seq == i + 1  # committed before the call returned
    rows = journal_rows(tp)
    assert [row["size"] for _, row in rows] == list(range(20))


@needs_pykx
def test_time_of_day_becomes_today_and_timestamps_are_kept(tp: Proc) -> None:
    pykx(tp, "upd", "timed-row", "sync", "1")  # a timespan 09:30 first, as tick feeds send
    stamp = np.datetime64("2024-03-01T12:00:00.123456789", "ns")
    with q(tp) as conn:
        conn.sync(".u.upd", Symbol("trade"), [stamp, Symbol("B"), np.float64(1), np.int64(1)])
        ms = np.timedelta64(10 * 3600 * 1000, "ms")  # q time (ms), 10:00
        conn.sync(".u.upd", Symbol("trade"), [ms, Symbol("C"), np.float64(1), np.int64(1)])
        table = QTable(
            {
                "time": np.array([stamp], dtype="M8[ns]"),
                "sym": np.array(["D"], dtype=object),
                "price": np.array([2.0]),
                "size": np.array([3]),
            }
        )
        conn.sync(".u.upd", Symbol("trade"), table)
    times = [row["time"] for _, row in journal_rows(tp)]
    today = dt.datetime.now(dt.UTC).date()
    assert times[0] == dt.datetime.combine(today, dt.time(9, 30))
    assert times[1] == pd.Timestamp("2024-03-01T12:00:00.123456789")  # to the nanosecond
    assert times[2] == dt.datetime.combine(today, dt.time(10, 0))
    assert times[3] == times[1]


@needs_pykx
def test_bad_upd_gets_a_q_error_and_the_process_carries_on(tp: Proc) -> None:
    errors = pykx(tp, "bad")["errors"]
    assert errors[0].startswith("nosuch: unknown table")
    assert errors[1] == "type: trade.price must be float, got long"
    assert errors[2].startswith("length: trade needs 3 items")
    assert errors[3].startswith("length: trade.price has 1 values")
    assert errors[4].startswith("rank: .u.upd takes 2 arguments")
    assert errors[5] == "None"  # the same connection still publishes
    log = wait_until(lambda: "async .u.upd refused" in tp.log() and tp.log(), what="log line")
    assert "trade.price must be float, got long" in log
    assert [row["sym"] for _, row in journal_rows(tp)] == ["S0"]  # only the good row


def test_bad_table_shapes_name_the_column(tp: Proc) -> None:
    def table(**columns: Any) -> QTable:
        return QTable(
            {k: np.asarray(v, dtype=object if k == "sym" else None) for k, v in columns.items()}
        )

    with q(tp) as conn:
        with pytest.raises(QError, match=r"mismatch: trade .*unknown qty.*missing size"):
            conn.sync(".u.upd", Symbol("trade"), table(sym=["A"], price=[1.0], qty=[1]))
        with pytest.raises(QError, match=r"type: trade.size must be long, got int"):
            conn.sync(".u.upd", Symbol("trade"), table(sym=["A"], price=[1.0], size=np.int32([1])))
        with pytest.raises(QError, match=r"type: .*not a mix"):
            conn.sync(
                ".u.upd", Symbol("trade"), [np.array(["A"], object), np.float64(1), np.int64(1)]
            )
        with pytest.raises(QError, match="type: trade: data must be"):
            conn.sync(".u.upd", Symbol("trade"), np.int64(5))
        with pytest.raises(QError, match="nosuchfn"):
            conn.sync(".u.nosuchfn", Symbol("trade"))
        assert conn.sync(".u.upd", Symbol("trade"), table(sym=["A"], price=[1.0], size=[1])) is None
    assert len(journal_rows(tp)) == 1


def test_status_queries(tp: Proc) -> None:
    with q(tp) as conn:
        assert conn.sync(".u.t").tolist() == [
            "trade",
            "quote",
            "order_request",
            "order",
            "fill",
            "risk_admin",
        ]
        assert conn.sync(".u.i") == 0
        conn.sync(".u.upd", Symbol("quote"), [Symbol("A"), 1.0, 2.0, np.int64(3), np.int64(4)])
        assert conn.sync(".u.i") == 1


@needs_pykx
def test_pykx_subscriber_gets_typed_upd_pushes(tp: Proc) -> None:
    sub = subprocess.Popen(
        [sys.executable, str(CLIENT), str(tp.info["kdb_port"]), "sub", "2", "S1,S2"],
        stdout=subprocess.PIPE,
        text=True,
        env={"PYKX_UNLICENSED": "true", "PATH": "/usr/bin:/bin"},
    )
    try:
        assert sub.stdout is not None
        assert json.loads(sub.stdout.readline()) == {"subscribed": "trade"}
        with q(tp) as conn:
            for start in (0, 3, 6):  # S0 S1 S2, S3 S4 S5, S6 S0 S1
                syms = np.array([f"S{(start + i) % 7}" for i in range(3)], dtype=object)
                data = [syms, np.arange(3.0) + start, np.arange(3) + start]
                conn.sync(".u.upd", Symbol("trade"), data)
        out, _ = sub.communicate(timeout=30)
    finally:
        sub.kill()
    pushes = json.loads(out)["pushes"]
    assert [(p["func"], p["table"]) for p in pushes] == [("upd", "trade")] * 2
    first, second = (p["data"] for p in pushes)
    assert first["type"] == "Table"
    assert first["dtypes"] == {
        "time": "datetime64[ns]",
        "sym": first["dtypes"]["sym"],
        "price": "float64",
        "size": "int64",
    }
    assert first["pytypes"]["sym"] == "str"  # a symbol, not a byte string
    assert [(r["sym"], r["size"]) for r in first["rows"]] == [("S1", 1), ("S2", 2)]
    assert [(r["sym"], r["size"]) for r in second["rows"]] == [("S1", 8)]  # S3-S5 skipped


def test_u_sub_returns_the_schema_and_pushes_in_order(tp: Proc) -> None:
    with q(tp) as sub, q(tp) as feed:
        everything = sub.sync(".u.sub", Symbol(""), Symbol(""))
        assert [name for name, _ in everything] == [
            "trade",
            "quote",
            "order_request",
            "order",
            "fill",
            "risk_admin",
        ]
        _, empty = everything[3]
        from tickdb.schema import DEFAULT_TABLES

        assert list(empty.columns) == list(DEFAULT_TABLES["order"])
        assert len(empty) == 0 and isinstance(empty.columns["order_id"], list)  # strings
        with pytest.raises(QError, match="nosuch: unknown table"):
            sub.sync(".u.sub", Symbol("nosuch"), Symbol(""))
        for i in range(50):
            table = "trade" if i % 2 else "quote"
            row = (
                [Symbol("A"), np.float64(i), np.int64(i)]
                if table == "trade"
                else [Symbol("A"), np.float64(i), np.float64(i), np.int64(i), np.int64(i)]
            )
            feed.send_async(".u.upd", Symbol(table), row)
        got = [sub.receive(10)[1] for _ in range(50)]
    assert [(f, t) for f, t, _ in got] == [
        ("upd", "trade" if i % 2 else "quote") for i in range(50)
    ]
    assert [
        int(data.columns["size" if t == "trade" else "bsize"][0]) for _, t, data in got
    ] == list(range(50))
    assert all(data.columns["time"].dtype == np.dtype("M8[ns]") for _, _, data in got)


def test_end_of_day_is_pushed_as_u_end(tp: Proc) -> None:
    with q(tp) as sub:
        sub.sync(".u.sub", Symbol("trade"), Symbol(""))
        session = dt.date.fromisoformat(tp.info["session"])
        ctx = zmq.Context()
        try:
            request(ctx, tp.info["address"], [ROLL], 10.0)
        finally:
            ctx.term()
        func, date = sub.receive(10)[1]
    assert func == ".u.end" and date == np.datetime64(session.isoformat(), "D")
    with Subscriber(tp.info["address"], start="journal") as zsub:
        assert isinstance(zsub.poll(5), EndOfDay)  # the same roll the ZeroMQ side sees


def test_port_zero_disables_it(tmp_path: Path, procs: list[Proc]) -> None:
    proc = start_tp(tmp_path, tickerplant={"kdb_port": 0})
    procs.append(proc)
    assert "kdb_port" not in proc.info
    assert "kdb+ port" not in proc.log()


# -- [auth] on the kdb+ port ---------------------------------------------------------------
FAST = argon2.PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
FEED_TOKEN = "tdb_feed-token"
AUTH = {
    "auth": {"mode": "on"},
    "auth.identities.feed": {
        "password": FAST.hash("pw-feed"),
        "tokens": [hash_token(FEED_TOKEN)],
        "roles": ["publish:trade"],
    },
    "auth.identities.reader": {"password": FAST.hash("pw-reader"), "roles": ["read:trade"]},
    "auth.identities.ops": {"password": FAST.hash("pw-ops"), "roles": ["admin"]},
}
TRADE_ROW = [Symbol("AAPL"), np.float64(1.5), np.int64(100)]
QUOTE_ROW = [Symbol("AAPL"), 1.0, 2.0, np.int64(3), np.int64(4)]


@pytest.fixture
def auth_tp(tmp_path: Path, procs: list[Proc]) -> Iterator[Proc]:
    proc = start_tp(tmp_path, tickerplant={"kdb_port": free_port()}, **AUTH)
    procs.append(proc)
    yield proc
    assert proc.alive(), f"tickerplant died:\n{proc.log()}"


def login(tp: Proc, user: str = "", password: str = "") -> QClient:
    return QClient("127.0.0.1", tp.info["kdb_port"], user=user, password=password, timeout=10)


@pytest.mark.parametrize(
    ("user", "password"),
    [("", ""), ("feed", "wrong"), ("nobody", "pw-feed"), ("ops", "pw-ops"), ("reader", FEED_TOKEN)],
)
def test_auth_refuses_a_login_without_credentials_or_a_role_here(auth_tp, user, password):
    with pytest.raises(OSError), login(auth_tp, user, password) as conn:
        conn.sync(".u.i")  # as q does, a refused login is closed without a word


def test_auth_publish_needs_publish_on_the_table(auth_tp):
    for password in ("pw-feed", FEED_TOKEN):
        with login(auth_tp, "feed", password) as feed:
            assert feed.sync(".u.upd", Symbol("trade"), TRADE_ROW) is None
            with pytest.raises(QError, match="access: 'feed' may not publish to quote"):
                feed.sync(".u.upd", Symbol("quote"), QUOTE_ROW)
            with pytest.raises(QError, match="access: 'feed' may not publish to quote"):
                feed.sync(".u.upd[`quote;(`A;1.0;2.0;3;4)]")  # as q text too
            feed.send_async(".u.upd", Symbol("quote"), QUOTE_ROW)  # refused, logged
            assert feed.sync("") is None
            with pytest.raises(QError, match="access: 'feed' may not read trade"):
                feed.sync(".u.sub", Symbol("trade"), Symbol(""))
    with (
        login(auth_tp, "reader", "pw-reader") as reader,
        pytest.raises(QError, match="access: 'reader' may not publish to trade"),
    ):
        reader.sync(".u.upd", Symbol("trade"), TRADE_ROW)
    assert [row["size"] for _, row in journal_rows(auth_tp)] == [100, 100]  # trade, twice
    wait_until(lambda: "async .u.upd refused: access" in auth_tp.log(), what="the refusal")


def test_auth_subscribe_needs_read_on_every_table(auth_tp):
    with login(auth_tp, "reader", "pw-reader") as sub, login(auth_tp, "feed", "pw-feed") as feed:
        for table in ("", "quote"):  # ` is every table, quote among them
            with pytest.raises(QError, match=r"access: 'reader' may not read .*quote"):
                sub.sync(".u.sub", Symbol(table), Symbol(""))
        name, empty = sub.sync(".u.sub", Symbol("trade"), Symbol(""))
        assert name == "trade" and len(empty) == 0
        assert int(sub.sync(".u.i")) == 0  # status queries need no more than the login
        feed.sync(".u.upd", Symbol("trade"), TRADE_ROW)
        function, table, data = sub.receive(10)[1]
    assert (function, table) == ("upd", "trade")
    assert data.columns["size"].tolist() == [100]
