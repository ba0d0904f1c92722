"""The client API: every input shape, client-side batching, callbacks, reconnects; the CLI."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import threading
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from support.harness import free_port, start_tp, wait_until

from tickdb.schema import default_schemas
from tickerplant.publisher import Publisher, to_arrow
from tickerplant.subscriber import EndOfDay, Subscriber, Update

TRADE = default_schemas()["trade"]


@pytest.mark.parametrize(
    "data",
    [
        pa.table({"sym": ["A"], "price": [1.5], "size": [3]}),
        pd.DataFrame({"sym": ["A"], "price": [1.5], "size": [3]}),
        {"sym": ["A"], "price": [1.5], "size": [3]},
        {"sym": "A", "price": 1.5, "size": 3},
        ["A", 1.5, 3],
    ],
    ids=["arrow", "pandas", "columns", "row-dict", "row-list"],
)
def test_every_input_shape_becomes_the_table_schema(data: object) -> None:
    table = to_arrow(data, TRADE)
    assert table.schema == TRADE.arrow_without_time
    assert table.to_pylist() == [{"sym": "A", "price": 1.5, "size": 3}]


def test_a_row_with_time_keeps_it() -> None:
    when = dt.datetime(2026, 1, 2, 9, 30)
    table = to_arrow([when, "A", 1.5, 3], TRADE)
    assert table.schema == TRADE.arrow
    assert table.column("time")[0].as_py() == when


def rows(updates: list, column: str = "size") -> list:
    return [v for u in updates if isinstance(u, Update) for v in u.data.column(column).to_pylist()]


def test_client_side_batching_coalesces_rows(tmp_path: Path, procs: list) -> None:
    # One record per publisher batch, so the records show the client's batches.
    tp = start_tp(tmp_path, tickerplant={"coalesce_queued": False})
    procs.append(tp)
    address = tp.info["address"]
    sub = Subscriber(address, tables=["trade"])
    with Publisher(address, batch_rows=50, batch_ms=20) as pub:
        for i in range(120):
            pub.publish("trade", {"sym": "A", "price": 1.0, "size": i})
        # The last 20 rows go out on the timer, without a flush.
        wait_until(lambda: pub.inflight == 0 and pub.acked == 3, 5, "timer flush")
    got: list = []
    wait_until(
        lambda: (m := sub.poll(0.05)) is not None and got.append(m) is None and len(got) == 3,
        10,
        "three records",
    )
    assert rows(got) == list(range(120))
    assert [u.data.num_rows for u in got] == [50, 50, 20]
    sub.close()


def test_updates_decode_to_aligned_buffers(
    tmp_path: Path, procs: list, capfd: pytest.CaptureFixture[str], rowpack_impl: str
) -> None:
    # Records sit back to back in a fan-out message, so a payload starts at any byte offset;
    # a strategy's pyarrow compute over misaligned columns warns on every call.
    tp = start_tp(tmp_path, tickerplant={"coalesce_queued": False})
    procs.append(tp)
    address = tp.info["address"]
    sub = Subscriber(address, tables=["trade"])
    with Publisher(address) as pub:
        for n in range(1, 9):  # payload lengths differ by a row: offsets differ too
            pub.publish(
                "trade", {"sym": ["AB"[: 1 + n % 2]] * n, "price": [1.0] * n, "size": [n] * n}
            )
        pub.flush(5)
    got: list = []
    wait_until(
        lambda: (m := sub.poll(0.05)) is not None and got.append(m) is None and len(got) == 8,
        10,
        "eight records",
    )
    for update in got:
        price = update.data.column("price").chunks[0]
        assert price.buffers()[1].address % 8 == 0, update.seq
        update.data.group_by("sym").aggregate([("size", "sum")])
    assert "poorly aligned" not in capfd.readouterr().err
    sub.close()


def test_callback_form_and_subscriber_survives_a_tickerplant_kill(
    tmp_path: Path, procs: list
) -> None:
    port = free_port()
    settings = {
        "tickerplant": {
            "address": f"tcp://127.0.0.1:{port}",
            "publish_address": f"tcp://127.0.0.1:{free_port()}",
            "replay_address": f"tcp://127.0.0.1:{free_port()}",
        }
    }
    tp = start_tp(tmp_path, **settings)
    procs.append(tp)
    address = tp.info["address"]
    got: list = []
    lock = threading.Lock()

    def on_message(message: object) -> None:
        with lock:
            got.append(message)

    sub = Subscriber(address, tables=["trade"])
    sub.start(on_message)
    pub = Publisher(address, resend_after_s=0.3)
    for i in range(50):
        pub.publish("trade", {"sym": "A", "price": 1.0, "size": i})
    pub.flush()
    tp.kill9()
    tp = start_tp(tmp_path, name="tp2", **settings)
    procs.append(tp)
    for i in range(50, 100):
        pub.publish("trade", {"sym": "A", "price": 1.0, "size": i})
    pub.flush(20)
    pub.close()
    wait_until(lambda: len(rows(list(got))) >= 100, 15, "100 rows through the restart")
    sub.close()
    assert rows(got) == list(range(100))


def test_feed_and_sub_commands(tmp_path: Path, procs: list) -> None:
    tp = start_tp(tmp_path)
    procs.append(tp)
    address = tp.info["address"]
    cli = [sys.executable, "-m", "tickdb.cli"]
    feed = subprocess.run(
        [
            *cli,
            "feed",
            "--demo",
            "-a",
            address,
            "--rate",
            "2000",
            "--syms",
            "10",
            "--duration",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert feed.returncode == 0, feed.stderr
    published = int(feed.stdout.split()[1])
    assert published >= 1000
    sub = subprocess.run(
        [*cli, "sub", "trade", "-a", address, "--start", "session", "--count", "3"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert sub.returncode == 0, sub.stderr
    lines = sub.stdout.splitlines()
    assert lines and all(" trade time=" in line and " sym=" in line for line in lines)
    check = Subscriber(address, start="journal")
    total = 0
    while (m := check.poll(0.5)) is not None:
        assert not isinstance(m, EndOfDay)
        total += m.data.num_rows
    check.close()
    assert total == published


@pytest.mark.parametrize("mode", ["immediate", "batched"])
def test_every_batch_is_acknowledged_without_a_resend(
    tmp_path: Path, procs: list, mode: str
) -> None:
    # Acks are paced (at most one per publisher per millisecond), never dropped: with
    # resends pushed far out, a lost ack would leave flush() waiting until its timeout.
    tp = start_tp(tmp_path, tickerplant={"mode": mode, "batch_interval_ms": 20})
    procs.append(tp)
    with Publisher(tp.info["address"], resend_after_s=60) as pub:
        for i in range(3000):
            pub.publish("trade", {"sym": "A", "price": 1.0, "size": i})
            if i % 500 == 0:
                pub.flush(timeout_s=10)
        pub.flush(timeout_s=10)
        assert pub.inflight == 0 and pub.acked == 3000 and pub.resends == 0
