"""Sockets for FIX sessions: one thread runs every connection of a process.

The engine accepts connections (acceptor) or keeps dialling (initiator), reads whatever is
readable, frames it (``fix.codec.Framer``), hands frames to their ``Session`` and ticks the
sessions' timers every 100 ms. An acceptor's connection is bound to a session by the
CompIDs of its first frame; a second connection for a session already connected is closed.

One read's frames are handled as one batch (``on_batch``, a context manager the application
gives): the gateway holds its router's lock and sends the whole run of orders to the
tickerplant as one message when the batch ends, as the order port does. The session's
store then writes the target sequence number once for the whole read
(``Session.sync_store``), off the path of the order to the tickerplant.

Other threads hand work to the engine's thread with ``call_soon`` (a queue and a wake-up
byte on a socket pair): the gateway's order stream uses it to have execution reports sent.

With TLS (``listen(..., tls=)``, ``dial(..., tls=)``) a connection is a
``tickdb.tls_socket.TlsSocket``: an acceptor's handshake runs in this loop as the client's
bytes arrive (a slow client holds up no one, and the logon timeout covers it); an
initiator's completes before its session attaches.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import selectors
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

from fix.codec import Dropped, Framer, MessageTooLarge, decode
from fix.session import Session
from fix.session_types import Disconnect
from tickdb.tls_socket import TlsSocket

log = logging.getLogger(__name__)

TICK_S = 0.1
SEND_TIMEOUT_S = 5.0


class SocketTransport:
    def __init__(self, sock: socket.socket | TlsSocket, peer: str = "") -> None:
        self.sock = sock
        self.peer = peer
        # Plain sockets only: TLS writes stay on the engine's thread.
        self._room: select.poll | None = None
        self._plain = isinstance(sock, socket.socket)
        if isinstance(sock, socket.socket):
            self._room = select.poll()
            self._room.register(sock, select.POLLOUT)

    def writable_now(self) -> bool:
        """Whether a short message can be written without waiting (the send buffer has
        room); False over TLS. Callers serialise it (``gateway.fix_outbox``)."""
        if self._room is None:
            return False
        try:
            return bool(self._room.poll(0))
        except (OSError, RuntimeError):
            return False

    def send(self, data: bytes) -> None:
        try:
            if self._plain:
                # One write(2): a socket with a timeout polls before every send, a second
                # system call per message. Its send buffer nearly always takes the whole
                # message; what it does not goes through sendall, which waits for room.
                # (fileno() each time: -1 once the engine closed it, never a reused number.)
                try:  # noqa: SIM105 - suppress() would cost a context manager per message
                    data = data[os.write(self.sock.fileno(), data) :]
                except BlockingIOError:
                    pass
                if not data:
                    return
            self.sock.sendall(data)
        except OSError as exc:  # the reader notices the closed connection and cleans up
            log.debug("fix send failed: %s", exc)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)


@dataclass
class Connection:
    sock: socket.socket | TlsSocket
    framer: Framer
    peer: str
    session: Session | None = None
    initiator_for: Session | None = None
    opened_at: float = field(default_factory=time.monotonic)


@dataclass
class Dial:
    """An initiator's session and where it connects: one address, or several to fail over
    between (the next one at once when a connection drops or cannot be made; a full round
    of failures waits ``reconnect_s``)."""

    session: Session
    addresses: list[tuple[str, int]]
    reconnect_s: float
    next_try: float = 0.0
    connection: Connection | None = None
    tls: ssl.SSLContext | None = None
    index: int = 0  # the address dialled next
    connected: int = -1  # the address of the last connection (-1: none yet)
    failovers: int = 0  # connections made to another address than the one before

    @property
    def host(self) -> str:
        return self.addresses[self.index][0]

    @property
    def port(self) -> int:
        return self.addresses[self.index][1]

    def retry(self, now: float) -> None:
        """After a drop or a failed connect: the next address, at once unless a round of
        them has failed."""
        if len(self.addresses) == 1:
            self.next_try = now + self.reconnect_s
            return
        self.index = (self.index + 1) % len(self.addresses)
        wrapped = self.index == (self.connected if self.connected >= 0 else 0)
        self.next_try = now + (self.reconnect_s if wrapped else 0.0)


class Engine:
    def __init__(
        self,
        *,
        max_message_bytes: int = 64 * 1024,
        max_connections: int = 64,
        logon_timeout_s: float = 10.0,
        on_batch: Callable[[], AbstractContextManager[object]] | None = None,
        name: str = "fix-engine",
    ) -> None:
        self.max_message_bytes = max_message_bytes
        self.max_connections = max_connections
        self.logon_timeout_s = logon_timeout_s
        self._on_batch = on_batch or contextlib.nullcontext
        self._sel = selectors.DefaultSelector()
        self._wake_rx, self._wake_tx = socket.socketpair()
        self._wake_rx.setblocking(False)
        self._wake_tx.setblocking(False)
        self._sel.register(self._wake_rx, selectors.EVENT_READ, "wake")
        self._calls: deque[Callable[[], None]] = deque()
        self._listener: socket.socket | None = None
        self._tls: ssl.SSLContext | None = None  # the acceptor's
        self._sessions: dict[tuple[str, str], Session] = {}  # (their id, our id) -> session
        self._connections: dict[int, Connection] = {}
        self._dials: list[Dial] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.address: tuple[str, int] | None = None
        self.refused_connections = 0

    # -- set-up --------------------------------------------------------------------------
    def add_sessions(self, sessions: Iterable[Session]) -> None:
        for s in sessions:
            self._sessions[(s.settings.target_comp_id, s.settings.sender_comp_id)] = s

    def listen(self, host: str, port: int, tls: ssl.SSLContext | None = None) -> tuple[str, int]:
        self._tls = tls
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
        sock.setblocking(False)
        self._listener = sock
        self._sel.register(sock, selectors.EVENT_READ, "listen")
        self.address = sock.getsockname()[:2]
        return self.address

    def dial(
        self,
        session: Session,
        host: str,
        port: int,
        reconnect_s: float = 1.0,
        tls: ssl.SSLContext | None = None,
        more: Sequence[tuple[str, int]] = (),
    ) -> Dial:
        """Connect ``session`` to ``host:port``, and with ``more`` addresses fail over to the
        next when a connection drops: a logon there resets the sequence numbers (141=Y),
        as the other end keeps its own (``Session.reset_next_logon``)."""
        self.add_sessions([session])
        dial = Dial(session, [(host, port), *more], reconnect_s, tls=tls)
        self._dials.append(dial)
        return dial

    def start(self) -> Engine:
        self._thread.start()
        return self

    def call_soon(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the engine's thread (safe from any thread, never blocks)."""
        self._calls.append(fn)
        with contextlib.suppress(BlockingIOError, OSError):
            self._wake_tx.send(b"w")

    @property
    def sessions(self) -> list[Session]:
        return list(self._sessions.values())

    # -- the loop ------------------------------------------------------------------------
    def _run(self) -> None:
        next_tick = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= next_tick:
                self._tick(now)
                next_tick = now + TICK_S
            try:
                events = self._sel.select(max(0.0, next_tick - time.monotonic()))
            except OSError:
                continue
            for key, _ in events:
                try:
                    if key.data == "wake":
                        self._drain_calls()
                    elif key.data == "listen":
                        self._accept()
                    else:
                        self._read(key.data)
                except Exception:  # never lose the engine to one connection
                    log.exception("fix engine: unexpected error")
        for conn in list(self._connections.values()):
            self._close(conn, "engine stopped")

    def _drain_calls(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            while self._wake_rx.recv(4096):
                pass
        while self._calls:
            fn = self._calls.popleft()
            try:
                fn()
            except Exception:
                log.exception("fix engine: call failed")

    def _register(self, sock: socket.socket | TlsSocket, peer: str) -> Connection:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(SEND_TIMEOUT_S)  # sendall waits at most this long for a slow peer
        conn = Connection(sock, Framer(self.max_message_bytes), peer)
        self._connections[sock.fileno()] = conn
        self._sel.register(sock, selectors.EVENT_READ, conn)
        return conn

    def _accept(self) -> None:
        assert self._listener is not None
        try:
            sock, addr = self._listener.accept()
        except (BlockingIOError, OSError):
            return
        if len(self._connections) >= self.max_connections:
            self.refused_connections += 1
            log.warning("fix: refused %s: %d connections open", addr, len(self._connections))
            sock.close()
            return
        peer = f"{addr[0]}:{addr[1]}"
        if self._tls is not None:  # the handshake happens in _read, as bytes arrive
            self._register(TlsSocket(sock, self._tls, server_side=True), peer)
        else:
            self._register(sock, peer)

    def _close(self, conn: Connection, why: str) -> None:
        fd = conn.sock.fileno()
        if fd in self._connections:
            del self._connections[fd]
            with contextlib.suppress(KeyError, ValueError):
                self._sel.unregister(conn.sock)
        conn.sock.close()
        session = conn.session
        log.info("fix: %s closed: %s", session.settings.key if session else conn.peer, why)
        if session is not None:
            session.detach()
        for d in self._dials:
            if d.connection is conn:
                d.connection = None
                d.retry(time.monotonic())

    def _bind(self, conn: Connection, frame: bytes) -> Session | None:
        """An acceptor's first frame names the session (its CompIDs)."""
        try:
            msg = decode(frame)
        except ValueError:
            return None
        session = self._sessions.get((msg.get(49), msg.get(56)))
        if session is None:
            log.warning("fix: %s: no session %s -> %s", conn.peer, msg.get(49), msg.get(56))
            return None
        if session.state.value != "disconnected":
            log.warning("fix: %s: session %s is already connected", conn.peer, session.settings.key)
            return None
        conn.session = session
        session.attach(SocketTransport(conn.sock, conn.peer))
        return session

    def _read(self, conn: Connection) -> None:
        try:
            if isinstance(conn.sock, TlsSocket):
                data = conn.sock.recv_ready(256 * 1024)
                if data is None:  # a handshake step, or part of a TLS record
                    return
            else:  # read(2) alone: the socket's recv would poll first (it has a timeout)
                data = os.read(conn.sock.fileno(), 256 * 1024)
        except (BlockingIOError, TimeoutError):
            return
        except OSError as exc:  # ssl.SSLError included: "TLS: ..." says which
            why = f"TLS: {exc}" if isinstance(exc, ssl.SSLError) else str(exc)
            self._close(conn, why)
            return
        if not data:
            self._close(conn, "closed by the peer")
            return
        try:
            frames = conn.framer.feed(data)
        except MessageTooLarge as exc:
            self._close(conn, str(exc))
            return
        try:
            with self._on_batch():
                for frame in frames:
                    if conn.session is None:
                        if isinstance(frame, Dropped):
                            continue
                        if self._bind(conn, frame) is None:
                            self._close(conn, "no such session")
                            return
                    assert conn.session is not None
                    try:
                        conn.session.on_frame(frame)
                    except Disconnect as exc:
                        self._close(conn, str(exc))
                        return
        finally:
            # The messages' target number reaches the store once per read, after the batch
            # went to the application's end (the gateway: the tickerplant). A process that
            # dies before this write expects those messages again: the counterparty
            # resends them (PossDup), and a NewOrderSingle already taken is answered with
            # its order's status, never a second order.
            if conn.session is not None:
                conn.session.sync_store()

    def _tick(self, now: float) -> None:
        for conn in list(self._connections.values()):
            if conn.session is None:
                if now - conn.opened_at > self.logon_timeout_s:
                    self._close(conn, "no Logon in time")
                continue
            try:
                conn.session.tick()
            except Disconnect as exc:
                self._close(conn, str(exc))
        for d in self._dials:
            if d.connection is None and now >= d.next_try:
                self._connect(d)

    def _connect(self, d: Dial) -> None:
        try:
            plain = socket.create_connection((d.host, d.port), timeout=2.0)
            sock: socket.socket | TlsSocket = plain
            if d.tls is not None:
                sock = TlsSocket(plain, d.tls, server_side=False, server_hostname=d.host)
                try:
                    sock.do_handshake()
                except BaseException:
                    plain.close()
                    raise
        except OSError as exc:
            log.info(
                "fix %s: connect %s:%d failed: %s", d.session.settings.key, d.host, d.port, exc
            )
            d.retry(time.monotonic())
            return
        conn = self._register(sock, f"{d.host}:{d.port}")
        conn.session = d.session
        d.connection = conn
        if d.connected not in (-1, d.index):
            # Another counterparty process: it keeps its own sequence numbers, so the
            # session starts over there and the application resends what went unanswered.
            d.session.reset_next_logon = True
            d.failovers += 1
        d.connected = d.index
        d.session.attach(SocketTransport(sock, conn.peer))

    def stop(self) -> None:
        self._stop.set()
        self.call_soon(lambda: None)
        if self._thread.is_alive():
            self._thread.join(5)
        if self._listener is not None:
            self._listener.close()
        for s in self._sessions.values():
            s.store.close()
        self._wake_rx.close()
        self._wake_tx.close()
        self._sel.close()
