"""Clients across a tickerplant crash (``kill -9``) and restart on the same address.

A subscriber follows a restart in any phase: while asking HELLO, during its replay, and live.
A publisher resends what the crash lost once, in order, without a storm of duplicates.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

from support.harness import Proc, wait_until
from support.tp_delivery import Restartable, drain, sizes, tp_stats, trades

from tickerplant.publisher import Publisher
from tickerplant.subscriber import Subscriber

BATCH = 1000


class Feed:
    """Publishes batches of trades (``rows`` each) on a thread until stopped; sizes count
    up. Given a ``Publisher`` (made while its tickerplant answered), publishes through it."""

    def __init__(self, address: str | Publisher, rows: int = BATCH, **options: Any) -> None:
        self.pub = address if isinstance(address, Publisher) else Publisher(address, **options)
        self.rows = rows
        self.sent = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self.pub.publish("trade", trades(self.sent, self.rows))
                self.sent += self.rows
        except BaseException as exc:
            self.error = exc

    def stop(self) -> int:
        self._stop.set()
        self._thread.join(60)
        assert self.error is None, self.error
        self.pub.flush(timeout_s=60)
        self.pub.close()
        return self.sent


def unread_bytes_on_port(port: int) -> bool:
    """Whether a connection to ``port`` has bytes its (stopped) owner has not read."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            next(f)
            for line in f:
                fields = line.split()
                local, state, queues = fields[1], fields[3], fields[4]
                unread = int(queues.split(":")[1], 16)
                if state == "01" and int(local.split(":")[1], 16) == port and unread > 0:
                    return True
    return False


class Constructing(threading.Thread):
    """Builds a Subscriber on a thread, so the test can crash the tickerplant meanwhile."""

    def __init__(self, factory: Any) -> None:
        super().__init__(daemon=True)
        self.factory = factory
        self.sub: Subscriber | None = None
        self.error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            self.sub = self.factory()
        except BaseException as exc:
            self.error = exc


def test_subscriber_whose_hello_dies_with_the_tickerplant_follows_the_restart(
    tmp_path: Path, procs: list[Proc]
) -> None:
    tp = Restartable(tmp_path, procs)
    feed = Feed(tp.address, resend_after_s=0.3)
    wait_until(lambda: feed.pub.acked >= 20, 20, "a session to replay")
    # Freeze the tickerplant so the HELLO lands in its socket buffer, then kill it there:
    # the HELLO is lost with it, and the new tickerplant never sees it.
    os.kill(tp.proc.popen.pid, signal.SIGSTOP)
    join = Constructing(
        lambda: Subscriber(tp.address, tables=["trade"], start="session", timeout_s=10)
    )
    wait_until(lambda: unread_bytes_on_port(tp.port), 10, "the HELLO in the frozen socket")
    tp.crash_and_restart()
    join.join(8)  # well within the subscriber's 10 s: it asked again
    assert join.error is None, join.error
    assert join.sub is not None
    total = feed.stop()
    try:
        assert sizes(drain(join.sub, total, timeout=30)) == list(range(total))
    finally:
        join.sub.close()


def test_subscriber_whose_replay_dies_with_the_tickerplant_follows_the_restart(
    tmp_path: Path, procs: list[Proc]
) -> None:
    tp = Restartable(tmp_path, procs)
    feed = Feed(tp.address, resend_after_s=0.3)
    wait_until(lambda: feed.pub.acked >= 50, 20, "a session to replay")
    replaying, crashed = threading.Event(), threading.Event()

    class Probe(Subscriber):
        def _send_replay(self, upto: int) -> Any:
            if not replaying.is_set():
                replaying.set()  # the first replay request: hold it until the crash
                crashed.wait(20)
            return super()._send_replay(upto)

    join = Constructing(lambda: Probe(tp.address, tables=["trade"], start="session"))
    wait_until(replaying.is_set, 10, "the replay request")
    tp.crash_and_restart()  # the replay endpoint it was told is gone; a new one is elsewhere
    crashed.set()
    join.join(8)
    assert join.error is None, join.error
    assert join.sub is not None
    total = feed.stop()
    try:
        assert sizes(drain(join.sub, total, timeout=30)) == list(range(total))
    finally:
        join.sub.close()


