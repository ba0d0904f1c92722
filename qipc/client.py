"""A small blocking kdb+ IPC client: for tests, scripts, and talking to real q processes.

    with QClient("127.0.0.1", 5000, user="me", password="pw") as q:
        q.sync("select from trade")                    # q text, sent as a char vector
        q.sync(".tickdb.sql", "select * from trade")   # a call: (".tickdb.sql"; "select …")
        q.send_async(".u.upd", Symbol("trade"), row)
        msg_type, value = q.receive(timeout=1.0)       # an async push, e.g. upd[t; data]

Async messages that arrive while :meth:`sync` waits for its response are kept, in order,
for :meth:`receive`.

``tls=True`` speaks TLS (a q server started with ``-E 1`` or ``-E 2``, a tickdb port with
TLS on) and checks the server's certificate against the system's trusted CAs; give an
``ssl.SSLContext`` to trust your own CA: ``tls=tickdb.tls.client_context("ca.crt")``.
"""

from __future__ import annotations

import collections
import socket
import ssl
from typing import Any

from qipc import types as t
from qipc.codec import decode, encode
from qipc.transport import DEFAULT_MAX_MESSAGE_BYTES, client_handshake, read_message


class QClient:
    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 5000,
        *,
        user: str = "",
        password: str = "",
        timeout: float | None = 10.0,
        capability: int = t.SERVER_CAPABILITY,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        tls: bool | ssl.SSLContext = False,
    ) -> None:
        self.max_message_bytes = max_message_bytes
        self._pending: collections.deque[tuple[int, Any]] = collections.deque()
        self._sock = socket.create_connection((host, port), timeout=timeout)
        try:
            self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if tls:
                context = tls if isinstance(tls, ssl.SSLContext) else ssl.create_default_context()
                # One thread uses a client, so the standard library's TLS socket will do.
                self._sock = context.wrap_socket(self._sock, server_hostname=host)
            self.capability = client_handshake(self._sock, user, password, capability)
        except BaseException:
            self._sock.close()
            raise

    def __enter__(self) -> QClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._sock.close()

    @staticmethod
    def _query(query: Any, args: tuple[Any, ...]) -> Any:
        return [query, *args] if args else query

    def sync(self, query: Any, *args: Any) -> Any:
        """Send a sync message and return the response; raises QError for a q error."""
        self._sock.sendall(encode(self._query(query, args), t.SYNC))
        while True:
            msg_type, value = self._read(None)
            if msg_type == t.RESPONSE:
                if isinstance(value, t.QError):
                    raise value
                return value
            self._pending.append((msg_type, value))

    def send_async(self, query: Any, *args: Any) -> None:
        self._sock.sendall(encode(self._query(query, args), t.ASYNC))

    def send_raw(self, message: bytes) -> None:
        """Send pre-encoded bytes (benchmarks; malformed-frame tests)."""
        self._sock.sendall(message)

    def receive(self, timeout: float | None = None) -> tuple[int, Any]:
        """The next message the server sent unasked; TimeoutError when none comes in time."""
        if self._pending:
            return self._pending.popleft()
        return self._read(timeout)

    def _read(self, timeout: float | None) -> tuple[int, Any]:
        previous = self._sock.gettimeout()
        if timeout is not None:
            self._sock.settimeout(timeout)
        try:
            _, message = read_message(self._sock, self.max_message_bytes)
        except TimeoutError:
            raise TimeoutError("no message from the server in time") from None
        finally:
            self._sock.settimeout(previous)
        return decode(message)
