"""A reusable kdb+ IPC server: handshake, authentication, then one handler call per message.

One thread accepts; one thread per client reads, decodes, calls the handler and answers.
A thread per client (not one event loop) because handlers run queries that take time and
must not hold up other clients; handlers must therefore be thread-safe. Sync messages get
a response (the handler's value, or a q error the client raises); async messages get none.
A handler may push async messages to any connection with :meth:`QConnection.send_async`
(a subscription's ``upd`` pushes). A malformed or oversized frame drops that client with a
log line and never stops the server.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import selectors
import socket
import threading
from collections.abc import Callable
from typing import Any

from qipc import types as t
from qipc.codec import decode, encode
from qipc.pykx_compat import NOT_A_PROBE, answer_probe
from qipc.transport import (
    DEFAULT_MAX_MESSAGE_BYTES,
    read_handshake,
    read_message,
)
from tickdb.listen import listen_tcp

log = logging.getLogger(__name__)

# handler(value, msg_type, conn) -> result; the result answers a sync message.
Handler = Callable[[Any, int, "QConnection"], Any]
# authenticate(user, password) -> accepted?
Authenticator = Callable[[str, str], bool]

_ids = itertools.count(1)


class QConnection:
    """One client connection as a handler sees it. ``state`` is the handler's to use."""

    def __init__(self, sock: socket.socket, peer: Any, user: str, capability: int) -> None:
        self.id = next(_ids)
        self.sock = sock
        self.peer = peer
        self.user = user
        self.capability = capability
        self.state: dict[str, Any] = {}
        self.closed = False
        self.messages_in = 0
        self.messages_out = 0
        self._send_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"QConnection(id={self.id}, user={self.user!r}, peer={self.peer})"

    def send_async(self, value: Any) -> None:
        """Push ``value`` as an async message (e.g. ``[Symbol("upd"), Symbol("trade"), t]``).
        Thread-safe; raises ConnectionError once the client has gone."""
        self.send_message(encode(value, t.ASYNC))

    def send_message(self, message: bytes) -> None:
        """Send an already encoded message (encode once, push to many subscribers)."""
        if self.closed:
            raise ConnectionError(f"connection {self.id} is closed")
        with self._send_lock:
            try:
                self.sock.sendall(message)
            except OSError as exc:
                self.close()
                raise ConnectionError(f"connection {self.id}: {exc}") from exc
            self.messages_out += 1

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        # shutdown (not just close) wakes the connection's thread blocked in recv.
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)


