"""A tickerplant pair: SIGKILL or SIGSTOP the primary under a stream of batches; the standby
takes over, clients given both addresses follow it, and every row acknowledged is in the new
primary's journal and with the subscriber exactly once. The old primary, restarted or
resumed, never acknowledges a write and comes back as a standby whose journal files are the
new primary's, byte for byte."""

from __future__ import annotations

import os
import signal
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
import zmq
from support.harness import Proc, wait_until, write_config
from support.tp_pair import WAIT, Pair, same_files, start_pair

from queries.service import QueryClient
from tickerplant.journal import journal_files, read_journal
from tickerplant.protocol import KIND_UPD, encode_upd
from tickerplant.publisher import Publisher
from tickerplant.subscriber import Subscriber, Update
from tickerplant.table_payload import to_arrow


@pytest.fixture
def pair(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Pair]:
    made = Pair(tmp_path, getattr(request, "param", "sync"))
    try:
        yield made
    finally:
        made.close()


def journal_ids(journal: Path) -> Counter[int]:
    """The ``size`` of every trade row in the journal (each row's own number)."""
    found: Counter[int] = Counter()
    for _, path in journal_files(journal):
        for record in read_journal(path):
            if record.kind == KIND_UPD and record.table == "trade":
                found.update(record.to_table().column("size").to_pylist())
    return found


class Feed:
    """Batches of rows numbered 1, 2, 3, ... (``size``), from a thread, through failovers."""

    def __init__(self, addresses: list[str], rows_per_batch: int = 20) -> None:
        self.publisher = Publisher(addresses, timeout_s=20, resend_after_s=0.3)
        self.rows_per_batch = rows_per_batch
        self.sent = 0
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            while not self.stop.is_set():
                first = self.sent + 1
                sizes = list(range(first, first + self.rows_per_batch))
                rows = {"sym": ["AAPL"] * len(sizes), "price": [1.0] * len(sizes), "size": sizes}
                self.publisher.publish("trade", to_arrow(rows, self.publisher.schemas["trade"]))
                self.sent += len(sizes)
                if self.sent % 2000 == 0:
                    self.publisher.flush()  # a bounded window of unacknowledged batches
        except BaseException as exc:
            self.error = exc

    def finish(self) -> int:
        self.stop.set()
        self.thread.join(30)
        assert self.error is None, self.error
        self.publisher.flush(20)
        self.publisher.close()
        return self.sent


class Collector:
    """A subscriber from the start of the journal, in a thread: what an RDB would hold."""

    def __init__(self, addresses: list[str]) -> None:
        self.sub = Subscriber(addresses, tables=["trade"], start="journal", timeout_s=5)
        self.ids: Counter[int] = Counter()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            message = self.sub.poll(0.05)
            if isinstance(message, Update):
                self.ids.update(message.data.column("size").to_pylist())

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)
        self.sub.close()


def check_exactly(expected: int, *found: Counter[int]) -> None:
    want = Counter(range(1, expected + 1))
    for ids in found:
        assert ids == want, (
            f"missing {sorted(set(want) - set(ids))[:10]}, "
            f"doubled {[i for i, n in ids.items() if n > 1][:10]}"
        )


def start_rdb(pair: Pair) -> Proc:
    """A real RDB given both addresses (one ``--tp`` with a comma between them)."""
    config = write_config(
        pair.workdir / "rdb.toml",
        {"tickerplant": {"heartbeat_ms": 100}, "rdb": {"address": "tcp://127.0.0.1:0"}},
    )
    args = ["rdb", "--config", str(config), "--data-dir", str(pair.workdir / "rdb")]
    proc = Proc([*args, "--tp", ",".join(pair.both)], pair.workdir, "rdb", ready_timeout=60)
    pair.procs["rdb"] = proc
    return proc


def rdb_ids(rdb: Proc) -> Counter[int]:
    client = QueryClient(str(rdb.info["address"]), timeout_s=10.0)
    return Counter(client.query("SELECT size FROM trade").table.column(0).to_pylist())


