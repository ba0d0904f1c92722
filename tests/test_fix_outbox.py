"""Execution reports go out from the thread that made them when the socket has room, else
through the FIX engine's thread, always in the order they were made."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

from fix.engine import SocketTransport
from gateway import fix_outbox
from gateway.fix_outbox import ReportOutbox


class FakeEngine:
    def __init__(self) -> None:
        self.calls: list[Callable[[], None]] = []

    def call_soon(self, fn: Callable[[], None]) -> None:
        self.calls.append(fn)

    def run_calls(self) -> None:
        calls, self.calls = self.calls, []
        for fn in calls:
            fn()


class FakeSession:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.room = True
        self.sent: list[tuple[str, str]] = []
        self.settings = SimpleNamespace(key="S-T")

    def writable_now(self) -> bool:
        return self.room

    def send(self, msg_type: str, body: list[Any]) -> int:
        self.sent.append((msg_type, body[0][1]))
        return len(self.sent)


def make() -> tuple[ReportOutbox, FakeEngine, FakeSession]:
    engine = FakeEngine()
    return ReportOutbox(engine), engine, FakeSession()  # type: ignore[arg-type]


@pytest.fixture
def no_quiet_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every report counts as alone (the burst rule is tested on its own)."""
    monkeypatch.setattr(fix_outbox, "QUIET_S", 0.0)


def test_a_report_goes_out_at_once_when_the_socket_has_room(no_quiet_time: None) -> None:
    outbox, engine, session = make()
    outbox.send(session, [(11, "a")])  # type: ignore[arg-type]
    outbox.send(session, [(11, "b")], "9")  # type: ignore[arg-type]
    assert session.sent == [("8", "a"), ("9", "b")]
    assert engine.calls == []
    assert (outbox.sent_at_once, outbox.handed_off) == (2, 0)


def test_a_burst_goes_to_the_engine_after_its_first_report() -> None:
    outbox, engine, session = make()
    for clordid in "abc":  # microseconds apart
        outbox.send(session, [(11, clordid)])  # type: ignore[arg-type]
    assert session.sent == [("8", "a")]
    engine.run_calls()
    assert session.sent == [("8", "a"), ("8", "b"), ("8", "c")]
    assert (outbox.sent_at_once, outbox.handed_off) == (1, 2)


def test_without_room_reports_queue_for_the_engine_and_later_ones_wait_behind_them(
    no_quiet_time: None,
) -> None:
    outbox, engine, session = make()
    session.room = False
    outbox.send(session, [(11, "a")])  # type: ignore[arg-type]
    session.room = True
    outbox.send(session, [(11, "b")])  # type: ignore[arg-type]  # must not overtake "a"
    assert session.sent == []
    assert len(engine.calls) == 1  # one wake-up for the queue
    engine.run_calls()
    assert session.sent == [("8", "a"), ("8", "b")]
    outbox.send(session, [(11, "c")])  # type: ignore[arg-type]  # queue empty again: at once
    assert session.sent[-1] == ("8", "c") and engine.calls == []


def test_a_session_locked_by_another_thread_is_not_waited_for(no_quiet_time: None) -> None:
    outbox, engine, session = make()
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with session.lock:
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    assert held.wait(10)
    outbox.send(session, [(11, "a")])  # type: ignore[arg-type]  # returns: no deadlock
    assert session.sent == [] and len(engine.calls) == 1
    release.set()
    holder.join(10)
    engine.run_calls()
    assert session.sent == [("8", "a")]


def test_a_failed_send_does_not_stop_the_reports_after_it() -> None:
    outbox, engine, session = make()
    session.room = False
    sent = session.sent

    def flaky(msg_type: str, body: list[Any]) -> int:
        if body[0][1] == "a":
            raise ValueError("encode failed")
        sent.append((msg_type, body[0][1]))
        return len(sent)

    session.send = flaky  # type: ignore[method-assign]
    outbox.send(session, [(11, "a")])  # type: ignore[arg-type]
    outbox.send(session, [(11, "b")])  # type: ignore[arg-type]
    engine.run_calls()
    assert sent == [("8", "b")]


def test_a_plain_socket_is_writable_until_its_send_buffer_is_full() -> None:
    left, right = socket.socketpair()
    try:
        transport = SocketTransport(left)
        assert transport.writable_now()
        left.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            while True:  # the peer reads nothing: fill both buffers
                left.send(b"x" * 65536)
        assert not transport.writable_now()
    finally:
        left.close()
        right.close()


def test_a_message_larger_than_the_send_buffer_goes_out_whole_and_in_order() -> None:
    left, right = socket.socketpair()
    left.settimeout(5.0)  # as the engine's sockets: non-blocking underneath
    left.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    got = bytearray()

    def read() -> None:
        while chunk := right.recv(65536):
            got.extend(chunk)

    reader = threading.Thread(target=read)
    try:
        transport = SocketTransport(left)
        big = bytes(range(256)) * 8192  # 2 MB: one write takes part, sendall the rest
        transport.send(b"first|")
        reader.start()
        transport.send(big)
        transport.send(b"|last")
        left.shutdown(socket.SHUT_WR)
        reader.join(10)
        assert bytes(got) == b"first|" + big + b"|last"
        transport.send(b"after")  # closed for writing: an error in the log, not raised
    finally:
        left.close()
        right.close()