class QIpcServer:
    """Serve kdb+ IPC on ``host:port`` (port 0 picks a free one; see :attr:`port`)."""

    def __init__(
        self,
        handler: Handler,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        authenticate: Authenticator | None = None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        compress_replies: bool = False,
        on_close: Callable[[QConnection], None] | None = None,
        handshake_timeout: float = 10.0,
        answer_pykx_probes: bool = True,
        name: str = "qipc",
        setting: str = "kdb_port",
    ) -> None:
        self.handler = handler
        self.authenticate = authenticate
        self.max_message_bytes = max_message_bytes
        self.compress_replies = compress_replies
        self.on_close = on_close
        self.handshake_timeout = handshake_timeout
        self.answer_pykx_probes = answer_pykx_probes
        self.name = name
        self._listener = listen_tcp(host, port, setting)
        self.async_errors = 0  # async messages whose handler failed (logged)
        self.host, self.port = self._listener.getsockname()[:2]
        self._conns: dict[int, QConnection] = {}
        self._threads: set[threading.Thread] = set()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._wake_r, self._wake_w = socket.socketpair()
        self._acceptor: threading.Thread | None = None
        # Counters tests and metrics read.
        self.accepted = 0
        self.refused = 0
        self.dropped = 0

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    def start(self) -> QIpcServer:
        self._acceptor = threading.Thread(
            target=self._accept_loop, name=f"{self.name}-accept", daemon=True
        )
        self._acceptor.start()
        return self

    def __enter__(self) -> QIpcServer:
        return self.start() if self._acceptor is None else self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def connections(self) -> list[QConnection]:
        with self._lock:
            return list(self._conns.values())

    def close(self, timeout: float = 5.0) -> None:
        """Stop accepting, drop every client and wait for their threads."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        if self._acceptor is not None:
            self._acceptor.join(timeout)
        for conn in self.connections():
            conn.close()
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout)
        self._listener.close()
        self._wake_r.close()
        self._wake_w.close()

    # --- internals --------------------------------------------------------------------

    def _accept_loop(self) -> None:
        with selectors.DefaultSelector() as sel:
            sel.register(self._listener, selectors.EVENT_READ)
            sel.register(self._wake_r, selectors.EVENT_READ)
            while not self._stopping.is_set():
                for key, _ in sel.select():
                    if key.fileobj is self._wake_r:
                        return
                    try:
                        sock, peer = self._listener.accept()
                    except OSError:
                        continue
                    thread = threading.Thread(
                        target=self._serve, args=(sock, peer), name=f"{self.name}-conn", daemon=True
                    )
                    with self._lock:
                        self._threads.add(thread)
                    thread.start()

    def _serve(self, sock: socket.socket, peer: Any) -> None:
        conn: QConnection | None = None
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = self._handshake(sock, peer)
            if conn is not None:
                self._message_loop(conn)
        except Exception:
            log.exception("%s: connection from %s failed", self.name, peer)
        finally:
            if conn is not None:
                conn.close()
                with self._lock:
                    self._conns.pop(conn.id, None)
                if self.on_close is not None:
                    try:
                        self.on_close(conn)
                    except Exception:
                        log.exception("%s: on_close failed for %r", self.name, conn)
            sock.close()
            with self._lock:
                self._threads.discard(threading.current_thread())

    def _handshake(self, sock: socket.socket, peer: Any) -> QConnection | None:
        sock.settimeout(self.handshake_timeout)
        try:
            user, password, capability = read_handshake(sock)
        except (OSError, ConnectionError, t.QProtocolError) as exc:
            log.warning("%s: bad handshake from %s: %s", self.name, peer, exc)
            return None
        if self.authenticate is not None and not self.authenticate(user, password):
            # As q does: refuse by closing, no reply; the client reports an access error.
            self.refused += 1
            log.warning("%s: refused user %r from %s", self.name, user, peer)
            return None
        agreed = min(capability, t.SERVER_CAPABILITY)
        sock.sendall(bytes([agreed]))
        sock.settimeout(None)
        conn = QConnection(sock, peer, user, agreed)
        with self._lock:
            if self._stopping.is_set():
                return None
            self._conns[conn.id] = conn
        self.accepted += 1
        log.info("%s: %r connected (capability %d)", self.name, conn, agreed)
        return conn

    def _message_loop(self, conn: QConnection) -> None:
        while not conn.closed:
            try:
                header, message = read_message(conn.sock, self.max_message_bytes)
            except (ConnectionError, OSError):
                return  # the client went away, or close() shut the socket
            except t.QProtocolError as exc:
                self.dropped += 1
                log.warning("%s: dropping %r: %s", self.name, conn, exc)
                return
            conn.messages_in += 1
            sync = header.msg_type == t.SYNC
            try:
                _, value = decode(message)
            except t.QProtocolError as exc:
                # The frame was whole, so the stream is still in step: answer and go on.
                log.warning("%s: undecodable message from %r: %s", self.name, conn, exc)
                if sync:
                    self._reply(conn, t.QError(f"type: {exc}"))
                continue
            result = self._call(conn, value, header.msg_type)
            if sync:
                self._reply(conn, result)
            elif isinstance(result, t.QError):
                # No one waits for an async answer: the log is the only place it can show.
                self.async_errors += 1
                log.warning("%s: async message from %r failed: %s", self.name, conn, result)

    def _call(self, conn: QConnection, value: Any, msg_type: int) -> Any:
        try:
            if self.answer_pykx_probes:
                answer = answer_probe(value)
                if answer is not NOT_A_PROBE:
                    return answer
            return self.handler(value, msg_type, conn)
        except t.QError as exc:
            return exc
        except Exception as exc:
            log.exception("%s: handler failed for %r", self.name, conn)
            return t.QError(f"{type(exc).__name__}: {exc}")

    def _reply(self, conn: QConnection, result: Any) -> None:
        compress = self.compress_replies and conn.capability >= 1
        try:
            message = encode(result, t.RESPONSE, compress=compress)
        except (TypeError, ValueError, OverflowError) as exc:
            log.warning("%s: cannot encode a reply to %r: %s", self.name, conn, exc)
            message = encode(t.QError(f"type: cannot send {type(result).__name__}"), t.RESPONSE)
        with contextlib.suppress(ConnectionError):
            conn.send_message(message)