def test_late_join_racing_a_crash_resumes(tmp_path: Path, procs: list[Proc]) -> None:
    """The reported race: join while 1000-row batches stream, crash a moment later."""
    tp = Restartable(tmp_path, procs)
    feed = Feed(tp.address, resend_after_s=0.3)
    wait_until(lambda: feed.pub.acked >= 20, 20, "a session to replay")
    join = Constructing(lambda: Subscriber(tp.address, tables=["trade"], start="session"))
    tp.crash_and_restart()
    join.join(8)
    assert join.error is None, join.error
    assert join.sub is not None
    total = feed.stop()
    try:
        assert sizes(drain(join.sub, total, timeout=30)) == list(range(total))
    finally:
        join.sub.close()


def test_restart_after_an_outage_resends_each_batch_once_paced_by_acks(
    tmp_path: Path, procs: list[Proc]
) -> None:
    """A feed that keeps publishing through a 3 s outage: it blocks when its window is full,
    queues nothing for the dead tickerplant, and after the restart sends what is
    unacknowledged once, in order; ingest is current about a second later."""
    window = 2000
    tp = Restartable(tmp_path, procs)
    pub = Publisher(tp.address, max_inflight=window, resend_after_s=0.3)
    sent = 0
    stop = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        nonlocal sent
        try:
            while not stop.is_set():
                pub.publish("trade", trades(sent, 10))
                sent += 10
        except BaseException as exc:
            errors.append(exc)

    feeder = threading.Thread(target=run, daemon=True)
    feeder.start()
    wait_until(lambda: pub.acked >= 500, 20, "the feed running")
    tp.proc.kill9()
    down_at = time.monotonic()
    wait_until(
        lambda: pub.inflight >= window and time.monotonic() - down_at > 3, 20, "a 3 s outage"
    )
    assert pub.inflight <= window  # memory bounded by the window: publish blocks
    assert pub.resends == 0  # nothing was sent into the void while it was down
    tp.proc = tp.start()
    restarted = time.monotonic()
    backlog = sent // 10
    wait_until(lambda: pub.acked >= backlog, 20, "the backlog acknowledged")
    caught_up = time.monotonic() - restarted
    stop.set()
    feeder.join(30)
    assert not errors, errors
    pub.flush(timeout_s=30)
    pub.close()
    stats = tp_stats(tp.address)
    # Each unacknowledged batch went again once (those the old connection took and lost),
    # never a window per out-of-order batch.
    assert pub.resends <= window, pub.resends
    assert stats["duplicates"] <= window, stats
    assert caught_up < 1.0, f"{caught_up:.2f}s to catch up after the restart"
    replayed = Subscriber(tp.address, tables=["trade"], start="journal")
    try:
        assert sizes(drain(replayed, sent, timeout=30)) == list(range(sent))
    finally:
        replayed.close()


def test_the_window_in_bytes_bounds_what_a_publisher_holds(
    tmp_path: Path, procs: list[Proc]
) -> None:
    """With the tickerplant stopped, a feed of 200-row tables blocks once its unacknowledged
    frames reach ``max_inflight_bytes``, far below ``max_inflight`` batches; once the
    tickerplant runs again every row arrives, once and in order."""
    tp = Restartable(tmp_path, procs)
    limit = 64 << 10
    pub = Publisher(tp.address, max_inflight=10_000, max_inflight_bytes=limit, timeout_s=60)
    wait_until(lambda: pub.acked == 0 and pub.inflight == 0, 5, "a fresh publisher")
    os.kill(tp.proc.popen.pid, signal.SIGSTOP)
    try:
        feed = Feed(pub, rows=200)

        def window_full() -> bool:
            frames = pub.inflight
            # Nearly full (frames differ by a few bytes), and the feed is waiting: every
            # table it published is in flight, none acknowledged.
            nearly = frames > 1 and pub.inflight_bytes + 2 * pub.inflight_bytes // frames > limit
            return nearly and feed.sent == frames * 200

        wait_until(window_full, 20, "the window full")
        held = feed.sent
        assert pub.inflight_bytes <= limit
        assert pub.inflight < 10_000
    finally:
        os.kill(tp.proc.popen.pid, signal.SIGCONT)
    wait_until(lambda: feed.sent > held + 2000, 30, "the feed going on once acknowledged")
    sent = feed.stop()
    replayed = Subscriber(tp.address, tables=["trade"], start="journal")
    try:
        assert sizes(drain(replayed, sent, timeout=30)) == list(range(sent))
    finally:
        replayed.close()
