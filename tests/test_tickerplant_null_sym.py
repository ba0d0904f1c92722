"""Rows without a sym are refused at ingest, whole batch, on every way in.

A row whose ``sym`` is null matches no shard, so no RDB ever held it, yet it used to be
acknowledged and journaled. Against a real tickerplant process (with the C row packer and
with its pure-Python fallback): raw UPD frames in each shape the validator has a path for,
``tickdb.Publisher`` (refused before sending), and the tickerplant's kdb+ port (``.u.upd``
sync and async). Each refusal is an error to the sender, a log line and a count in the
tickerplant's STATS, and nothing of the batch reaches the journal.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import zmq
from support.harness import Proc, free_port, start_tp, wait_until

from qipc import QClient, QError, Symbol
from tickdb.schema import SchemaError, default_schemas
from tickerplant.discovery import request
from tickerplant.ingest import encode_stream
from tickerplant.protocol import ERR, STATS, encode_upd
from tickerplant.publisher import Publisher, PublishError
from tickerplant.subscriber import Subscriber, Update

TRADE = default_schemas()["trade"]


@pytest.fixture(scope="module", params=["c", "python"])
def tp(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    from tickerplant.rowpack import PURE_PYTHON_ENV, compiled

    if request.param == "c" and compiled() is None:
        pytest.skip("tickerplant._rowpack is not built")
    workdir = tmp_path_factory.mktemp("nullsym")
    with pytest.MonkeyPatch.context() as env:
        env.setenv(PURE_PYTHON_ENV, "1" if request.param == "python" else "0")
        proc = start_tp(workdir, tickerplant={"kdb_port": free_port()})
    yield proc
    assert proc.alive(), proc.log()
    proc.stop()


def stats(tp: Proc) -> dict[str, Any]:
    ctx = zmq.Context()
    try:
        return dict(json.loads(request(ctx, tp.info["address"], [STATS], 5)[1]))
    finally:
        ctx.term()


def send(tp: Proc, table: bytes, payload: bytes) -> list[bytes]:
    ctx = zmq.Context()
    try:
        frame = encode_upd(os.urandom(16), 1, 1, table, payload)
        return request(ctx, tp.info["address"], [frame], 5)
    finally:
        ctx.term()


def trade(rows: int, null_at: set[int], timed: bool = True, dictionary: bool = False) -> bytes:
    syms = pa.array([None if i in null_at else f"S{i}" for i in range(rows)], pa.string())
    columns: dict[str, pa.Array] = {
        "sym": syms.dictionary_encode() if dictionary else syms,
        "price": pa.array([1.0] * rows),
        "size": pa.array(list(range(rows)), pa.int64()),
    }
    if timed:
        columns = {"time": pa.array([1] * rows, pa.timestamp("ns")), **columns}
    table = pa.table(columns)
    return encode_stream(table, table.schema)


# Each shape goes down another path of the validator: the one-row fast paths (in C or pure
# Python), one batch after the table's schema, and the slow path (a dictionary-encoded sym).
SHAPES = {
    "one row": (trade(1, {0}), "sym is null in 1 of 1 row(s) (first: row 0)"),
    "one row without time": (trade(1, {0}, timed=False), "sym is null in 1 of 1 row(s)"),
    "many rows": (trade(50, {7, 30}), "sym is null in 2 of 50 row(s) (first: row 7)"),
    "many rows without time": (trade(50, {49}, timed=False), "in 1 of 50 row(s) (first: row 49)"),
    "dictionary-encoded": (trade(5, {2}, dictionary=True), "in 1 of 5 row(s) (first: row 2)"),
}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_a_batch_with_a_null_sym_is_refused_whole(tp: Proc, shape: str) -> None:
    payload, message = SHAPES[shape]
    before = stats(tp)
    reply = send(tp, b"trade", payload)
    assert reply[0] == ERR and message in reply[2].decode(), reply
    assert "the whole batch was refused" in reply[2].decode()
    after = stats(tp)
    assert after["seq"] == before["seq"]  # nothing of it journaled
    assert after["rows"] == before["rows"]
    assert after["rejected"] == before["rejected"] + 1
    by_reason = after["errors_by_reason"]
    assert by_reason["null_sym"] == before["errors_by_reason"].get("null_sym", 0) + 1
    wait_until(lambda: message in tp.log(), what="the refusal in the log")


def test_publish_ipc_gets_the_refusal_and_the_good_batches_go_through(tp: Proc) -> None:
    sub = Subscriber(tp.info["address"], tables=["trade"])
    before = stats(tp)
    with Publisher(tp.info["address"]) as pub:
        pub.publish_ipc("trade", trade(3, set()))
        pub.publish_ipc("trade", trade(3, {1}))  # another language's publisher, say
        pub.publish_ipc("trade", trade(2, set()))
        with pytest.raises(PublishError, match=r"batch 2: .*sym is null in 1 of 3 row"):
            pub.flush()
        assert pub.acked == 3  # the refused batch is handled: nothing to resend
    rows: list[dict[str, Any]] = []
    while len(rows) < 5:
        message = sub.poll(5)
        assert message is not None
        if isinstance(message, Update):
            rows.extend(message.data.to_pylist())
    assert [r["size"] for r in rows] == [0, 1, 2, 0, 1]
    assert all(r["sym"] is not None for r in rows)
    assert stats(tp)["rows"] == before["rows"] + 5
    sub.close()


def test_the_publisher_refuses_a_null_sym_before_sending(tp: Proc) -> None:
    before = stats(tp)
    with Publisher(tp.info["address"]) as pub, Publisher(tp.info["address"], batch_ms=50) as buf:
        for publisher in (pub, buf):
            with pytest.raises(SchemaError, match="column 'sym' may not be null"):
                publisher.publish("trade", sym=None, price=1.0, size=1)
            with pytest.raises(SchemaError, match="column 'sym' may not be null"):
                publisher.publish("trade", (None, 1.0, 1))
            with pytest.raises(SchemaError, match=r"column 'sym' is null in 1 of 2 row"):
                publisher.publish(
                    "trade", {"sym": ["A", None], "price": [1.0, 2.0], "size": [1, 2]}
                )
            with pytest.raises(SchemaError, match=r"column 'sym' is null in 1 of 3 row"):
                publisher.publish(
                    "trade",
                    pa.RecordBatch.from_pylist(
                        [{"sym": s, "price": 1.0, "size": 1} for s in ("A", None, "B")],
                        schema=TRADE.arrow_without_time,
                    ),
                )
            publisher.publish("trade", sym="OK", price=1.0, size=1)  # the publisher goes on
            publisher.flush()
    after = stats(tp)
    assert after["rows"] == before["rows"] + 2
    assert after["errors_by_reason"] == before["errors_by_reason"]  # nothing bad was sent


def test_kdb_upd_with_a_null_sym_is_refused(tp: Proc) -> None:
    before = stats(tp)
    with QClient("127.0.0.1", tp.info["kdb_port"], timeout=10) as q:
        # q's null symbol is the empty one: `trade upd (`;1.0;1)
        with pytest.raises(QError, match=r"refused: table .trade.: sym is null in 1 of 1 row"):
            q.sync(".u.upd", Symbol("trade"), [Symbol(""), np.float64(1.0), np.int64(1)])
        columns = [
            np.array(["A", "", "B"], dtype=object),
            np.array([1.0, 2.0, 3.0]),
            np.array([1, 2, 3]),
        ]
        with pytest.raises(QError, match=r"sym is null in 1 of 3 row\(s\) \(first: row 1\)"):
            q.sync(".u.upd", Symbol("trade"), columns)
        # Async, as tick feeds send: nobody to answer, so the log and the counts say it.
        q.send_async(".u.upd", Symbol("trade"), [Symbol(""), np.float64(1.0), np.int64(1)])
        q.sync(".u.upd", Symbol("trade"), [Symbol("OK"), np.float64(1.0), np.int64(1)])
        assert q.sync("") is None
    after = stats(tp)
    assert after["rows"] == before["rows"] + 1
    assert (
        after["errors_by_reason"]["null_sym"] == before["errors_by_reason"].get("null_sym", 0) + 3
    )
    wait_until(lambda: "async .u.upd batch" in tp.log(), what="the async refusal logged")
