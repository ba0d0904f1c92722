"""``tickdb.Client``: query a gateway over HTTP and get ``pyarrow.Table`` results.

Results travel as Arrow IPC streams. The table's schema metadata carries the flags:
``tickdb.truncated``, ``tickdb.partial``, ``tickdb.missing`` (see ``Client.flags``).
"""

from __future__ import annotations

import json
import socket
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.ipc as ipc

DEFAULT_URL = "http://127.0.0.1:8000"
ARROW_STREAM = "application/vnd.apache.arrow.stream"


class GatewayError(Exception):
    """The gateway refused or failed a request; ``kind`` as in QueryError, plus ``status``."""

    def __init__(self, kind: str, message: str, status: int, position: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status
        self.position = position  # q queries: 0-based character the error points at


class Client:
    def __init__(self, url: str = DEFAULT_URL, *, timeout_s: float = 300.0) -> None:
        self.url = url.rstrip("/")
        # The HTTP wait is longer than any query limit: the gateway answers in time or errs.
        # TCP_NODELAY: without it a request written in two segments waits ~40 ms for the
        # server's delayed ACK (Nagle), which dominated small queries.
        transport = httpx.HTTPTransport(
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
        )
        self._http = httpx.Client(base_url=self.url, timeout=timeout_s, transport=transport)

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
        reply = self._http.post("/query", json=body, headers={"Accept": ARROW_STREAM})
        _raise_for(reply)
        return ipc.open_stream(reply.content).read_all()

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
        reply = self._http.post("/query", json=body)
        _raise_for(reply)
        return reply.content

    def tables(self) -> list[dict[str, Any]]:
        return list(self._get("/tables"))

    def table(self, name: str) -> dict[str, Any]:
        return dict(self._get(f"/tables/{name}"))

    def health(self) -> dict[str, Any]:
        reply = self._http.get("/health")
        if reply.status_code not in (200, 503):
            _raise_for(reply)
        return dict(reply.json())

    def _get(self, path: str) -> Any:
        reply = self._http.get(path)
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

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _raise_for(reply: httpx.Response) -> None:
    if reply.is_success:
        return
    try:
        body = reply.json()
        kind = str(body.get("error") or "bad_query")  # 422: FastAPI body validation
        message = str(body.get("message") or body.get("detail"))
        position = body.get("position")
    except (ValueError, AttributeError):
        kind, message, position = "internal", reply.text[:500], None
    raise GatewayError(kind, message, reply.status_code, position)
