"""Bounds on what one client can make the gateway hold: request bodies, queries at once.

An ASGI middleware in front of ``POST /query`` and ``POST /query/plan``, so a refusal costs
no worker thread and no parsing (the kdb+ port counts its queries in the same
``ClientQueries``, ``gateway.kdb_port``):

* a body larger than the query text limit allows (``gateway.max_query_chars``, with room
  for JSON escapes) is answered 413 before it is read further;
* each client may have ``gateway.client_queries`` queries running at once; the next gets 429
  with a message saying so. Queries run on a shared pool of worker threads and the
  backends' request slots: without this, one client's slow queries starved everyone else.

Who "a client" is: ``client_key`` alone decides - the authenticated user when the request
carries one (over HTTP ``scope["state"]["user"]``, where authentication that runs before
this middleware puts it; over kdb+ the login, when the port checks passwords), else the
remote address.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("gateway.query")

LIMITED_PATHS = frozenset({"/query", "/query/plan"})
# A query character takes at most 12 bytes of JSON (an escaped surrogate pair); the rest of
# the body (format, limits) fits in the slack.
_BYTES_PER_CHAR = 12
_BODY_SLACK = 64 * 1024


def client_key(user: str | None, address: str | None) -> str:
    """Whom a query counts against: its authenticated user, else its remote address."""
    if user:
        return f"user {user}"
    return f"address {address or 'unknown'}"


def http_client_key(scope: Scope, identify: Callable[[Scope], str | None] | None = None) -> str:
    client = scope.get("client")
    user = (scope.get("state") or {}).get("user") or (identify(scope) if identify else None)
    return client_key(user, client[0] if client else None)


def max_body_bytes(max_query_chars: int) -> int:
    return max_query_chars * _BYTES_PER_CHAR + _BODY_SLACK


class ClientQueries:
    """Queries running per client; ``enter`` refuses past the limit instead of waiting."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("client_queries must be at least 1")
        self.limit = limit
        self._running: dict[str, int] = {}
        self._lock = threading.Lock()
        self.refused = 0  # plain counter, for tests and logs

    def enter(self, key: str) -> bool:
        with self._lock:
            running = self._running.get(key, 0)
            if running >= self.limit:
                self.refused += 1
                return False
            self._running[key] = running + 1
            return True

    def refusal(self, key: str) -> str:
        return (
            f"{key} already has {self.limit} queries running, the gateway's limit per client "
            "(gateway.client_queries); retry when one has finished"
        )

    def leave(self, key: str) -> None:
        with self._lock:
            running = self._running.get(key, 0) - 1
            if running > 0:
                self._running[key] = running
            else:
                self._running.pop(key, None)

    def running(self, key: str | None = None) -> int:
        """Queries running for ``key``, or for every client."""
        with self._lock:
            return sum(self._running.values()) if key is None else self._running.get(key, 0)


class ClientQueriesCollector(Collector):
    """``/metrics``: queries running now and queries refused for their client's limit."""

    def __init__(self, queries: ClientQueries) -> None:
        self.queries = queries

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        yield GaugeMetricFamily(
            "tickdb_gateway_queries_running",
            "HTTP queries running now, all clients",
            value=float(self.queries.running()),
        )
        yield CounterMetricFamily(
            "tickdb_gateway_queries_refused_client_limit",
            "HTTP queries refused (429) because their client had gateway.client_queries running",
            value=float(self.queries.refused),
        )


class QueryAdmission:
    """The middleware: body size (413) and queries per client (429) for the query paths."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_query_chars: int,
        queries: ClientQueries,
        identify: Callable[[Scope], str | None] | None = None,
    ) -> None:
        self.app = app
        # Who a request is before its route authenticates it (``HttpAuth.counted_user``).
        self.identify = identify
        self.max_body = max_body_bytes(max_query_chars)
        self.queries = queries

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in LIMITED_PATHS:
            await self.app(scope, receive, send)
            return
        key = http_client_key(scope, self.identify)
        body = await self._body(scope, receive)
        if body is None:
            log.warning("query refused from %s: body over %d bytes", key, self.max_body)
            await _error(send, 413, "bad_query", f"request body over {self.max_body} bytes")
            return
        if not self.queries.enter(key):
            log.warning("query refused from %s: %d queries running", key, self.queries.limit)
            message = self.queries.refusal(key)
            await _error(send, 429, "too_many_queries", message, {"retry-after": "1"})
            return
        try:
            await self.app(scope, _replay(body, receive), send)
        finally:
            self.queries.leave(key)

    async def _body(self, scope: Scope, receive: Receive) -> bytes | None:
        """The whole body, or None as soon as it is known to be over the limit."""
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_body:
                return None
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break  # the client went away: the app sees an empty body and fails it
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # a disconnect, as the app would have seen it

    return replay


async def _error(
    send: Send, status: int, kind: str, message: str, headers: dict[str, str] | None = None
) -> None:
    payload = json.dumps({"error": kind, "message": message}).encode()
    raw: list[Any] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
    ]
    raw += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": payload})