def test_kill_primary_under_load(pair: Pair) -> None:
    start_pair(pair)
    # Both nodes keep their start-up heap out of full collections (``tickdb.gc_pauses``):
    # the primary from its start, the standby while it waits, so that a full collection
    # after a takeover, under load, does not walk it.
    assert pair.role("a")["gc_frozen"] > 10_000 and pair.stats("a")["gc_frozen"] > 10_000
    assert pair.role("b")["gc_frozen"] > 10_000
    rdb = start_rdb(pair)
    collector = Collector(pair.both)
    feed = Feed(pair.both)
    try:
        wait_until(lambda: feed.publisher.acked > 50, WAIT, what="acks from a")
        pair.procs["a"].kill9()
        wait_until(lambda: pair.role("b").get("role") == "primary", WAIT, what="b primary")
        wait_until(lambda: feed.publisher.failovers >= 1, WAIT, what="the feed to follow b")
        acked = feed.publisher.acked
        wait_until(lambda: feed.publisher.acked > acked + 50, WAIT, what="acks from b")
        sent = feed.finish()
        wait_until(lambda: sum(collector.ids.values()) >= sent, WAIT, what="the subscriber")
        wait_until(lambda: sum(rdb_ids(rdb).values()) >= sent, WAIT, what="the RDB")
        check_exactly(sent, journal_ids(pair.journal("b")), collector.ids, rdb_ids(rdb))
        assert pair.role("b")["epoch"] == 2
        assert pair.stats("b")["gc_frozen"] > 10_000
        # b started from the state its mirror kept: it read no journal at the takeover.
        assert "as mirrored" in pair.procs["b"].log()
    finally:
        feed.stop.set()
        collector.close()
    # The old primary comes back: a standby of b, its journal b's byte for byte.
    pair.start("a")
    wait_until(lambda: pair.role("a").get("role") == "standby", WAIT, what="a standby")
    wait_until(lambda: pair.attached("b"), WAIT, what="a attached to b")
    wait_until(lambda: same_files(pair.journal("a"), pair.journal("b")), WAIT, what="same journals")


def test_sigstop_primary_is_fenced_and_rejoins(pair: Pair) -> None:
    start_pair(pair)
    a = pair.procs["a"]
    feed = Feed(pair.both)
    probe = zmq.Context.instance().socket(zmq.DEALER)
    probe.setsockopt(zmq.LINGER, 0)
    try:
        wait_until(lambda: feed.publisher.acked > 50, WAIT, what="acks from a")
        os.kill(a.popen.pid, signal.SIGSTOP)
        # A write that reaches the frozen primary: it must never be acknowledged.
        probe.connect(pair.addresses["a"])
        probe.send_multipart([encode_upd(os.urandom(16), 1, 1, b"trade", probe_payload(feed))])
        wait_until(lambda: pair.role("b").get("role") == "primary", WAIT, what="b primary")
        wait_until(lambda: feed.publisher.failovers >= 1, WAIT, what="the feed to follow b")
        acked = feed.publisher.acked
        wait_until(lambda: feed.publisher.acked > acked + 50, WAIT, what="acks from b")
        os.kill(a.popen.pid, signal.SIGCONT)
        wait_until(lambda: pair.role("a").get("role") == "standby", WAIT, what="a fenced")
        sent = feed.finish()
        wait_until(lambda: pair.attached("b"), WAIT, what="a attached to b")
        if probe.poll(100):
            raise AssertionError(f"the fenced primary answered a write: {probe.recv_multipart()!r}")
        check_exactly(sent, journal_ids(pair.journal("b")))
        wait_until(
            lambda: same_files(pair.journal("a"), pair.journal("b")), WAIT, what="same journals"
        )
        assert "fenced" in a.log()
    finally:
        feed.stop.set()
        probe.close(0)
        if a.alive():
            os.kill(a.popen.pid, signal.SIGCONT)


@pytest.mark.parametrize("pair", ["sync", "async"], indirect=True)
def test_frozen_standby(pair: Pair) -> None:
    """Sync: no ack while an attached standby lacks the batch; a silent standby is dropped
    and the primary goes on alone. Async: acks never wait for it. Either way the standby,
    resumed, catches up to the same bytes."""
    start_pair(pair)
    b = pair.procs["b"]
    publisher = Publisher(pair.both, timeout_s=20)
    try:
        publisher.publish("trade", sym="AAPL", price=1.0, size=1)
        publisher.flush()
        os.kill(b.popen.pid, signal.SIGSTOP)
        publisher.publish("trade", sym="AAPL", price=1.0, size=2)
        publisher.flush()
        stats = pair.stats("a")
        if pair.mode == "sync":  # acknowledged only once b no longer counted
            assert not stats["standby_attached"]
        else:  # acknowledged while b, still counted, lacks it
            assert stats["standby_seq"] < stats["seq"]
        os.kill(b.popen.pid, signal.SIGCONT)
        wait_until(lambda: pair.attached("a"), WAIT, what="b attached again")
        wait_until(
            lambda: same_files(pair.journal("a"), pair.journal("b")), WAIT, what="same journals"
        )
        assert publisher.failovers == 0
    finally:
        publisher.close(flush=False)
        if b.alive():
            os.kill(b.popen.pid, signal.SIGCONT)


def probe_payload(feed: Feed) -> bytes:
    table = to_arrow(
        {"sym": ["PROBE"], "price": [1.0], "size": [0]}, feed.publisher.schemas["trade"]
    )
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())
