"""One address per tickerplant: ask it for everything else.

``HELLO`` on the main address returns the publish and replay endpoints, the table schemas,
the current sequence number and session, so a client only ever needs ``tcp://host:port``.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass
from typing import Any

import zmq

from tickdb.schema import TableSchema
from tickerplant.protocol import HELLO, PROTOCOL_VERSION


class TickerplantUnavailable(ConnectionError):
    """No answer from the tickerplant in time."""


@dataclass(frozen=True)
class Hello:
    address: str
    publish: str
    replay: str
    seq: int
    session: dt.date
    session_start_seq: int
    epoch: int
    heartbeat_ms: int
    schemas: dict[str, TableSchema]
    raw: dict[str, Any]

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Hello:
        if raw.get("protocol") != PROTOCOL_VERSION:
            raise ConnectionError(
                f"tickerplant speaks protocol {raw.get('protocol')}, "
                f"this client speaks {PROTOCOL_VERSION}"
            )
        schemas = {t["name"]: TableSchema.from_json(t) for t in raw["tables"]}
        return cls(
            raw["address"],
            raw["publish"],
            raw["replay"],
            int(raw["seq"]),
            dt.date.fromisoformat(raw["session"]),
            int(raw["session_start_seq"]),
            int(raw["epoch"]),
            int(raw["heartbeat_ms"]),
            schemas,
            raw,
        )


def request(ctx: zmq.Context, address: str, frames: list[bytes], timeout_s: float) -> list[bytes]:
    """One request/reply on a fresh DEALER, so a lost reply never poisons a socket."""
    socket = ctx.socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    try:
        socket.connect(address)
        socket.send_multipart(frames)
        if not socket.poll(int(timeout_s * 1000)):
            raise TickerplantUnavailable(
                f"no answer from a tickerplant at {address} within {timeout_s}s"
            )
        return socket.recv_multipart()
    finally:
        socket.close(0)


# How long one HELLO waits before it is asked again on a fresh socket. A tickerplant killed
# after reading a HELLO never answers it, and its successor on the same address never sees
# it: asking again is what lets a client that is starting follow a restart.
HELLO_RETRY_S = 0.5


def request_hello(
    ctx: zmq.Context, address: str, timeout_s: float = 10.0, retry_s: float = HELLO_RETRY_S
) -> Hello:
    """The tickerplant's HELLO, asked again every ``retry_s`` (HELLO has no side effect)
    until ``timeout_s``; raises ``TickerplantUnavailable`` when none answered."""
    deadline = time.monotonic() + timeout_s
    while True:
        wait = min(retry_s, deadline - time.monotonic())
        try:
            reply = request(ctx, address, [HELLO], max(wait, 0.001))
        except TickerplantUnavailable:
            if time.monotonic() >= deadline:
                raise TickerplantUnavailable(
                    f"no answer from a tickerplant at {address} within {timeout_s}s"
                ) from None
            continue
        return Hello.from_json(json.loads(reply[1]))
