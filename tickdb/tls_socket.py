"""A TLS connection over a blocking socket, which one thread may read while others write.

OpenSSL forbids using one SSL object from two threads at once, and ``ssl.SSLSocket`` does
not prevent it: a kdb+ subscriber's thread blocked reading while the tickerplant pushes to
it from another thread is exactly that. Here the TLS state is an ``ssl.SSLObject`` over
memory buffers, touched only under a lock, and the socket I/O, where threads block, happens
outside it: a reader waits in ``recv`` on the plain socket, so ``shutdown`` from another
thread still wakes it, and timeouts are the socket's own.

Servers call :func:`accept_tls` on a connection they accepted (kdb+ TLS, as q's, starts at
the first byte, so a port may tell TLS clients from plaintext ones by that byte); event
loops (the FIX engine) feed it with :meth:`TlsSocket.recv_ready` when the socket polls
readable.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from typing import Any, cast

from tickdb.tls import PortTls

RECV_BYTES = 256 << 10
WRITE_CHUNK = 256 << 10  # plaintext encrypted and sent at a time: memory stays bounded
TLS_HANDSHAKE_RECORD = 0x16  # the first byte of every ClientHello


class PlaintextRefused(ConnectionError):
    """A client that did not start TLS on a port that takes only TLS."""


class TlsSocket:
    """The socket methods tickdb's servers and clients use, over TLS."""

    def __init__(
        self,
        sock: socket.socket,
        context: ssl.SSLContext,
        *,
        server_side: bool,
        server_hostname: str | None = None,
    ) -> None:
        self.sock = sock
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls = context.wrap_bio(
            self._incoming,
            self._outgoing,
            server_side=server_side,
            server_hostname=server_hostname,
        )
        self._tls_lock = threading.Lock()  # every call into the TLS state
        self._send_lock = threading.Lock()  # the order of bytes on the wire
        self.handshake_done = False

    # -- handshake -------------------------------------------------------------------------
    def do_handshake(self) -> None:
        """Complete the handshake, blocking (within the socket's timeout)."""
        while not self._handshake_step():
            if not self._fill():
                raise ConnectionError("peer closed during the TLS handshake")

    def _handshake_step(self) -> bool:
        with self._tls_lock:
            try:
                self._tls.do_handshake()
            except ssl.SSLWantReadError:
                done = False
            except ssl.SSLError:
                # The alert OpenSSL queued tells the peer why (unknown CA, no certificate).
                alert = self._outgoing.read()
                with contextlib.suppress(OSError):
                    self.sock.sendall(alert)
                raise
            else:
                done = self.handshake_done = True
        self._flush()
        return done

    # -- reading ---------------------------------------------------------------------------
    def _fill(self) -> bool:
        """Read what the socket has into the TLS state; False at the end of the stream."""
        data = self.sock.recv(RECV_BYTES)
        with self._tls_lock:
            if data:
                self._incoming.write(data)
            else:
                self._incoming.write_eof()
        return bool(data)

    def _read_into(self, view: memoryview) -> int | None:
        """Decrypted bytes into ``view``: their count, 0 at the end, None: need more."""
        with self._tls_lock:
            try:
                # With a buffer, read() returns a count (typeshed says bytes).
                got: int | None = cast(int, self._tls.read(len(view), view))
            except ssl.SSLWantReadError:
                got = None
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                got = 0
            pending = self._outgoing.pending  # a TLS 1.3 key update to answer
        if pending:
            self._flush()
        return got

    def recv_into(self, buffer: Any, nbytes: int = 0) -> int:
        view = memoryview(buffer).cast("B")
        if nbytes:
            view = view[:nbytes]
        if not len(view):
            return 0
        while True:
            got = self._read_into(view)
            if got is not None:
                return got
            self._fill()

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        if flags:
            raise ValueError("flags are not supported on a TLS connection")
        buf = bytearray(bufsize)
        got = self.recv_into(buf)
        return bytes(buf[:got])

    def recv_ready(self, bufsize: int) -> bytes | None:
        """For an event loop, once the socket polled readable: take what arrived and return
        all the plaintext it completes (none may stay behind where a poll cannot see it),
        b"" when the peer has closed, None when none yet."""
        more = self._fill()
        if not self.handshake_done and not self._handshake_step():
            if not more:
                raise ConnectionError("peer closed during the TLS handshake")
            return None
        parts: list[bytes] = []
        buf = bytearray(bufsize)
        while got := self._read_into(memoryview(buf)):
            parts.append(bytes(buf[:got]))
        if parts:
            return b"".join(parts)
        return b"" if got == 0 else None

    # -- writing ---------------------------------------------------------------------------
    def sendall(self, data: Any) -> None:
        view = memoryview(data).cast("B")
        with self._send_lock:
            for start in range(0, len(view), WRITE_CHUNK):
                piece = view[start : start + WRITE_CHUNK]
                with self._tls_lock:
                    while piece:
                        piece = piece[self._tls.write(piece) :]
                    out = self._outgoing.read()
                self.sock.sendall(out)

    def _flush(self) -> None:
        with self._send_lock:
            with self._tls_lock:
                out = self._outgoing.read()
            if out:
                self.sock.sendall(out)

    # -- the plain socket's own --------------------------------------------------------------
    def shutdown(self, how: int) -> None:
        self.sock.shutdown(how)

    def close(self) -> None:
        self.sock.close()

    def settimeout(self, timeout: float | None) -> None:
        self.sock.settimeout(timeout)

    def gettimeout(self) -> float | None:
        return self.sock.gettimeout()

    def setsockopt(self, level: int, option: int, value: int) -> None:
        self.sock.setsockopt(level, option, value)

    def fileno(self) -> int:
        return self.sock.fileno()

    def getpeername(self) -> Any:
        return self.sock.getpeername()

    def getsockname(self) -> Any:
        return self.sock.getsockname()

    def getpeercert(self) -> Any:
        return self._tls.getpeercert()

    def version(self) -> str | None:
        return self._tls.version()

    def __enter__(self) -> TlsSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def accept_tls(sock: socket.socket, tls: PortTls) -> socket.socket:
    """The connection a server reads after accepting ``sock``: TLS, handshake done, when the
    client's first byte starts a handshake; ``sock`` itself when it does not and the port
    also takes plaintext. Raises PlaintextRefused on a TLS-only port, ssl.SSLError when the
    handshake fails, OSError/TimeoutError as the socket does (set its timeout first)."""
    first = sock.recv(1, socket.MSG_PEEK)
    if not first:
        raise ConnectionError("closed before sending anything")
    if first[0] != TLS_HANDSHAKE_RECORD:
        if tls.optional:
            return sock
        raise PlaintextRefused("a plaintext client on a TLS-only port")
    conn = TlsSocket(sock, tls.context, server_side=True)
    conn.do_handshake()
    # Duck-typed: it has every socket method the servers and qipc.transport call.
    return cast(socket.socket, conn)


def connect_tls(sock: socket.socket, context: ssl.SSLContext, host: str) -> socket.socket:
    """The client side over a connected ``sock``: handshake done, the server's certificate
    checked against ``host`` (as the context says)."""
    conn = TlsSocket(sock, context, server_side=False, server_hostname=host)
    conn.do_handshake()
    return cast(socket.socket, conn)
