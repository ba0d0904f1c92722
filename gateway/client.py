"""``tickdb.Client``: query a gateway over HTTP and get ``pyarrow.Table`` results.

Results travel as Arrow IPC streams. The table's schema metadata carries the flags:
``tickdb.truncated``, ``tickdb.partial``, ``tickdb.missing`` (see ``Client.flags``).

With ``[auth]`` on at the gateway, give an API token (``Client(url, token=...)``, or the
``TICKDB_TOKEN`` environment variable): every request carries ``Authorization: Bearer``.

HTTP/1.1 runs on the standard library's ``http.client`` over kept-alive connections, one per
request in flight (a small pool, so a Client can be shared by threads). It reads a body of
known length in one buffered read, where a general-purpose client parses it in 64 KiB
pieces: half the time for a megabyte-sized result.

Several gateways: ``Client(["http://a:8000", "http://b:8000"])`` (or one comma-separated
string) sends to the first and, when it cannot be reached, sends the request again to the
next; order requests are safe to resend because the gateways share ClOrdIDs
(``docs/orders.md``, Several gateways).

``https://`` URLs speak TLS. ``verify`` says whom to trust: a CA file (``tickdb keys tls``
makes ``ca.crt``), an ``ssl.SSLContext``, True for the system's CAs (or the file in
``TICKDB_CA`` when it is set) or False for no check at all. ``cert`` is a client certificate
(one PEM file, or ``(cert, key)``) for a gateway that asks for one; ``TICKDB_CERT`` and
``TICKDB_KEY`` give it by default.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import ssl
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pyarrow as pa
import pyarrow.ipc as ipc

from gateway.client_errors import GatewayError, GatewayUnreachable, Reply
from gateway.order_client import OrderMethods, OrderRejected

DEFAULT_URL = "http://127.0.0.1:8000"
TOKEN_ENV = "TICKDB_TOKEN"  # the API token a Client sends when given none
ARROW_STREAM = "application/vnd.apache.arrow.stream"
_MAX_IDLE = 8  # idle connections kept per client
__all__ = ["Client", "GatewayError", "GatewayUnreachable", "OrderRejected", "Reply"]


Verify = bool | str | Path | ssl.SSLContext
ClientCert = str | Path | tuple[str | Path, str | Path]


def tls_context(verify: Verify = True, cert: ClientCert | None = None) -> ssl.SSLContext:
    """The client context for ``verify`` and ``cert`` as ``Client`` takes them."""
    if isinstance(verify, ssl.SSLContext):
        return verify
    from tickdb.tls import client_context

    if verify is True:
        ca: str | Path | None = os.environ.get("TICKDB_CA") or None
    else:
        ca = verify or None
    if cert is None and os.environ.get("TICKDB_CERT"):
        cert = (os.environ["TICKDB_CERT"], os.environ.get("TICKDB_KEY") or "")
    certfile, keyfile = cert if isinstance(cert, tuple) else (cert, None)
    return client_context(ca, cert=certfile, key=keyfile or None, verify=verify is not False)


class Client(OrderMethods):
    def __init__(
        self,
        url: str | Sequence[str] = DEFAULT_URL,
        *,
        timeout_s: float = 300.0,
        token: str | None = None,
        verify: Verify = True,
        cert: ClientCert | None = None,
    ) -> None:
        # Several gateways (a list, or one comma-separated string): requests go to the
        # first that answers, and move on to the next when it cannot be reached.
        self.urls = gateway_urls(url)
        self._endpoints = [_Endpoint(u, verify, cert) for u in self.urls]
        self._current = 0
        # The HTTP wait is longer than any query limit: the gateway answers in time or errs.
        self.timeout_s = timeout_s
        token = token if token is not None else os.environ.get(TOKEN_ENV, "")
        self._auth = {"Authorization": f"Bearer {token}"} if token else {}
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        self._closed = False
        self.failovers = 0  # times a request moved on to the next gateway

    @property
    def url(self) -> str:
        """The gateway requests go to now."""
        return self._endpoints[self._current].url

    def query(
        self,
        sql: str,
        *,
        max_rows: int | None = None,
        timeout_s: float | None = None,
        allow_partial: bool = False,
    ) -> pa.Table:
        """Run SQL on the gateway; raises GatewayError (bad query, timeout, backend down)."""
        return self._arrow({"sql": sql}, max_rows, timeout_s, allow_partial)

    def q(
        self,
        q: str,
        *,
        max_rows: int | None = None,
        timeout_s: float | None = None,
        allow_partial: bool = False,
    ) -> pa.Table:
        """Run q-sql on the gateway (translated to SQL there, docs/q.md).

        Columns carry their q type as field metadata ``q``; a keyed result (``by``) names
        its key columns, which come first, in ``Client.keys(table)``. A query outside the
        q subset raises GatewayError ``bad_query`` whose ``position`` is the character.
        """
        return self._arrow({"q": q}, max_rows, timeout_s, allow_partial)

    def _arrow(
        self,
        query: dict[str, str],
        max_rows: int | None,
        timeout_s: float | None,
        allow_partial: bool,
    ) -> pa.Table:
        body: dict[str, Any] = {**query, "format": "arrow", "allow_partial": allow_partial}
        if max_rows is not None:
            body["max_rows"] = max_rows
        if timeout_s is not None:
            body["timeout_s"] = timeout_s
        reply = self.post("/query", body, accept=ARROW_STREAM)
        _raise_for(reply)
        return ipc.open_stream(pa.py_buffer(reply.content)).read_all()

    @staticmethod
    def keys(table: pa.Table) -> list[str]:
        """The key columns of a keyed q result (``select ... by``); [] for any other."""
        return list(json.loads((table.schema.metadata or {}).get(b"tickdb.keys") or b"[]"))

    def raw(self, sql: str | None, fmt: str, **options: Any) -> bytes:
        """The encoded result (``json``, ``csv`` or ``arrow``) as the gateway sent it.

        ``sql=None`` with ``q="..."`` in ``options`` sends a q query instead.
        """
        body = {"format": fmt, **options}
        if sql is not None:
            body["sql"] = sql
        reply = self.post("/query", body)
        _raise_for(reply)
        return reply.content

    def plan(self, sql: str | None = None, **options: Any) -> dict[str, Any]:
        """How the gateway would run a query (``POST /query/plan``); ``q=...`` for q."""
        body = dict(options)
        if sql is not None:
            body["sql"] = sql
        reply = self.post("/query/plan", body)
        _raise_for(reply)
        return dict(reply.json())

    def tables(self) -> list[dict[str, Any]]:
        return list(self._get("/tables"))

    def table(self, name: str) -> dict[str, Any]:
        return dict(self._get(f"/tables/{name}"))

    def health(self) -> dict[str, Any]:
        reply = self.get("/health")
        if reply.status not in (200, 503):
            _raise_for(reply)
        return dict(reply.json())

    def audit(
        self,
        *,
        since: str | float | None = None,
        until: str | float | None = None,
        who: str | None = None,
        action: str | None = None,
        limit: int = 1000,
    ) -> dict[str, Any]:
        """Audit records (``GET /audit``, admin): ``{"enabled", "records", "truncated"}``."""
        params = {"since": since, "until": until, "who": who, "action": action, "limit": limit}
        query = urlencode({k: v for k, v in params.items() if v is not None})
        return dict(self._get(f"/audit?{query}"))

    def _get(self, path: str) -> Any:
        reply = self.get(path)
        _raise_for(reply)
        return reply.json()

    @staticmethod
    def flags(table: pa.Table) -> dict[str, Any]:
        """truncated / partial / missing, from a result's schema metadata."""
        meta = table.schema.metadata or {}
        return {
            "truncated": meta.get(b"tickdb.truncated") == b"true",
            "partial": meta.get(b"tickdb.partial") == b"true",
            "missing": json.loads(meta.get(b"tickdb.missing") or b"{}"),
        }

    # -- HTTP ------------------------------------------------------------------------------

    def get(self, path: str) -> Reply:
        return self._request("GET", path, None, dict(self._auth))

    def post(self, path: str, body: dict[str, Any], *, accept: str | None = None) -> Reply:
        headers = {"Content-Type": "application/json", **self._auth}
        if accept:
            headers["Accept"] = accept
        return self._request("POST", path, json.dumps(body).encode(), headers)

    def _request(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str]
    ) -> Reply:
        """Send to the current gateway; when it cannot be reached (refused, reset, closed
        before answering), to the next one, each at most once. Query requests are
        read-only and order requests carry a ClOrdID the gateways share, so a request
        that may have reached a gateway that died is safe to send again."""
        for _ in range(len(self._endpoints)):
            with self._lock:
                first = self._current
            try:
                return self._request_one(method, path, body, headers)
            except GatewayUnreachable as exc:
                if len(self._endpoints) == 1 or exc.timed_out or self._closed:
                    raise
                with self._lock:
                    if self._current == first:  # no other thread moved on already
                        self._current = (first + 1) % len(self._endpoints)
                        idle, self._idle = self._idle, []
                        self.failovers += 1
                    else:
                        idle = []
                for conn in idle:
                    conn.close()
                last = exc
        raise last

    def _request_one(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str]
    ) -> Reply:
        # A request that failed on a kept-alive connection the server may have closed
        # meanwhile is sent once more on a fresh one.
        endpoint = self._endpoints[self._current]
        for attempt in (0, 1):
            conn, reused = self._checkout(endpoint)
            try:
                conn.request(method, endpoint.prefix + path, body=body, headers=headers)
                response = conn.getresponse()
                content = response.read()
            except (http.client.HTTPException, OSError) as exc:
                conn.close()
                timed_out = isinstance(exc, TimeoutError)
                if reused and attempt == 0 and not timed_out:
                    continue
                raise GatewayUnreachable(
                    f"no answer from the gateway at {endpoint.url}: {type(exc).__name__}: {exc}"
                    + endpoint.tls_hint(exc),
                    timed_out=timed_out,
                ) from None
            except BaseException:
                conn.close()
                raise
            reply = Reply(
                response.status, {k.lower(): v for k, v in response.getheaders()}, content
            )
            if response.will_close:
                conn.close()
            else:
                self._checkin(conn, endpoint)
            return reply
        raise AssertionError("unreachable")

    def _checkout(self, endpoint: _Endpoint) -> tuple[http.client.HTTPConnection, bool]:
        with self._lock:
            if self._closed:
                raise GatewayUnreachable("client is closed")
            if self._idle:
                return self._idle.pop(), True
        if endpoint.tls is not None:
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                endpoint.host, endpoint.port, timeout=self.timeout_s, context=endpoint.tls
            )
        else:
            conn = http.client.HTTPConnection(endpoint.host, endpoint.port, timeout=self.timeout_s)
        try:
            conn.connect()
        except OSError as exc:
            conn.close()
            raise GatewayUnreachable(
                f"cannot reach the gateway at {endpoint.url}: {type(exc).__name__}: {exc}"
                + endpoint.tls_hint(exc),
                timed_out=isinstance(exc, TimeoutError),
            ) from None
        # Without it a request written in two segments waits ~40 ms for the server's
        # delayed ACK (Nagle), which dominated small queries.
        assert conn.sock is not None
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn, False

    def _checkin(self, conn: http.client.HTTPConnection, endpoint: _Endpoint) -> None:
        with self._lock:
            current = self._endpoints[self._current] is endpoint
            if current and not self._closed and len(self._idle) < _MAX_IDLE:
                self._idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def gateway_urls(url: str | Sequence[str]) -> list[str]:
    """One gateway URL, several separated by commas, or a list of them: checked, in order."""
    given = url.split(",") if isinstance(url, str) else list(url)
    urls = [u.strip().rstrip("/") for u in given if u.strip()]
    if not urls:
        raise ValueError(f"no gateway URL in {url!r}")
    return urls


