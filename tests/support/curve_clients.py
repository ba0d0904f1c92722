"""Raw ZeroMQ clients for the CURVE tests: with a key pair, with none, and what they get."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import zmq

from support.harness import wait_until
from tickdb.curve_links import CurveClient

QUIET_S = 0.4  # how long "nothing arrives" is watched for, once the refusal was seen


@contextmanager
def raw_socket(
    kind: int, endpoint: str, curve: CurveClient | None, subscribe: bytes | None = None
) -> Iterator[zmq.Socket[Any]]:
    """A socket of ``kind`` connected to ``endpoint``: a CURVE client with ``curve``,
    plaintext without; a SUB subscribes to ``subscribe``."""
    ctx: zmq.Context[Any] = zmq.Context()
    sock = ctx.socket(kind)
    sock.linger = 0
    if curve is not None:
        curve.apply(sock)
    if subscribe is not None:
        sock.subscribe(subscribe)
    sock.connect(endpoint)
    try:
        yield sock
    finally:
        sock.close(0)
        ctx.term()


def nothing_arrives(sock: zmq.Socket[Any], seconds: float = QUIET_S) -> bool:
    return not sock.poll(int(seconds * 1000))


def request(sock: zmq.Socket[Any], frames: list[bytes], timeout_s: float = 10.0) -> list[bytes]:
    sock.send_multipart(frames)
    assert sock.poll(int(timeout_s * 1000)), f"no answer to {frames[0][:20]!r}"
    return sock.recv_multipart()


def counted(read: Callable[[], dict[str, Any]], key: str, at_least: int = 1) -> bool:
    """Whether the counter ``key`` that ``read`` reports has reached ``at_least``."""
    return int(read().get(key, 0)) >= at_least


def wait_for_log(log: Callable[[], str], text: str, timeout: float = 10.0) -> None:
    wait_until(lambda: text in log(), timeout, what=f"{text!r} in the log")
