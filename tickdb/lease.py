"""A lease: which of a pair of processes holds a role, and in which epoch.

Used by the venue pairs (``orders.standby``) and the tickerplant pair
(``tickerplant.standby``). Three files per role in the lease directory, ``<key>`` naming the
role (``venue-<k>-of-<n>``, ``tickerplant``):

- ``<key>.lease``: JSON ``{"epoch", "holder", "alive"}``, replaced whole (temporary file and
  rename) at each takeover. Its modification time is the holder's heartbeat: the holder
  touches it every ``ttl_s / 6``; a lease not touched for ``ttl_s`` is expired.
- ``<key>.alive``: the holder keeps an exclusive ``flock`` on it for as long as it lives. The
  kernel releases it when the process dies, so a standby that can take it knows the holder
  is gone without waiting out the TTL (a SIGKILL is noticed within one check, ~10 ms). A
  frozen holder (SIGSTOP) keeps it: then the TTL decides, and ``alive`` in the lease says
  the new holder could not take the lock (the standby then waits for the TTL, not the lock).
- ``<key>.lock``: a mutex (``flock``) around read-check-write of the lease, so two processes
  never both take epoch E + 1 and a frozen holder's renewal never overwrites a takeover.

The epoch is the fencing token of the role: a holder confirms it still holds epoch E before
it acts (``confirmed``, at most ``ttl_s / 2`` old; after a freeze it reads the file again),
and steps down when it finds a higher one. What it had already handed to the network when it
froze is fenced by its peers (a venue's batches by the tickerplant's exactly-once ledger,
``orders.standby``; a tickerplant's journal records by the standby's epoch check,
``tickerplant.mirror``).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LeaseState:
    epoch: int
    holder: str
    alive: bool  # the holder holds the ``.alive`` lock


class Lease:
    def __init__(self, directory: Path, key: str, holder: str, ttl_s: float = 0.3) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"{key}.lease"
        self.holder = holder  # unique per process: "<name>:<pid>"
        self.ttl_s = ttl_s
        self.epoch = 0  # the epoch this process holds; 0: none
        self.confirmed = 0.0  # monotonic time it last found itself the holder
        self._alive_fd = os.open(directory / f"{key}.alive", os.O_RDWR | os.O_CREAT, 0o600)
        self._lock_fd = os.open(directory / f"{key}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        self._has_alive = False
        self._guard = threading.RLock()  # the heartbeat thread and the venue's loop

    # -- reading ------------------------------------------------------------------------
    def read(self) -> tuple[LeaseState | None, float]:
        """The lease and its age in seconds (None, inf: there is none yet)."""
        try:
            with open(self.path, "rb") as f:
                age = time.time() - os.fstat(f.fileno()).st_mtime
                raw = json.loads(f.read())
        except (OSError, ValueError):
            return None, float("inf")
        return LeaseState(int(raw["epoch"]), str(raw["holder"]), bool(raw["alive"])), age

    def holds(self) -> bool:
        return self.epoch > 0

    def fresh(self) -> bool:
        """May the holder publish without reading the lease again (the hot path's check)?"""
        return self.epoch > 0 and time.monotonic() - self.confirmed < self.ttl_s / 2

    # -- the flocks -----------------------------------------------------------------------
    def _try_alive(self) -> bool:
        if not self._has_alive:
            try:
                fcntl.flock(self._alive_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self._has_alive = True
            except BlockingIOError:
                return False
        return True

    def _release_alive(self) -> None:
        if self._has_alive:
            fcntl.flock(self._alive_fd, fcntl.LOCK_UN)
            self._has_alive = False

    def _mutex(self) -> bool:
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False

    def _unmutex(self) -> None:
        fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _write(self, state: LeaseState) -> None:
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        body = {"epoch": state.epoch, "holder": state.holder, "alive": state.alive}
        tmp.write_text(json.dumps(body))
        os.replace(tmp, self.path)

    # -- a standby ----------------------------------------------------------------------
    def vacant(self) -> bool:
        """Cheap check, every turn of a standby: is the lease free to take?"""
        state, age = self.read()
        if state is None or age > self.ttl_s:
            return True
        return state.alive and self._try_alive()

    def acquire(self) -> bool:
        with self._guard:
            return self._acquire()

    def _acquire(self) -> bool:
        """Take the lease if it is free (no lease, holder dead, or expired): epoch + 1."""
        if not self._mutex():
            return False
        try:
            observed = time.monotonic()  # confirmed from before the read, as in ``_renew``
            state, age = self.read()
            if state is not None and state.holder == self.holder and state.epoch == self.epoch:
                self.confirmed = observed
                return True
            alive_free = self._try_alive()
            if state is not None and age <= self.ttl_s and not (state.alive and alive_free):
                return False
            epoch = (state.epoch if state else 0) + 1
            self._write(LeaseState(epoch, self.holder, self._has_alive))
            self.epoch, self.confirmed = epoch, observed
            log.warning(
                "lease %s: %s takes epoch %d (previous %s, %.0f ms old)",
                self.path.name,
                self.holder,
                epoch,
                state.holder if state else "none",
                age * 1000 if state else 0,
            )
            return True
        finally:
            self._unmutex()

    # -- the holder -----------------------------------------------------------------------
    def renew(self) -> bool:
        with self._guard:
            return self._renew()

    def _renew(self) -> bool:
        """Heartbeat: True while this process holds the lease; False once it lost it.

        The lease counts as confirmed from *before* the read: a process frozen between
        reading its lease and recording the confirmation must not come back believing a
        read from before the freeze is fresh (another node may hold the lease by then)."""
        observed = time.monotonic()
        state, _ = self.read()
        if state is None or state.holder != self.holder or state.epoch != self.epoch:
            self._step_down()
            return False
        if not state.alive and self._try_alive() and self._mutex():
            try:  # the old holder let the lock go: say so, for a fast takeover later
                again, _ = self.read()
                if again == state:
                    self._write(LeaseState(state.epoch, self.holder, True))
            finally:
                self._unmutex()
        try:
            os.utime(self.path)
        except OSError:
            return False
        self.confirmed = observed
        return True

    def step_down(self) -> None:
        with self._guard:
            self._step_down()

    def _step_down(self) -> None:
        if self.epoch:
            log.warning("lease %s: %s lost epoch %d", self.path.name, self.holder, self.epoch)
        self.epoch = 0
        self._release_alive()

    def close(self) -> None:
        self._release_alive()
        os.close(self._alive_fd)
        os.close(self._lock_fd)
