"""Failed TLS handshakes on a port served by asyncio (the gateway's HTTPS), logged and counted.

asyncio drops a handshake that fails with an ``ssl.SSLError`` (plaintext to the TLS port,
an unknown CA, no client certificate) at DEBUG level, so without this the gateway's log
said nothing while the client saw its connection closed. A context's ``sslobject_class``
is what ``wrap_bio`` makes for each connection; :meth:`HandshakeFailures.install` gives it
a subclass whose ``do_handshake`` reports the failure before raising it on. The peer's
address is not known at that level (the object sees only bytes); the count and the reason
are. Lines are at most one per ``every_s``, with how many were left out, so a client that
retries in a loop cannot fill the log.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time

log = logging.getLogger(__name__)


class HandshakeFailures:
    def __init__(self, port: str, every_s: float = 5.0) -> None:
        self.port = port
        self.every_s = every_s
        self.failed = 0
        self._unlogged = 0
        self._logged_at = -float("inf")
        self._lock = threading.Lock()

    def install(self, context: ssl.SSLContext) -> None:
        """Report every handshake of connections ``context`` wraps with ``wrap_bio``."""
        failures = self

        class ReportedHandshake(ssl.SSLObject):
            def do_handshake(self) -> None:
                try:
                    super().do_handshake()
                except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                    raise  # more bytes to come: not a failure
                except ssl.SSLError as exc:
                    failures.record(exc)
                    raise

        context.sslobject_class = ReportedHandshake

    def record(self, exc: ssl.SSLError) -> None:
        now = time.monotonic()
        with self._lock:
            self.failed += 1
            if now - self._logged_at < self.every_s:
                self._unlogged += 1
                return
            left_out, self._unlogged, self._logged_at = self._unlogged, 0, now
        more = f" ({left_out} more since the last line)" if left_out else ""
        log.warning(
            "TLS handshake on the %s port failed: %s%s",
            self.port,
            exc.reason or exc.__class__.__name__,
            more,
        )
