"""The kdb+ adapter in this process against a real tickerplant process, for what needs its
knobs and counters: a slow q subscriber's bounded queue, async errors counted, the idle
timeout that spares subscribers."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from support.harness import Proc, start_tp, wait_until

from qipc import QClient, ServerLimits, Symbol
from qipc.codec import encode
from qipc.transport import client_handshake
from qipc.types import SYNC
from tickdb.schema import default_schemas
from tickerplant.kdb_port import KdbPort
from tickerplant.publisher import Publisher


@pytest.fixture
def tp(tmp_path: Path, procs: list[Proc]) -> Proc:
    proc = start_tp(tmp_path)
    procs.append(proc)
    return proc


@pytest.fixture
def port(tp: Proc) -> Iterator[KdbPort]:
    kdb = KdbPort(tp.info["address"], default_schemas(), max_queue_bytes=256 << 10).start()
    yield kdb
    kdb.close()


def test_slow_q_subscriber_is_dropped_and_others_keep_up(tp: Proc, port: KdbPort) -> None:
    # A subscriber that never reads, with a tiny receive buffer: its pushes pile up.
    slow = socket.create_connection(("127.0.0.1", port.port), timeout=10)
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    client_handshake(slow, "", "", 3)
    slow.sendall(encode([Symbol(".u.sub"), Symbol("trade"), Symbol("")], SYNC))
    with QClient("127.0.0.1", port.port) as fast:
        fast.sync(".u.sub", Symbol("trade"), Symbol(""))
        rows = 2000
        batches = 200  # ~13 MB of pushes: past the kernel's buffers and the 256 KiB queue
        with Publisher(tp.info["address"]) as pub:
            for b in range(batches):
                size = np.arange(b * rows, (b + 1) * rows)
                pub.publish("trade", {"sym": ["A"] * rows, "price": size * 1.0, "size": size})
                # In step with the fast client, which this process must also decode.
                _, _, data = fast.receive(30)[1]
                assert data.columns["size"].tolist() == size.tolist()  # in order, complete
    assert port.fanout.counters.slow_disconnects == 1
    # The fast client has left and the slow one was dropped.
    wait_until(lambda: port.fanout.counters.clients == 0, what="both subscriptions gone")
    # The server closed the slow connection (draining it here would crawl: 4 KiB window).
    wait_until(lambda: port.server.connections() == [], what="the slow client to be closed")
    slow.close()


def test_async_upd_errors_are_counted_and_sync_ones_raised(port: KdbPort) -> None:
    with QClient("127.0.0.1", port.port) as conn:
        conn.send_async(".u.upd", Symbol("trade"), [Symbol("A"), np.int64(1), np.int64(1)])
        conn.send_async(".u.upd", Symbol("nosuch"), [Symbol("A")])
        conn.send_async(".u.upd", Symbol("trade"), [Symbol("A"), np.float64(1), np.int64(1)])
        assert conn.sync("") is None  # h"": every async message before it has been handled
        assert port.counters.upd_async == 3
        assert port.counters.refused_async == 2
        assert port.counters.rows == 1
        assert conn.sync(".u.i") == 1
    wait_until(lambda: port.server.connections() == [], what="the connection to close")


def test_q_subscribers_outlive_the_idle_timeout_and_silent_clients_do_not(tp: Proc) -> None:
    limits = ServerLimits(idle_timeout_s=0.3)
    kdb = KdbPort(tp.info["address"], default_schemas(), limits=limits).start()
    try:
        with QClient("127.0.0.1", kdb.port) as sub, QClient("127.0.0.1", kdb.port) as silent:
            sub.sync(".u.sub", Symbol("trade"), Symbol(""))
            subscribed = time.monotonic()
            # Quiet for over twice the timeout: the silent client is closed, not the subscriber.
            wait_until(
                lambda: kdb.server.idle_closed == 1 and time.monotonic() - subscribed > 0.6,
                what="the silent client closed",
            )
            with pytest.raises((ConnectionError, OSError)):
                silent.sync(".u.i")
            with Publisher(tp.info["address"]) as pub:
                pub.publish("trade", {"sym": ["A"], "price": [1.0], "size": [1]})
            _, (func, table, data) = sub.receive(30)
            assert (func, table, data.columns["size"].tolist()) == ("upd", "trade", [1])
            assert kdb.server.idle_closed == 1
    finally:
        kdb.close()
