"""The benchmark scripts' waits: a condition polled until it holds or time runs out, and a
socket's next message within a deadline finer than a millisecond."""

from __future__ import annotations

import select
import time
from collections.abc import Callable
from typing import Any

import zmq


def wait_for(condition: Callable[[], Any], timeout_s: float, what: str) -> Any:
    """``condition()``'s first truthy value; ``TimeoutError`` naming ``what`` after
    ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} after {timeout_s}s")
        time.sleep(0.005)
    return value


def readable_within(sock: zmq.Socket[Any], seconds: float) -> bool:
    """Whether ``sock`` has a message to read within ``seconds``, to the microsecond.

    ``zmq.Socket.poll`` counts whole milliseconds: a pacer that polls for ``int(ms)`` until
    its next send is due polls 0 ms, again and again, for most of every interval under a
    millisecond, and spins a core the stack under test needs (one of two here). This waits
    on the socket's descriptor instead, which signals (edge-triggered) when its events
    change, so ``EVENTS`` is read again after every wake-up.
    """
    if int(sock.getsockopt(zmq.EVENTS)) & zmq.POLLIN:
        return True
    fd = int(sock.getsockopt(zmq.FD))
    deadline = time.perf_counter() + seconds
    while (left := deadline - time.perf_counter()) > 0:
        select.select([fd], [], [], left)
        if int(sock.getsockopt(zmq.EVENTS)) & zmq.POLLIN:
            return True
    return False
