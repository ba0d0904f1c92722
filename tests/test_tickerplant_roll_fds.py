"""End of day with no file descriptor left: the tickerplant keeps serving, retries the
roll, and loses nothing it acknowledged.

The roll opens the next session's journal; with every descriptor in use (clients' idle
connections, here the process's own limit lowered to nothing with ``prlimit``) that open
fails. It used to raise out of the loop and stop the process, the old journal already
closed with its end-of-day record.
"""

from __future__ import annotations

import datetime as dt
import errno
import json
import resource
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq
from support.harness import EPHEMERAL_TP, Proc, start_tp, wait_until, write_config

from tickdb.config import load_config
from tickerplant import roll_retry
from tickerplant.clock import ManualClock, datetime_to_ns
from tickerplant.journal import JournalIndex, JournalWriter, journal_path, read_journal
from tickerplant.protocol import (
    END,
    ERR,
    KIND_EOD,
    KIND_UPD,
    REPLAY,
    ROLL,
    STATS,
    encode_record,
    encode_upd,
)
from tickerplant.publisher import Publisher
from tickerplant.server import Tickerplant
from tickerplant.subscriber import EndOfDay, Subscriber, Update


class Control:
    """Requests on DEALERs connected while descriptors were still free."""

    def __init__(self, tp: Proc) -> None:
        self.ctx = zmq.Context()
        self.main = self._dealer(tp.info["address"])
        self.replay = self._dealer(tp.info["replay"])

    def _dealer(self, address: str) -> zmq.Socket:
        socket = self.ctx.socket(zmq.DEALER)
        socket.setsockopt(zmq.LINGER, 0)
        socket.connect(address)
        return socket

    @staticmethod
    def ask(socket: zmq.Socket, frames: list[bytes]) -> list[bytes]:
        socket.send_multipart(frames)
        assert socket.poll(10_000), f"no answer to {frames[0]!r}"
        return socket.recv_multipart()

    def stats(self) -> dict[str, Any]:
        return dict(json.loads(self.ask(self.main, [STATS])[1]))

    def replay_all(self) -> list[bytes]:
        """A whole replay's frames, up to END or ERR."""
        self.replay.send_multipart([REPLAY, b'{"after": 0}'])
        frames: list[bytes] = []
        while True:
            assert self.replay.poll(10_000), "replay went quiet"
            reply = self.replay.recv_multipart()
            frames.append(reply[0])
            if reply[0] in (END, ERR):
                return frames + reply[1:]

    def close(self) -> None:
        self.ctx.destroy(linger=0)


@pytest.fixture
def tp(tmp_path: Path, procs: list[Proc]) -> Iterator[Proc]:
    proc = start_tp(tmp_path)
    procs.append(proc)
    yield proc


def journal(tp: Proc) -> list[Update | EndOfDay]:
    """Every record from seq 1, by replay."""
    got: list[Update | EndOfDay] = []
    with Subscriber(tp.info["address"], tables=["trade"], start="journal") as sub:
        while (message := sub.poll(0.5)) is not None:
            got.append(message)
    return got


def test_a_roll_with_no_descriptor_left_keeps_serving_and_loses_nothing(tp: Proc) -> None:
    pid = tp.popen.pid
    control = Control(tp)
    pub = Publisher(tp.info["address"])
    for size in range(3):
        pub.publish("trade", sym="A", price=1.0, size=size)
    pub.flush()
    assert control.stats()["rows"] == 3
    assert control.replay_all()[-2] == END  # both connections up before the limit
    soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    # No descriptor number is free below 3: every open, socket or accept now fails (EMFILE).
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (3, hard))
    try:
        reply = Control.ask(control.main, [ROLL])
        assert reply[0] == ERR, reply
        message = reply[2].decode()
        assert "Too many open files" in message and "goes on in its own journal" in message
        # Ingest goes on, into the session's own journal, every batch acknowledged.
        for size in range(3, 6):
            pub.publish("trade", sym="B", price=2.0, size=size)
        pub.flush()
        stats = control.stats()
        assert (stats["rows"], stats["rolls"]) == (6, 0)
        assert stats["roll_failures"] >= 1 and "Too many open files" in stats["journal_error"]
        # A replay cannot open the journal: an error for it, and the replay thread lives on.
        replayed = control.replay_all()
        assert replayed[0] == ERR and b"cannot read the journal now" in replayed[-1]
        wait_until(lambda: control.stats()["roll_failures"] >= 3, 10, "the roll retried")
        assert tp.alive()
    finally:
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (soft, hard))
    # Descriptors again: the retry rolls; the end of day follows what it had taken meanwhile.
    wait_until(lambda: control.stats()["rolls"] == 1, 10, "the roll once descriptors are back")
    assert control.stats()["journal_error"] is None
    assert "cannot open the journal of session" in tp.log()
    assert "opened after" in tp.log()
    pub.publish("trade", sym="C", price=3.0, size=6)
    pub.flush()
    pub.close()
    assert control.replay_all()[-2] == END
    control.close()
    got = journal(tp)
    kinds = [type(m).__name__ for m in got]
    assert kinds == ["Update"] * (len(got) - 2) + ["EndOfDay", "Update"], kinds
    sizes = [s for m in got if isinstance(m, Update) for s in m.data.column("size").to_pylist()]
    assert sizes == list(range(7))  # every acknowledged row, once, in order
    assert [m.seq for m in got] == list(range(1, len(got) + 1))


