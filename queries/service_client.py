"""The query client: one DEALER per request in flight, and never a hang.

Sockets come from a small pool, so one client can be shared by threads and run requests in
parallel. A request that gets no reply in time raises ``QueryError("unavailable")`` and its
socket is closed rather than returned, so a late reply to an abandoned request can never be
read as the answer to the next one: the next request uses a fresh socket (a fresh identity).
A request whose connection dies (the server killed, or nothing listening) fails at once
with ``unavailable`` instead of waiting out its time limit (``queries.service_link``), so
a caller with another copy of the data can ask it within the same limit.

With ``[curve]`` on, ``curve=`` (or the component's config, or ``TICKDB_CURVE_KEY`` and
``TICKDB_CURVE_SERVER_KEY``: ``tickdb.curve_links``) gives the client's keys.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import zmq

from queries.service_link import Link, LinkLost
from queries.service_protocol import (
    ERR,
    INFO,
    OK,
    QueryError,
    QueryResult,
    SymScope,
    decode_result,
    encode_request,
)
from tickdb.curve_links import CurveClient, client_keys

# Time allowed on top of the query's own limit for queueing on the wire and the transfer.
_GRACE_S = 2.0
_GRACE_FRACTION = 0.1
_MAX_IDLE_SOCKETS = 8


class QueryClient:
    """Talks to one QueryServer. ``timeout_s`` bounds every wait for a reply."""

    def __init__(
        self, address: str, timeout_s: float = 30.0, curve: CurveClient | None = None
    ) -> None:
        self.address = address
        self.timeout_s = timeout_s
        self._curve = client_keys(curve)
        self._ctx: zmq.Context[Any] = zmq.Context.instance()
        self._idle: list[Link] = []
        # Connections seen to drop (the server stopped or restarted), for diagnostics.
        self.connections_lost = 0
        self._lock = threading.Lock()
        self._closed = False

    def query(
        self,
        sql: str,
        *,
        timeout_s: float | None = None,
        max_rows: int | None = None,
        syms: SymScope | None = None,
    ) -> QueryResult:
        """Run ``sql`` on the server; raises QueryError (``kind`` says why).

        ``syms``: the sender's promise that the rows ``sql`` reads from each named table all
        have one of its syms (``QueryRequest.syms``).
        """
        limit = self.timeout_s if timeout_s is None else timeout_s
        reply = self._request(encode_request(sql, limit, max_rows, syms), _wait_for(limit))
        tag = reply[0].bytes
        if tag == OK and len(reply) == 3:
            try:
                return decode_result(reply[1].bytes, reply[2].buffer)
            except (ValueError, KeyError, OSError) as exc:
                msg = f"malformed result from {self.address}: {exc}"
                raise QueryError("internal", msg) from None
        raise _error_from(tag, reply, self.address)

    def info(self, timeout_s: float | None = None) -> dict[str, Any]:
        """The server's INFO reply; ``timeout_s`` bounds the wait (default: the client's)."""
        reply = self._request([INFO], self.timeout_s if timeout_s is None else timeout_s)
        if reply[0].bytes == INFO and len(reply) == 2:
            return dict(json.loads(reply[1].bytes))
        raise _error_from(reply[0].bytes, reply, self.address)

    def call(self, tag: bytes, *frames: bytes) -> list[bytes]:
        """Send ``[tag, *frames]`` to an extra handler and return its reply frames.

        An ``ERR`` reply raises QueryError.
        """
        reply = self._request([tag, *frames], self.timeout_s)
        if reply[0].bytes == ERR:
            raise _error_from(ERR, reply, self.address)
        return [f.bytes for f in reply]

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for link in idle:
            link.close()

    def __enter__(self) -> QueryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- sockets ---------------------------------------------------------------------------

    def _checkout(self) -> Link:
        while True:
            with self._lock:
                if self._closed:
                    raise QueryError("unavailable", "client is closed")
                link = self._idle.pop() if self._idle else None
            if link is None:
                return Link(self._ctx, self.address, self._curve)
            if link.reusable():
                return link
            self.connections_lost += 1
            link.close()  # it lost its connection since its last request: a fresh one

    def _checkin(self, link: Link) -> None:
        with self._lock:
            if not self._closed and len(self._idle) < _MAX_IDLE_SOCKETS:
                self._idle.append(link)
                return
        link.close()

    def _request(self, frames: list[bytes], wait_s: float) -> list[zmq.Frame]:
        link = self._checkout()
        try:
            link.sock.setsockopt(zmq.SNDTIMEO, max(1, int(wait_s * 1000)))
            link.sock.send_multipart(frames)
            if not link.wait_reply(int(wait_s * 1000)):
                why = "backend down, overloaded or unreachable"
                if self._curve is not None:
                    why += ", or this client's CURVE key refused"
                raise QueryError(
                    "unavailable", f"no reply from {self.address} within {wait_s:g}s ({why})"
                )
            reply = link.sock.recv_multipart(copy=False)
        except zmq.Again:
            link.close()
            why = "nothing connected within the time limit"
            if self._curve is not None:
                why += ": down, or this client's CURVE key refused"
            raise QueryError("unavailable", f"cannot send to {self.address} ({why})") from None
        except LinkLost as exc:
            self.connections_lost += 1
            link.close()
            raise QueryError("unavailable", str(exc)) from None
        except BaseException:
            link.close()  # its reply may still come: never reuse this socket
            raise
        self._checkin(link)
        if not reply:
            raise QueryError("internal", f"empty reply from {self.address}")
        return reply


def _wait_for(limit: float) -> float:
    return limit + max(_GRACE_S, limit * _GRACE_FRACTION)


def _error_from(tag: bytes, reply: list[Any], address: str) -> QueryError:
    if tag == ERR and len(reply) == 2:
        payload = reply[1].bytes if isinstance(reply[1], zmq.Frame) else reply[1]
        return QueryError.from_payload(payload)
    return QueryError("internal", f"unexpected reply {tag[:40]!r} from {address}")
