"""The tickerplant's kdb+ port as q users write to it: q text calls, async errors logged,
each time-less .u.upd stamped at its own arrival, q's insert type rules, q type names."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from support.harness import Proc, start_tp, wait_until

from qipc import QClient, QError, Symbol
from qipc.codec import encode
from qipc.server import QIpcServer
from qipc.types import SYNC
from tickdb.schema import default_schemas
from tickerplant.kdb_port import KdbPort
from tickerplant.subscriber import Subscriber


@pytest.fixture
def tp(tmp_path: Path, procs: list[Proc]) -> Proc:
    proc = start_tp(tmp_path)
    procs.append(proc)
    return proc


@pytest.fixture
def port(tp: Proc) -> Iterator[KdbPort]:
    kdb = KdbPort(tp.info["address"], default_schemas()).start()
    yield kdb
    kdb.close()


def trades(tp: Proc) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with Subscriber(tp.info["address"], tables=["trade"], start="journal") as sub:
        while (message := sub.poll(0.5)) is not None:
            rows += message.data.to_pylist()
    return rows


def test_q_text_sub_and_upd_are_accepted(tp: Proc, port: KdbPort) -> None:
    """node-q's README subscribes with .u.sub[`;`] sent as text."""
    with QClient("127.0.0.1", port.port) as conn:
        everything = conn.sync(".u.sub[`;`]")
        assert [str(name) for name, _ in everything][:2] == ["trade", "quote"]
        assert conn.sync(".u.upd[`trade;(`AAPL;189.5;100)]") is None
        conn.send_async(".u.upd[`trade;(`MSFT`IBM;20.5 30.25;200 300)]")
        assert conn.sync("") is None
        assert conn.sync(".u.i") == 2
    got = [(r["sym"], r["price"], r["size"]) for r in trades(tp)]
    assert got == [("AAPL", 189.5, 100), ("MSFT", 20.5, 200), ("IBM", 30.25, 300)]


def test_bad_q_text_is_refused_sync_and_logged_async(
    port: KdbPort, caplog: pytest.LogCaptureFixture
) -> None:
    with QClient("127.0.0.1", port.port) as conn:
        with pytest.raises(QError, match="parse: unbalanced"):
            conn.sync(".u.upd[`trade;(`A;1.5;100]")
        with pytest.raises(QError, match=r"type: trade\.size must be long, got int"):
            conn.sync(".u.upd[`trade;(`A;1.5;100i)]")
        with caplog.at_level(logging.WARNING):
            conn.send_async(".u.upd[`trade;(`A;1.5;100]")  # does not parse
            conn.send_async(".u.nosuch[`x]")  # no such function
            conn.send_async(".u.upd[`trade;(`A;1.5;100i)]")  # parses, refused
            assert conn.sync("") is None
            wait_until(lambda: port.server.async_errors == 2, 5, "the async errors")
    assert port.counters.refused_async == 1
    logged = caplog.text
    assert "async message" in logged and "parse: unbalanced" in logged and ".u.nosuch" in logged
    assert "async .u.upd refused: type: trade.size must be long, got int" in logged


def test_async_errors_are_logged_by_any_q_port(caplog: pytest.LogCaptureFixture) -> None:
    """The gateway's kdb+ port is the same server: an async query that fails is logged."""

    def handler(value: Any, msg_type: int, conn: Any) -> Any:
        raise QError("nosuch")

    server = QIpcServer(handler, host="127.0.0.1", port=0, name="gateway-kdb")
    server.start()
    try:
        with caplog.at_level(logging.WARNING), QClient("127.0.0.1", server.port) as conn:
            conn.send_async("select from nosuch")
            wait_until(lambda: server.async_errors == 1, 5, "the async error")
    finally:
        server.close(timeout=2.0)
    assert "gateway-kdb: async message" in caplog.text and "nosuch" in caplog.text


def test_each_upd_without_time_is_stamped_at_its_own_arrival(tp: Proc, port: KdbPort) -> None:
    with QClient("127.0.0.1", port.port) as conn:
        for i in range(10):
            conn.send_async(".u.upd", Symbol("trade"), [Symbol("A"), np.float64(1), np.int64(i)])
        assert conn.sync("") is None
    times = [r["time"] for r in trades(tp)]
    assert len(times) == 10 and times == sorted(times)
    assert len(set(times)) == 10, "ten calls, ten arrival times (tick.q's .z.N per upd)"


def test_insert_type_rules_and_q_type_names(port: KdbPort) -> None:
    columns = [np.array(["A"], object), np.array([1.5]), np.array([3], np.int32)]
    with QClient("127.0.0.1", port.port) as conn:
        with pytest.raises(QError, match="size must be long, got int"):
            conn.sync(".u.upd", Symbol("trade"), columns)
        with pytest.raises(QError, match="size must be long, got float"):
            conn.sync(".u.upd", Symbol("trade"), [*columns[:2], np.array([3.0])])
        # A q datetime (type 15): encoded as a float vector, then retyped on the wire.
        marker = np.array([8767.25])
        data = [marker, *columns[:2], np.array([3])]
        message = bytearray(encode([Symbol(".u.upd"), Symbol("trade"), data], SYNC))
        at = bytes(message).index(b"\x09\x00\x01\x00\x00\x00" + marker.tobytes())
        message[at] = 15
        conn.send_raw(bytes(message))
        _, reply = conn.receive(10)
        assert isinstance(reply, QError)
        assert str(reply) == "type: trade.time must be timestamp, got datetime"
