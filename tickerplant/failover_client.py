"""Clients of a tickerplant pair: several addresses, and which one is the primary now.

A ``Publisher`` or ``Subscriber`` given several addresses (a list, or one string of
comma-separated addresses, so a single ``--tp`` option carries a pair) talks to one at a
time: the primary. Only the primary answers ``HELLO`` (a standby binds no client port; a
fenced primary stops before it reads another request), so finding it is asking all of them
at once and taking the first answer (the highest epoch, should two answer together).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import zmq

from tickdb.curve_links import CurveClient, client_keys
from tickerplant.discovery import (
    Hello,
    TickerplantRefused,
    TickerplantUnavailable,
    answer,
    request_hello,
)
from tickerplant.protocol import HELLO

# How long one round of HELLOs waits before it is asked again on fresh sockets (a node
# promoted meanwhile binds its port after the first round was sent).
ROUND_S = 0.05


def addresses_of(address: str | Sequence[str]) -> list[str]:
    """``"tcp://a:1,tcp://b:1"`` or a list of addresses: the list (at least one)."""
    items = address.split(",") if isinstance(address, str) else list(address)
    found = [a.strip() for a in items if a.strip()]
    if not found:
        raise ValueError("no tickerplant address given")
    return found


def find_primary(
    ctx: zmq.Context[Any],
    addresses: list[str],
    timeout_s: float,
    curve: CurveClient | None = None,
) -> tuple[str, Hello]:
    """The address that answers as the tickerplant and its HELLO, asking all of them again
    every ``ROUND_S`` until ``timeout_s``; ``TickerplantUnavailable`` when none did."""
    if len(addresses) == 1:
        return addresses[0], request_hello(ctx, addresses[0], timeout_s, curve=curve)
    deadline = time.monotonic() + timeout_s
    while True:
        found = _one_round(ctx, addresses, min(ROUND_S, deadline - time.monotonic()), curve)
        if found is not None:
            return found
        if time.monotonic() >= deadline:
            raise TickerplantUnavailable(
                f"no tickerplant answered at {', '.join(addresses)} within {timeout_s}s"
            )


def _one_round(
    ctx: zmq.Context[Any], addresses: list[str], wait_s: float, curve: CurveClient | None
) -> tuple[str, Hello] | None:
    keys = client_keys(curve)
    poller = zmq.Poller()
    sockets: dict[zmq.Socket[Any], str] = {}
    try:
        for address in addresses:
            socket = ctx.socket(zmq.DEALER)
            socket.setsockopt(zmq.LINGER, 0)
            # A node promoted during the round binds its port then: connect within ms.
            socket.setsockopt(zmq.RECONNECT_IVL, 5)
            if keys is not None:
                keys.apply(socket)
            socket.connect(address)
            socket.send_multipart([HELLO])
            sockets[socket] = address
            poller.register(socket, zmq.POLLIN)
        best: tuple[str, Hello] | None = None
        deadline = time.monotonic() + max(wait_s, 0.001)
        while best is None and (left := deadline - time.monotonic()) > 0:
            for socket, _ in poller.poll(max(1, int(left * 1000))):
                address = sockets[socket]
                try:
                    hello = Hello.from_json(json.loads(answer(socket.recv_multipart(), address)))
                except (TickerplantRefused, ValueError, KeyError):
                    continue
                if best is None or hello.epoch > best[1].epoch:
                    best = address, hello
        return best
    finally:
        for socket in sockets:
            socket.close(0)
