"""The kdb+ IPC server in a real process, driven by PyKX and by our own client.

The server runs the dispatch table in ``tests/qipc_servers/dispatch_server.py`` in a
subprocess (a PyKX client and a Python server in one process can deadlock); PyKX
connects from this process in unlicensed mode, exactly as a desk's client would.
"""

from __future__ import annotations

import os
import select
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from support.harness import wait_until
from support.qipc_server import PASSWORD, USER, ServerProc

from qipc import QClient, QError, QTable, Symbol
from qipc import types as t
from qipc.codec import encode

os.environ.setdefault("PYKX_UNLICENSED", "true")  # PyKX 4.x: IPC and (de)serialise only
kx = pytest.importorskip("pykx")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProc]:
    proc = ServerProc(
        tmp_path, "--user", USER, "--password", PASSWORD, "--max-message-bytes", "100000"
    )
    yield proc
    assert proc.stop() == 0, f"server did not shut down cleanly:\n{proc.log()}"


@pytest.fixture
def pykx_conn(server: ServerProc) -> Iterator[Any]:
    conn = kx.SyncQConnection("127.0.0.1", server.port, username=USER, password=PASSWORD)
    yield conn
    conn.close()


def client(server: ServerProc, **kwargs: Any) -> QClient:
    return QClient("127.0.0.1", server.port, user=USER, password=PASSWORD, **kwargs)


def test_pykx_sync_query_returns_a_typed_table(pykx_conn: Any) -> None:
    table = pykx_conn("trade")
    assert isinstance(table, kx.Table)
    frame = table.pd()
    assert len(frame) == 3
    assert frame["time"].dtype == np.dtype("M8[ns]")
    assert frame["time"][0] == pd.Timestamp("2024-03-01T09:30:00")
    assert pd.isna(frame["time"][2])  # 0Np
    assert frame["sym"].tolist()[:2] == ["AAPL", "MSFT"]  # symbols, not byte strings
    # Unlicensed PyKX cannot index tables; pandas dtypes show the q column types.
    assert frame["date"].tolist()[0] == pd.Timestamp("2024-03-01")
    assert frame["month"].tolist()[1] == pd.Timestamp("2024-04-01")
    assert frame["span"].dtype == np.dtype("m8[ns]")
    assert frame["note"].tolist()[0] == b"note 0"  # strings: char vectors, not symbols
    assert frame["qty"].dtype == np.int32 and frame["ratio"].dtype == np.float32
    assert isinstance(pykx_conn("keyed"), kx.KeyedTable)
    assert pykx_conn("ping").py() == "pong"


def test_q_errors_raise_qerror_in_pykx_and_the_connection_survives(pykx_conn: Any) -> None:
    with pytest.raises(kx.QError, match="boom"):
        pykx_conn("boom")
    with pytest.raises(kx.QError, match="handler bug"):
        pykx_conn("crash")
    with pytest.raises(kx.QError, match="type"):
        pykx_conn("unsendable")
    with pytest.raises(kx.QError, match="nosuchfn"):
        pykx_conn("nosuchfn", 1)
    assert pykx_conn("ping").py() == "pong"


def test_pykx_publishes_upd_sync_and_async(pykx_conn: Any, server: ServerProc) -> None:
    row = kx.toq([np.datetime64("2024-03-01T09:30:00", "ns"), "AAPL", 101.5, 200])
    assert pykx_conn(".u.upd", "trade", row).py() is None
    frame = pd.DataFrame({"sym": ["A"] * 1000, "price": np.arange(1000.0)})
    pykx_conn(".u.upd", "quote", kx.toq(frame), wait=False)  # async: no response
    with client(server) as q:
        wait_until(lambda: q.sync("count") == 2, what="two upd messages")
        table, data = q.sync("last")
        assert table == "quote" and isinstance(data, QTable) and len(data) == 1000
        assert data.columns["sym"][0] == "A" and data.columns["price"][-1] == 999.0


def test_bad_credentials_are_refused(server: ServerProc) -> None:
    with pytest.raises(Exception, match="Authentication error"):
        kx.SyncQConnection("127.0.0.1", server.port, username=USER, password="wrong")
    with pytest.raises(ConnectionRefusedError):
        QClient("127.0.0.1", server.port, user="mallory", password=PASSWORD)
    with client(server) as q:
        assert q.capability == 3  # and good credentials still get in


def test_subscribers_receive_async_upd_pushes(server: ServerProc) -> None:
    with client(server) as sub, client(server) as pub:
        name, schema = sub.sync(".u.sub", Symbol("trade"), Symbol(""))
        assert name == "trade" and isinstance(schema, QTable) and len(schema) == 0
        assert pub.sync("publish", np.int64(5)) == 1
        msg_type, (func, table, data) = sub.receive(timeout=10)
        assert msg_type == t.ASYNC and (func, table) == ("upd", "trade")
        assert isinstance(data, QTable) and len(data) == 5
        with pytest.raises(TimeoutError):
            sub.receive(timeout=0.05)


def test_many_clients_at_once(server: ServerProc) -> None:
    errors: list[BaseException] = []

    def worker(k: int) -> None:
        try:
            with client(server) as q:
                for i in range(20):
                    value = np.arange(k * 100 + i, k * 100 + i + 50, dtype=np.int64)
                    echoed = q.sync("echo", value)
                    assert isinstance(echoed, np.ndarray) and echoed.tolist() == value.tolist()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors


def test_slow_handler_does_not_block_other_clients(server: ServerProc) -> None:
    with client(server) as slow, client(server) as fast:
        slow.send_raw(encode(["sleep", np.float64(1.0)], t.SYNC))
        assert fast.sync("ping") == "pong"
        # Answered while the other call still sleeps: its reply has not arrived yet.
        assert select.select([slow._sock], [], [], 0)[0] == []
        assert slow._read(10)[1] == "slept"


@pytest.mark.parametrize(
    "frame",
    [
        b"\x07\x01\x00\x00\x10\x00\x00\x00garbage!",  # impossible header
        b"\x01\x01\x00\x00\x00\x00\x10\x00",  # 1 MiB: over the server's 100 kB limit
    ],
    ids=["garbage", "oversized"],
)
def test_bad_frames_drop_only_that_client(server: ServerProc, frame: bytes) -> None:
    with client(server) as bystander, client(server) as bad:
        bad.send_raw(frame)
        with pytest.raises((ConnectionError, OSError)):
            bad._read(10)  # the server closed this connection
        assert bystander.sync("ping") == "pong"
    with client(server) as fresh:
        assert fresh.sync("ping") == "pong"
    assert "dropping" in server.log()


def test_undecodable_sync_message_gets_a_q_error(server: ServerProc) -> None:
    body = b"\x70\x00"  # type 112: not something a client may send
    with client(server) as q:
        q.send_raw(bytes([1, 1, 0, 0, 8 + len(body), 0, 0, 0]) + body)
        msg_type, value = q._read(10)
        assert msg_type == t.RESPONSE and isinstance(value, QError)
        assert q.sync("ping") == "pong"


def test_handshake_without_capability_byte_and_abrupt_disconnects(server: ServerProc) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(f"{USER}:{PASSWORD}\0".encode())
        assert sock.recv(1) == b"\x00"  # an old client gets capability 0
    for _ in range(5):  # clients vanishing mid-handshake and mid-message
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(b"alice:s3")
        with client(server) as q:
            q.send_raw(b"\x01\x01\x00\x00\x20\x00\x00\x00\x00")
    with client(server) as q:
        assert q.sync("ping") == "pong"
