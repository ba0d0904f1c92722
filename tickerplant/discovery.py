"""One address per tickerplant: ask it for everything else.

``HELLO`` on the main address returns the publish and replay endpoints, the table schemas,
the current sequence number and session, so a client only ever needs ``tcp://host:port``.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import zmq

from tickdb.curve_links import CurveClient, client_keys
from tickdb.schema import TableSchema
from tickerplant.protocol import ERR, HELLO, PROTOCOL_VERSION

CURVE_HINT = (
    " (CURVE: is this client's key in the [auth] of the stack, with a role this port needs, "
    "and the server's public key the stack's?)"
)


class TickerplantUnavailable(ConnectionError):
    """No answer from the tickerplant in time."""


class TickerplantRefused(PermissionError):
    """The tickerplant refused the request (``ERR``): the message says why."""


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

    def refusal(
        self, action: str, tables: Iterable[str], accounts: Iterable[str] | None = None
    ) -> str:
        """What of ``tables`` this client may not ``action`` ("read", "publish"), as the
        tickerplant told it in HELLO (with CURVE on); "" when it may, or was not told.
        Reading by ``accounts`` it trades needs no read role (``tickerplant.access``)."""
        access = self.raw.get("access")
        if not isinstance(access, dict) or access.get(action) == "*":
            return ""
        traded = access.get("trade") or ()
        if action == "read" and accounts and (traded == "*" or set(accounts) <= set(traded)):
            return ""
        denied = sorted(set(tables) - set(access.get(action) or ()))
        if not denied:
            return ""
        return f"{access.get('identity')!r} may not {action} {', '.join(denied)}"


def request(
    ctx: zmq.Context,
    address: str,
    frames: list[bytes],
    timeout_s: float,
    curve: CurveClient | None = None,
) -> list[bytes]:
    """One request/reply on a fresh DEALER, so a lost reply never poisons a socket.
    ``curve``: the client's keys (None: ``tickdb.curve_links.client_keys``'s)."""
    keys = client_keys(curve)
    socket = ctx.socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    try:
        if keys is not None:
            keys.apply(socket)
        socket.connect(address)
        socket.send_multipart(frames)
        if not socket.poll(int(timeout_s * 1000)):
            raise TickerplantUnavailable(
                f"no answer from a tickerplant at {address} within {timeout_s}s"
                + (CURVE_HINT if keys is not None else "")
            )
        return socket.recv_multipart()
    finally:
        socket.close(0)


def answer(reply: list[bytes], address: str) -> bytes:
    """The body of a reply to HELLO, STATS or ROLL; ``TickerplantRefused`` for an ``ERR``."""
    if reply[0] == ERR:
        raise TickerplantRefused(f"{address} refused: {reply[-1].decode(errors='replace')}")
    return reply[1]


# How long one HELLO waits before it is asked again on a fresh socket. A tickerplant killed
# after reading a HELLO never answers it, and its successor on the same address never sees
# it: asking again is what lets a client that is starting follow a restart.
HELLO_RETRY_S = 0.5


def request_hello(
    ctx: zmq.Context,
    address: str,
    timeout_s: float = 10.0,
    retry_s: float = HELLO_RETRY_S,
    curve: CurveClient | None = None,
) -> Hello:
    """The tickerplant's HELLO, asked again every ``retry_s`` (HELLO has no side effect)
    until ``timeout_s``; raises ``TickerplantUnavailable`` when none answered."""
    deadline = time.monotonic() + timeout_s
    while True:
        wait = min(retry_s, deadline - time.monotonic())
        try:
            reply = request(ctx, address, [HELLO], max(wait, 0.001), curve)
        except TickerplantUnavailable as exc:
            if time.monotonic() >= deadline:
                hint = CURVE_HINT if str(exc).endswith(CURVE_HINT) else ""
                raise TickerplantUnavailable(
                    f"no answer from a tickerplant at {address} within {timeout_s}s{hint}"
                ) from None
            continue
        return Hello.from_json(json.loads(answer(reply, address)))