@pytest.fixture
def in_process(tmp_path: Path) -> Iterator[Tickerplant]:
    """A tickerplant in this process a minute before midnight UTC, on a manual clock."""
    config = write_config(tmp_path / "tp.toml", {"tickerplant": EPHEMERAL_TP})
    clock = ManualClock(datetime_to_ns(dt.datetime(2026, 3, 2, 23, 59, tzinfo=dt.UTC)))
    tp = Tickerplant(load_config(config, data_dir=tmp_path / "data"), clock=clock)
    replies: list[list[bytes]] = []
    tp.ingest.send_multipart = replies.append  # type: ignore[method-assign,assignment]
    yield tp
    tp.replay.start()  # _shutdown stops it
    tp._shutdown()


def test_a_scheduled_roll_whose_journal_will_not_open_is_retried(
    in_process: Tickerplant, monkeypatch: pytest.MonkeyPatch
) -> None:
    tp = in_process
    clock = tp.clock
    assert isinstance(clock, ManualClock)
    monkeypatch.setattr(roll_retry, "RETRY_S", 0.0)
    opened = tp._open_journal
    refusals = [3]

    def no_descriptors(session: dt.date) -> JournalWriter:
        if refusals[0]:
            refusals[0] -= 1
            raise OSError(errno.EMFILE, "Too many open files", str(journal_path(".", session)))
        return opened(session)

    monkeypatch.setattr(tp, "_open_journal", no_descriptors)
    old = tp.journal.path
    clock.advance(61)  # past midnight: the roll is due
    for batch in (1, 2, 3):  # a check of the roll, then a batch, three times
        tp._check_roll()
        frame = encode_upd(b"p" * 16, batch, 1, b"trade", trade_row(batch))
        tp._handle([b"peer", frame])
        tp._end_turn()
        tp._commit()
    assert (tp.counters.roll_failures, tp.counters.rolls) == (3, 0)
    assert tp.session == dt.date(2026, 3, 2) and tp.journal.path == old
    tp._check_roll()  # the fourth try opens
    assert tp.counters.rolls == 1 and tp.session == dt.date(2026, 3, 3)
    records = list(read_journal(old))
    assert [r.kind for r in records] == [KIND_UPD] * 3 + [KIND_EOD]
    assert tp.stats()["journal_error"] is None


def trade_row(size: int) -> bytes:
    import pyarrow as pa

    from tickerplant.ingest import encode_stream

    table = pa.table({"sym": ["A"], "price": [1.0], "size": pa.array([size], pa.int64())})
    return encode_stream(table, table.schema)


def test_a_roll_stopped_between_its_two_files_ends_the_session_at_start(tmp_path: Path) -> None:
    # The roll had opened the next file and not yet written the end of day when it stopped.
    directory = tmp_path / "data" / "journal"
    directory.mkdir(parents=True)
    day = journal_path(directory, dt.date(2026, 3, 2))
    writer = JournalWriter(day, JournalIndex())
    for seq in (1, 2):
        writer.append(encode_record(KIND_UPD, seq, 0, "trade", (), trade_row(seq)), seq)
    writer.close()
    JournalWriter(journal_path(directory, dt.date(2026, 3, 3)), JournalIndex()).close()
    config = write_config(tmp_path / "tp.toml", {"tickerplant": EPHEMERAL_TP})
    clock = ManualClock(datetime_to_ns(dt.datetime(2026, 3, 3, 0, 5, tzinfo=dt.UTC)))
    tp = Tickerplant(load_config(config, data_dir=tmp_path / "data"), clock=clock)
    try:
        assert (tp.seq, tp.session, tp.session_start_seq) == (3, dt.date(2026, 3, 3), 3)
        assert [r.kind for r in read_journal(day)] == [KIND_UPD, KIND_UPD, KIND_EOD]
    finally:
        tp.replay.start()
        tp._shutdown()
