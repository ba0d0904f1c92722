"""Single rows through a real tickerplant: every form arrives once, in order; buffers are
flushed by size and by time; immediate mode sends a message per row; bad rows are refused
in the client; a crash and restart loses and doubles nothing; subscribers hand over
batches and updates that stay valid."""

from __future__ import annotations

import datetime as dt
import gc
import threading
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import zmq
from support.harness import Proc, start_tp, wait_until
from support.tp_delivery import Restartable, drain, sizes, tp_stats

from tickdb.schema import SchemaError
from tickerplant.discovery import request
from tickerplant.protocol import ROLL
from tickerplant.publisher import Publisher
from tickerplant.subscriber import Subscriber, Update

MODES: dict[str, dict[str, Any]] = {
    "immediate": {},
    "batch_rows": {"batch_rows": 7},
    "batch_ms": {"batch_ms": 10},
}


def publish_every_form(pub: Publisher, start: int, count: int) -> None:
    """Rows ``size = start .. start + count - 1`` as keyword arguments, dicts and tuples,
    with and without time."""
    when = dt.datetime(2026, 1, 2, 9, 30)
    for i in range(start, start + count):
        form = i % 5
        if form == 0:
            pub.publish("trade", sym="AAPL", price=float(i), size=i)
        elif form == 1:
            pub.publish("trade", {"sym": "MSFT", "price": i, "size": i})
        elif form == 2:
            pub.publish("trade", ("IBM", float(i), i))
        elif form == 3:
            pub.publish("trade", (when, "IBM", float(i), i))
        else:
            pub.publish("trade", sym="AAPL", price=float(i), size=i, time=when)


def tp_with(tmp_path: Path, procs: list[Proc], **settings: Any) -> str:
    tp = start_tp(tmp_path, tickerplant=settings)
    procs.append(tp)
    return str(tp.info["address"])


@pytest.mark.parametrize("mode", list(MODES))
def test_rows_in_every_form_arrive_once_and_in_order(
    tmp_path: Path, procs: list[Proc], mode: str
) -> None:
    address = tp_with(tmp_path, procs)
    sub = Subscriber(address, tables=["trade"])
    with Publisher(address, **MODES[mode]) as pub:
        publish_every_form(pub, 0, 300)
    got = drain(sub, 300)
    assert sizes(got) == list(range(300))
    rows = [r for u in got for r in u.data.to_pylist()]
    assert [r["price"] for r in rows] == [float(i) for i in range(300)]
    stamped = [r["time"] == dt.datetime(2026, 1, 2, 9, 30) for r in rows]
    assert stamped == [i % 5 >= 3 for i in range(300)]  # the others: the TP's receive time
    sub.close()


def test_a_bad_row_is_refused_in_the_client_and_nothing_is_sent(
    tmp_path: Path, procs: list[Proc]
) -> None:
    address = tp_with(tmp_path, procs)
    sub = Subscriber(address, tables=["trade"])
    for options in MODES.values():
        with Publisher(address, **options) as pub:
            with pytest.raises(SchemaError, match=r"column 'price' is float.*got str 'cheap'"):
                pub.publish("trade", sym="A", price="cheap", size=1)
            with pytest.raises(SchemaError, match=r"unknown columns \['colour'\]"):
                pub.publish("trade", {"sym": "A", "price": 1.0, "size": 1, "colour": "red"})
            with pytest.raises(SchemaError, match=r"missing columns \['size'\]"):
                pub.publish("trade", {"sym": "A", "price": 1.0})
            with pytest.raises(SchemaError, match="a row needs 3 values"):
                pub.publish("trade", ("A", 1.0))
            with pytest.raises(SchemaError, match=r"column 'size' is long.*got float 1\.5"):
                pub.publish("trade", ("A", 1.0, 1.5))
            with pytest.raises(ValueError, match="unknown table 'trades'"):
                pub.publish("trades", sym="A", price=1.0, size=1)
            pub.flush()
            assert pub.acked == 0  # nothing was sent
    assert tp_stats(address)["seq"] == 0
    with Publisher(address) as pub:
        pub.publish("trade", sym="A", price=1.0, size=7)
    assert sizes(drain(sub, 1)) == [7]
    sub.close()


def test_buffers_are_flushed_by_size_and_the_rest_by_flush(
    tmp_path: Path, procs: list[Proc]
) -> None:
    # One record per publisher batch, so the records show the client's batches.
    address = tp_with(tmp_path, procs, coalesce_queued=False)
    sub = Subscriber(address, tables=["trade"])
    pub = Publisher(address, batch_rows=50)
    for i in range(120):
        pub.publish("trade", ("A", 1.0, i))
    first = drain(sub, 100)  # and nothing more: the 20 left wait in the buffer
    assert [u.data.num_rows for u in first] == [50, 50]
    pub.flush()  # the 20 left
    assert [u.data.num_rows for u in drain(sub, 20)] == [20]
    assert pub.acked == 3
    pub.close()
    sub.close()


def test_a_buffer_over_the_message_limit_goes_in_pieces(tmp_path: Path, procs: list[Proc]) -> None:
    address = tp_with(tmp_path, procs, coalesce_queued=False, max_message_bytes=16_384)
    sub = Subscriber(address, tables=["trade"])
    with Publisher(address, batch_rows=3000) as pub:
        for i in range(3000):  # ~90 KB of Arrow: over the limit five times
            pub.publish("trade", (f"SYM{i % 7}", float(i), i))
        pub.flush()
        pieces = pub.acked
    got = drain(sub, 3000)
    assert sizes(got) == list(range(3000))
    assert pieces == len(got) >= 6  # halves of halves, each under the limit
    sub.close()


