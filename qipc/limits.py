"""The bounds a kdb+ IPC server keeps against hostile or broken clients.

:class:`ServerLimits` holds them (the config's ``kdb_*`` settings); :class:`LoginBackoff`
delays failed logins per client address; :class:`RateLimitedLog` keeps a flood of refused
connections from flooding the log as well.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

DEFAULT_MAX_MESSAGE_BYTES = 64 << 20


@dataclass(frozen=True, kw_only=True)
class ServerLimits:
    # A message's length on the wire and, if compressed, its claimed expanded length.
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    # Open connections (authenticated or still in the handshake) per port.
    max_connections: int = 256
    # A connection with no message either way for this long is closed; 0: never.
    # Subscribers (``conn.keep_open``) are exempt: they wait for pushes by design.
    idle_timeout_s: float = 300.0
    # The credentials must arrive within this long of connecting.
    handshake_timeout_s: float = 10.0
    # A failed login from an address is refused after login_backoff_s, doubling with each
    # further failure from that address up to login_backoff_max_s.
    login_backoff_s: float = 0.1
    login_backoff_max_s: float = 5.0

    def __post_init__(self) -> None:
        for name in ("max_message_bytes", "max_connections", "handshake_timeout_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name}: must be positive")
        for name in ("idle_timeout_s", "login_backoff_s", "login_backoff_max_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: must not be negative")


@dataclass
class _Peer:
    failures: int = 0
    next_at: float = 0.0  # no login from this address is checked before this (monotonic)
    last_failure: float = 0.0


class LoginBackoff:
    """Failed logins per client address, and when that address may try again.

    A failed login is refused after ``delay(n)`` (``base_s`` doubling per failure up to
    ``max_s``). While an address has failures its attempts are also checked one at a
    time, ``delay(n)`` apart, so opening connections in parallel does not multiply the
    guessing rate; an attempt that would wait more than ``max_s`` is refused unchecked.
    A successful login clears the address (every user of a port has the same rights, so
    a valid login gains nothing by guessing another's password). Addresses are forgotten
    ``forget_s`` after their last failure, and at most ``max_peers`` are remembered.
    """

    def __init__(
        self,
        base_s: float = 0.1,
        max_s: float = 5.0,
        *,
        forget_s: float | None = None,
        max_peers: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base_s = base_s
        self.max_s = max_s
        self.forget_s = forget_s if forget_s is not None else max(60.0, 10 * max_s)
        self.max_peers = max_peers
        self._clock = clock
        self._peers: dict[str, _Peer] = {}
        self._lock = threading.Lock()

    def delay(self, failures: int) -> float:
        if failures <= 0:
            return 0.0
        return float(min(self.base_s * 2 ** min(failures - 1, 60), self.max_s))

    def failures(self, address: str) -> int:
        with self._lock:
            peer = self._peers.get(address)
            return peer.failures if peer is not None else 0

    def reserve(self, address: str) -> float | None:
        """The monotonic time at which this attempt's credentials may be checked, or None:
        refuse it unchecked (the address already has attempts queued ``max_s`` ahead)."""
        with self._lock:
            now = self._clock()
            peer = self._peers.get(address)
            if peer is not None and now - peer.last_failure > self.forget_s:
                del self._peers[address]
                peer = None
            if peer is None:
                return now
            at = max(now, peer.next_at)
            if at - now > self.max_s:
                return None
            peer.next_at = at + self.delay(peer.failures)
            return at

    def failed(self, address: str) -> float:
        """Count a failed login; returns how long to wait before refusing it."""
        with self._lock:
            now = self._clock()
            peer = self._peers.pop(address, None) or _Peer()
            self._peers[address] = peer  # re-inserted: the oldest entry is evicted first
            while len(self._peers) > self.max_peers:
                del self._peers[next(iter(self._peers))]
            peer.failures += 1
            peer.last_failure = now
            delay = self.delay(peer.failures)
            peer.next_at = max(peer.next_at, now + delay)
            return delay

    def succeeded(self, address: str) -> None:
        with self._lock:
            self._peers.pop(address, None)


class RateLimitedLog:
    """Log the first of a kind of event, then at most one line per ``interval_s`` that
    says how many were left out: a flood of refused connections stays a few lines."""

    def __init__(self, logger: logging.Logger, interval_s: float = 5.0) -> None:
        self.logger = logger
        self.interval_s = interval_s
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self._lock = threading.Lock()

    def warning(self, kind: str, msg: str, *args: object) -> None:
        with self._lock:
            now = time.monotonic()
            last = self._last.get(kind)
            if last is not None and now - last < self.interval_s:
                self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
                return
            self._last[kind] = now
            skipped = self._suppressed.pop(kind, 0)
        if skipped:
            msg += f" ({skipped} more like it in the last {self.interval_s:g}s not logged)"
        self.logger.warning(msg, *args)