class _Endpoint:
    """One gateway's address, parsed once."""

    def __init__(self, url: str, verify: Verify, cert: ClientCert | None) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"gateway URL must be http(s)://host[:port], got {url!r}")
        self.url = url
        self.host = parts.hostname
        self.tls = tls_context(verify, cert) if parts.scheme == "https" else None
        self.port = parts.port or (443 if self.tls else 80)
        self.prefix = parts.path

    def tls_hint(self, exc: BaseException) -> str:
        """What a TLS failure most likely means, for the message."""
        if self.tls is None:
            return ""
        if isinstance(exc, ssl.SSLCertVerificationError):
            return " (trust the gateway's CA: verify=CA_FILE, --ca or TICKDB_CA)"
        if isinstance(exc, http.client.RemoteDisconnected | ConnectionError | ssl.SSLEOFError):
            # TLS 1.3: a gateway refusing a client certificate closes after the handshake.
            return " (does the gateway require a client certificate? cert=, --cert)"
        return ""


def _raise_for(reply: Reply) -> None:
    if reply.is_success:
        return
    try:
        body = reply.json()
        kind = str(body.get("error") or "bad_query")  # 422: FastAPI body validation
        message = str(body.get("message") or body.get("detail"))
        position = body.get("position")
    except (ValueError, AttributeError):
        kind, message, position = "internal", reply.text[:500], None
    raise GatewayError(kind, message, reply.status, position)