def test_buffers_are_flushed_by_time_without_a_flush(tmp_path: Path, procs: list[Proc]) -> None:
    address = tp_with(tmp_path, procs, coalesce_queued=False)
    sub = Subscriber(address, tables=["trade"])
    pub = Publisher(address, batch_ms=50)
    for i in range(30):
        pub.publish("trade", sym="A", price=1.0, size=i)
    got = drain(sub, 30, timeout=10)  # no flush(): the timer sends them
    assert sizes(got) == list(range(30))
    assert len(got) < 30  # buffered: far fewer records than rows (one, unless the
    assert pub.acked == len(got)  # machine stalls across the timer)
    pub.close(flush=False)
    sub.close()


def test_immediate_mode_sends_one_message_per_row(tmp_path: Path, procs: list[Proc]) -> None:
    address = tp_with(tmp_path, procs, coalesce_queued=False)
    sub = Subscriber(address, tables=["trade"])
    with Publisher(address) as pub:
        for i in range(40):
            pub.publish("trade", sym="A", price=1.0, size=i)
        pub.flush()
        assert pub.acked == 40
    got = drain(sub, 40)
    assert [u.data.num_rows for u in got] == [1] * 40
    assert sizes(got) == list(range(40))
    sub.close()


class RowFeed:
    """Publishes single rows on a thread until stopped; ``size`` counts up."""

    def __init__(self, address: str, **options: Any) -> None:
        self.pub = Publisher(address, resend_after_s=0.3, **options)
        self.sent = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self.pub.publish("trade", ("A", 1.0, self.sent))
                self.sent += 1
        except BaseException as exc:
            self.error = exc

    def stop(self) -> int:
        self._stop.set()
        self._thread.join(60)
        assert self.error is None, self.error
        self.pub.flush(timeout_s=60)
        self.pub.close()
        return self.sent


@pytest.mark.parametrize("mode", ["immediate", "batch_ms"])
def test_rows_resent_after_a_tickerplant_restart_arrive_exactly_once(
    tmp_path: Path, procs: list[Proc], mode: str
) -> None:
    tp = Restartable(tmp_path, procs)
    feed = RowFeed(tp.address, **MODES[mode])
    wait_until(lambda: feed.pub.acked >= 50, 20, "the feed running")
    tp.crash_and_restart()
    acked = feed.pub.acked
    wait_until(lambda: feed.pub.acked > acked + 50, 20, "the feed running again")
    total = feed.stop()
    if mode == "immediate":  # a row a batch, sent without pause: some were in flight
        assert feed.pub.resends > 0
    replayed = Subscriber(tp.address, tables=["trade"], start="journal")
    try:
        assert sizes(drain(replayed, total, timeout=30)) == list(range(total))
    finally:
        replayed.close()


def test_subscriber_batches_hand_over_every_row_in_order(tmp_path: Path, procs: list[Proc]) -> None:
    tp = start_tp(tmp_path)
    procs.append(tp)
    address = str(tp.info["address"])
    sub = Subscriber(address, tables=["trade", "quote"])
    with Publisher(address) as pub:
        for i in range(0, 1000, 100):
            columns = {"sym": ["A"] * 100, "price": [1.0] * 100, "size": range(i, i + 100)}
            pub.publish("trade", columns)
            pub.publish("quote", sym="A", bid=1.0, ask=2.0, bsize=i, asize=i)
    got: dict[str, list[int]] = {"trade": [], "quote": []}
    kept: list[pa.RecordBatch] = []
    for table, batch in sub.batches(timeout_s=5):
        assert isinstance(batch, pa.RecordBatch)
        got[table] += batch.column("size" if table == "trade" else "bsize").to_pylist()
        kept.append(batch)
        if len(got["trade"]) == 1000 and len(got["quote"]) == 10:
            break
    assert got == {"trade": list(range(1000)), "quote": list(range(0, 1000, 100))}
    ctx = zmq.Context()
    request(ctx, address, [ROLL], 10)
    ctx.term()
    assert list(sub.batches(timeout_s=1)) == []  # end of day: no rows
    assert sub.last_end_of_day is not None
    gc.collect()
    trades = [b for b in kept if "size" in b.schema.names]
    assert [v for b in trades for v in b.column("size").to_pylist()] == list(range(1000))
    sub.close()


def test_an_update_kept_holds_its_rows_after_later_messages(
    tmp_path: Path, procs: list[Proc]
) -> None:
    address = tp_with(tmp_path, procs, coalesce_queued=False)
    sub = Subscriber(address, tables=["trade"])
    with Publisher(address) as pub:
        for i in range(200):
            columns = {"sym": [f"S{i}"] * 50, "price": [float(i)] * 50, "size": [i] * 50}
            pub.publish("trade", columns)
    got = drain(sub, 200 * 50)
    first = got[0]
    table = first.data  # decoded before the later messages were received and dropped
    del got[1:]
    gc.collect()
    with Publisher(address) as pub:  # and more traffic through the same subscriber
        for _ in range(200):
            pub.publish("trade", {"sym": ["X"] * 50, "price": [0.0] * 50, "size": [-1] * 50})
    drain(sub, 200 * 50)
    gc.collect()
    assert isinstance(first, Update)
    assert table.column("size").to_pylist() == [0] * 50
    assert table.column("sym").to_pylist() == ["S0"] * 50
    assert first.data.column("price").to_pylist() == [0.0] * 50
    sub.close()
