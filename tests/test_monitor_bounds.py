"""A socket whose monitor may sit unread never keeps queueing events.

libzmq's I/O thread sends monitor events with a blocking send: once an unread monitor's
pipe is full, that thread, and every socket of its context, stops for good. A socket that
reconnected to a stopped server would queue an event per attempt (ten a second), so the
sockets tickdb monitors while idle (the query client's pooled links, the order client's
ports) never reconnect: a stopped server leaves one event, then silence.
"""

from __future__ import annotations

import subprocess
import time
from typing import Any

import zmq
from support.harness import wait_until
from support.silent_server import connected
from zmq.utils.monitor import recv_monitor_message

from gateway.order_session import _Port
from queries.service_link import Link

# Ten reconnect intervals at libzmq's default of 100 ms: a reconnecting socket's monitor
# would get ten events in this window.
QUIET_MS = 1000


def events(monitor: zmq.Socket[Any], wait_ms: int) -> list[int]:
    """Every event queued on ``monitor``, and those arriving within ``wait_ms``."""
    seen = []
    deadline = time.monotonic() + wait_ms / 1000
    while monitor.poll(max(0, int((deadline - time.monotonic()) * 1000))):
        seen.append(recv_monitor_message(monitor)["event"])
        if time.monotonic() >= deadline:
            break
    return seen


def stop_and_watch(proc: subprocess.Popen[str], monitor: zmq.Socket[Any]) -> list[int]:
    """Kill the server; the events up to its disconnect, then those of the next second."""
    wait_until(lambda: connected(proc.pid), 10, "a connection")
    proc.kill()
    proc.wait(10)
    seen: list[int] = []
    wait_until(
        lambda: seen.extend(events(monitor, 50)) or zmq.EVENT_DISCONNECTED in seen,
        10,
        "the disconnect",
    )
    return events(monitor, QUIET_MS)


def test_an_idle_query_link_to_a_stopped_server_goes_quiet(
    silent: tuple[subprocess.Popen[str], str],
) -> None:
    proc, address = silent
    link = Link(zmq.Context.instance(), address)
    try:
        assert stop_and_watch(proc, link.monitor) == []
    finally:
        link.close()


def test_an_unused_order_port_to_a_stopped_gateway_goes_quiet(
    silent: tuple[subprocess.Popen[str], str],
) -> None:
    proc, address = silent
    ctx: zmq.Context[Any] = zmq.Context()
    port = _Port(ctx, address, None, watch=True)
    try:
        assert port.monitor is not None
        assert stop_and_watch(proc, port.monitor) == []
    finally:
        port.close()
        ctx.term()
