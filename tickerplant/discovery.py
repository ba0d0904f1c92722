"""One address per tickerplant: ask it for everything else.

``HELLO`` on the main address returns the publish and replay endpoints, the table schemas,
the current sequence number and session, so a client only ever needs ``tcp://host:port``.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

import zmq

from tickerplant.protocol import HELLO, PROTOCOL_VERSION
from tickerplant.schema import TableSchema


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


def request_hello(ctx: zmq.Context, address: str, timeout_s: float = 10.0) -> Hello:
    reply = request(ctx, address, [HELLO], timeout_s)
    return Hello.from_json(json.loads(reply[1]))
