"""A reusable kdb+ IPC server: handshake, authentication, then one handler call per message.

One thread accepts; one thread per client reads, decodes, calls the handler and answers.
A thread per client (not one event loop) because handlers run queries that take time and
must not hold up other clients; handlers must therefore be thread-safe. Sync messages get
a response (the handler's value, or a q error the client raises); async messages get none.
A handler may push async messages to any connection with :meth:`QConnection.send_async`
(a subscription's ``upd`` pushes). A malformed or oversized frame drops that client with a
log line and never stops the server.

The bounds (:class:`qipc.limits.ServerLimits`): a message's bytes are read as they come
(memory follows what arrived, not what a header claims) up to ``max_message_bytes``, which
also caps what a compressed message may expand to; at most ``max_connections`` clients,
the next ones told why (:mod:`qipc.refusal`); a connection silent both ways for
``idle_timeout_s`` is closed; failed logins from an address are answered ever later
(:class:`qipc.limits.LoginBackoff`), each in its own connection's thread, so other
clients' logins never wait for them. Every refusal is logged and counted.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import logging
import selectors
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from qipc import types as t
from qipc.codec import decode, encode
from qipc.limits import LoginBackoff, RateLimitedLog, ServerLimits
from qipc.pykx_compat import NOT_A_PROBE, answer_probe
from qipc.refusal import Refusals
from qipc.transport import read_handshake, read_message
from tickdb.listen import listen_tcp
from tickdb.tls import PortTls
from tickdb.tls_socket import PlaintextRefused, accept_tls

log = logging.getLogger(__name__)

# handler(value, msg_type, conn) -> result; the result answers a sync message.
Handler = Callable[[Any, int, "QConnection"], Any]
# authenticate(user, password) -> accepted?
Authenticator = Callable[[str, str], bool]
# on_login(user, "host:port", accepted, why refused: "refused" | "throttled" | "")
LoginListener = Callable[[str, str, bool, str], None]

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
        # Set by a handler for a client that waits for pushes without sending (a
        # subscriber): the idle timeout does not apply to it.
        self.keep_open = False
        # For the idle watchdog: the last whole message either way; since when the message
        # being read has been arriving (None: between messages); a handler is running.
        self.last_active = time.monotonic()
        self.receiving_since: float | None = None
        self.busy = False
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
            self.last_active = time.monotonic()

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
        limits: ServerLimits | None = None,
        compress_replies: bool = False,
        on_close: Callable[[QConnection], None] | None = None,
        on_login: LoginListener | None = None,
        answer_pykx_probes: bool = True,
        name: str = "qipc",
        setting: str = "kdb_port",
        tls: PortTls | None = None,
    ) -> None:
        self.handler = handler
        self.tls = tls  # None: plaintext only
        self.authenticate = authenticate
        self.limits = limits or ServerLimits()
        self.max_message_bytes = self.limits.max_message_bytes
        self.compress_replies = compress_replies
        self.on_close = on_close
        self.on_login = on_login  # told of every checked login (the audit)
        self.answer_pykx_probes = answer_pykx_probes
        self.backoff = LoginBackoff(self.limits.login_backoff_s, self.limits.login_backoff_max_s)
        self._flood_log = RateLimitedLog(log)
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
        self._watchdog: threading.Thread | None = None
        # Counters tests and metrics read.
        self.accepted = 0
        self.refused = 0  # failed logins
        self.throttled = 0  # logins refused unchecked: too many failures from the address
        self.dropped = 0  # bad or oversized messages
        self.over_cap = 0  # connections refused: max_connections open
        self.idle_closed = 0  # closed by the idle timeout, or a message too slow to arrive

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    def start(self) -> QIpcServer:
        self._acceptor = threading.Thread(
            target=self._accept_loop, name=f"{self.name}-accept", daemon=True
        )
        self._acceptor.start()
        if self.limits.idle_timeout_s > 0:
            self._watchdog = threading.Thread(
                target=self._watch_idle, name=f"{self.name}-idle", daemon=True
            )
            self._watchdog.start()
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
        if self._watchdog is not None:
            self._watchdog.join(timeout)
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
            refusals = Refusals(sel)
            try:
                while not self._stopping.is_set():
                    for key, _ in sel.select(refusals.next_timeout()):
                        if key.fileobj is self._wake_r:
                            return
                        if refusals.owns(key):
                            refusals.on_readable(key)
                        else:
                            self._accept(refusals)
                    refusals.expire()
            finally:
                refusals.close()

    def _accept(self, refusals: Refusals) -> None:
        try:
            sock, peer = self._listener.accept()
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                # The listener stays readable: without a pause this loop would spin.
                self._flood_log.warning("accept", "%s: cannot accept: %s", self.name, exc)
                self._stopping.wait(0.1)
            return
        with self._lock:
            open_now = len(self._threads)
        if open_now >= self.limits.max_connections:
            self.over_cap += 1
            self._flood_log.warning(
                "over_cap",
                "%s: refused a connection from %s: %d connections open (max_connections)",
                self.name,
                peer,
                open_now,
            )
            reason = (
                f"limit: {self.name} has {open_now} connections open, its max_connections;"
                " try again later"
            )
            if self.tls is not None:  # saying why would take a TLS handshake in this thread
                sock.close()
            else:
                refusals.add(sock, peer, reason)
            return
        thread = threading.Thread(
            target=self._serve, args=(sock, peer), name=f"{self.name}-conn", daemon=True
        )
        with self._lock:
            self._threads.add(thread)
        thread.start()

    def _serve(self, raw: socket.socket, peer: Any) -> None:
        conn: QConnection | None = None
        try:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock = self._secure(raw, peer)
            conn = self._handshake(sock, peer) if sock is not None else None
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
            raw.close()
            with self._lock:
                self._threads.discard(threading.current_thread())

    def _secure(self, raw: socket.socket, peer: Any) -> socket.socket | None:
        """TLS from the first byte, as q's ``-E`` modes; None when refused (logged)."""
        if self.tls is None:
            return raw
        raw.settimeout(self.limits.handshake_timeout_s)
        try:
            return accept_tls(raw, self.tls)
        except PlaintextRefused:
            log.warning("%s: refused %s: plaintext on a TLS-only port", self.name, peer)
        except (OSError, ConnectionError) as exc:  # ssl.SSLError included
            log.warning("%s: TLS handshake with %s failed: %s", self.name, peer, exc)
        return None

    def _handshake(self, sock: socket.socket, peer: Any) -> QConnection | None:
        sock.settimeout(self.limits.handshake_timeout_s)
        try:
            user, password, capability = read_handshake(sock)
        except (OSError, ConnectionError, t.QProtocolError) as exc:
            log.warning("%s: bad handshake from %s: %s", self.name, peer, exc)
            return None
        if self.authenticate is not None and not self._login(user, password, peer):
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

    def _login(self, user: str, password: str, peer: Any) -> bool:
        """Check credentials, after this address's backoff; a refusal is answered late.

        Runs in the connection's own thread, so waiting here holds up no other client."""
        assert self.authenticate is not None
        address = str(peer[0]) if isinstance(peer, tuple) else str(peer)
        where = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        at = self.backoff.reserve(address)
        if at is None:
            self.throttled += 1
            self._tell_login(user, where, False, "throttled")
            self._flood_log.warning(
                "throttled",
                "%s: refused a login from %s unchecked: %d failed logins, retry later",
                self.name,
                address,
                self.backoff.failures(address),
            )
            return False
        wait = at - time.monotonic()
        if wait > 0 and self._stopping.wait(wait):
            return False
        if self.authenticate(user, password):
            self.backoff.succeeded(address)
            self._tell_login(user, where, True, "")
            return True
        self._tell_login(user, where, False, "refused")
        # As q does: refuse by closing, no reply; the client reports an access error.
        delay = self.backoff.failed(address)
        self.refused += 1
        log.warning(
            "%s: refused user %r from %s (failed login %d from this address; answered after %.1fs)",
            self.name,
            user,
            peer,
            self.backoff.failures(address),
            delay,
        )
        self._stopping.wait(delay)
        return False

    def _tell_login(self, user: str, where: str, ok: bool, why: str) -> None:
        if self.on_login is not None:
            try:
                self.on_login(user, where, ok, why)
            except Exception:  # a broken listener must not change who gets in
                log.exception("%s: on_login failed", self.name)

    def _message_loop(self, conn: QConnection) -> None:
        def started(_header: object) -> None:
            conn.receiving_since = time.monotonic()

        while not conn.closed:
            try:
                header, message = read_message(conn.sock, self.max_message_bytes, started)
            except (ConnectionError, OSError):
                return  # the client went away, or close() (or the idle watchdog) shut it
            except t.QProtocolError as exc:
                self.dropped += 1
                log.warning("%s: dropping %r: %s", self.name, conn, exc)
                return
            # In this order: the watchdog reads them the other way round.
            conn.last_active = time.monotonic()
            conn.receiving_since = None
            conn.messages_in += 1
            conn.last_active = time.monotonic()
            sync = header.msg_type == t.SYNC
            try:
                _, value = decode(message, self.max_message_bytes)
            except t.QProtocolError as exc:
                # The frame was whole, so the stream is still in step: answer and go on.
                log.warning("%s: undecodable message from %r: %s", self.name, conn, exc)
                if sync:
                    self._reply(conn, t.QError(f"type: {exc}"))
                continue
            conn.busy = True  # a long query is not idleness
            try:
                result = self._call(conn, value, header.msg_type)
                if sync:
                    self._reply(conn, result)
            finally:
                conn.last_active = time.monotonic()
                conn.busy = False
            if not sync and isinstance(result, t.QError):
                # No one waits for an async answer: the log is the only place it can show.
                self.async_errors += 1
                log.warning("%s: async message from %r failed: %s", self.name, conn, result)

    def _watch_idle(self) -> None:
        """Close connections silent both ways for ``idle_timeout_s``, and those whose
        message has been arriving for that long. A thread of its own, so reading stays a
        plain blocking recv; shutting the socket wakes the connection's thread."""
        idle = self.limits.idle_timeout_s
        while not self._stopping.wait(min(max(idle / 4, 0.05), 1.0)):
            now = time.monotonic()
            for conn in self.connections():
                since = conn.receiving_since  # read before last_active: see _message_loop
                if since is not None:
                    if now - since > idle:
                        self._close_idle(conn, f"the rest of a message did not come in {idle:g}s")
                elif not (conn.keep_open or conn.busy) and now - conn.last_active > idle:
                    self._close_idle(conn, f"no message either way for {idle:g}s")

    def _close_idle(self, conn: QConnection, why: str) -> None:
        self.idle_closed += 1
        log.warning("%s: closing %r: %s (idle_timeout_s)", self.name, conn, why)
        conn.close()

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
