"""Venue state snapshots: a restart replays the journal from the newest one, not from seq 0.

A venue's state is a function of the journal up to the last input it applied (its
``MatchingEngine``: books in time priority, live and done orders, id counters; a pair's
output bookkeeping too). Every ``every_inputs`` inputs and/or ``every_s`` seconds, between
two inputs, the venue hands that state, with the sequence number it covers, to
``VenueSnapshots.take``. The process forks: the child, holding a copy-on-write image of the
state as of that instant, pickles and writes it (``orders.snapshot_file``: atomic,
checksummed, versioned) while the parent goes on matching, so the live path pays for the
fork, not for the pickling. One writer at a time; a snapshot due while one is being written
waits for the next input after it.

At start the venue asks ``load`` for the newest snapshot of its key that is whole, of this
format, of this venue's settings (id prefix, ticks, STP, paper) and of the tickerplant's
current day (``session_start_seq``, the end-of-day record's seq, equal; its seq not beyond
the tickerplant's). Anything else is logged and passed over, for an older one or, when none
is left, the full replay: a snapshot is never trusted beyond what it proves.

A lone venue flushes its publisher before taking a snapshot at seq S (every output of an
input up to S is journaled when the snapshot exists), so a restart from S needs to know only
what of its output after S is already journaled (``orders.venue.published_upto``).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orders import snapshot_file
from tickdb.failpoints import hold_file, wait_released

if TYPE_CHECKING:
    from tickdb.config import Config

log = logging.getLogger(__name__)

HOLD_POINT = "venue_snapshot"  # a test's failpoint: the writer stops half way through


@dataclass(frozen=True)
class SnapshotSettings:
    directory: Path
    every_inputs: int = 20_000
    every_s: float = 60.0
    keep: int = 2

    @classmethod
    def from_config(cls, cfg: Config) -> SnapshotSettings | None:
        """The ``[orders]`` snapshot settings; None when both triggers are off."""
        orders = cfg.orders
        if not orders.snapshot_every_inputs and not orders.snapshot_every_s:
            return None
        directory = Path(orders.snapshot_dir) if orders.snapshot_dir else None
        return cls(
            directory=directory or cfg.data_path / "snapshots",
            every_inputs=orders.snapshot_every_inputs,
            every_s=orders.snapshot_every_s,
            keep=orders.snapshot_keep,
        )

    @classmethod
    def for_gateway(cls, cfg: Config) -> SnapshotSettings | None:
        """A gateway's order-state snapshots (``orders.gateway_snapshot_*``, in the venues'
        directory and kept as many); None when both triggers are off."""
        orders = cfg.orders
        every_records = orders.gateway_snapshot_every_records
        if not every_records and not orders.gateway_snapshot_every_s:
            return None
        directory = Path(orders.snapshot_dir) if orders.snapshot_dir else None
        return cls(
            directory=directory or cfg.data_path / "snapshots",
            every_inputs=every_records,
            every_s=orders.gateway_snapshot_every_s,
            keep=orders.snapshot_keep,
        )


class VenueSnapshots:
    """The snapshots of one venue (``key``: its shard and kind) in one directory; also a
    gateway's order state (``gateway.order_snapshot``: ``what`` names it in the log,
    ``allowed`` the classes its state holds)."""

    def __init__(
        self,
        settings: SnapshotSettings,
        key: str,
        *,
        what: str = "venue",
        allowed: snapshot_file.Allowed = snapshot_file.VENUE_CLASSES,
    ) -> None:
        self.settings = settings
        self.key = key
        self.what = what
        self._allowed = allowed
        self.loaded_seq = 0  # the seq of the snapshot the venue started from, 0: none
        self.written = 0  # snapshots written by this process's writers
        self.failed = 0
        self._last_inputs = 0
        self._last_seq = 0
        # Without a snapshot to start from, one is due as soon as anything is applied: a
        # restarted venue that replayed the day writes one at once (it may not live for
        # ``every_s``: a pair's venues are killed in turn by failover drills).
        self._next_at = time.monotonic()
        self._child: tuple[int, int] | None = None  # (pid, seq) of the writer at work
        self.paused_ms = 0.0  # the live path's pause for the last one (flush, stamp, fork)
        self._next_reap = 0.0

    # -- start ---------------------------------------------------------------------------
    def load(self, refusal: Callable[[dict[str, Any]], str]) -> dict[str, Any] | None:
        """The newest usable snapshot's state; ``refusal`` says why one does not fit ("":
        it does)."""
        for seq, path in snapshot_file.newest_first(self.settings.directory, self.key):
            try:
                state = snapshot_file.decode(path.read_bytes(), self._allowed)
            except (OSError, snapshot_file.SnapshotInvalid) as exc:
                log.warning("%s snapshot %s ignored: %s", self.what, path, exc)
                continue
            why = "" if state.get("seq") == seq else f"holds seq {state.get('seq')}"
            why = why or refusal(state)
            if why:
                log.warning("%s snapshot %s ignored: %s", self.what, path, why)
                continue
            self.loaded_seq = self._last_seq = seq
            self._last_inputs = int(state.get("inputs", 0))
            # ``every_s`` from when it was written, not from this start.
            try:
                age = max(0.0, time.time() - path.stat().st_mtime)
            except OSError:  # removed since (another writer's prune): as if just written
                age = 0.0
            self._next_at = time.monotonic() + max(0.0, self.settings.every_s - age)
            log.info("%s %s: starting from snapshot %s (seq %d)", self.what, self.key, path, seq)
            return state
        return None

    @property
    def counted_inputs(self) -> int:
        """The inputs counted at the last snapshot (loaded, taken or postponed)."""
        return self._last_inputs

    # -- while running -------------------------------------------------------------------
    def due(self, inputs: int, seq: int) -> bool:
        """Whether a snapshot is due after ``inputs`` inputs applied, the last at ``seq``
        (cheap: every step)."""
        settings = self.settings
        if self._child is not None:
            self.poll()
            if self._child is not None:
                return False  # one writer at a time
        if settings.every_inputs and inputs - self._last_inputs >= settings.every_inputs:
            return True
        # In time, if anything changed (a paper venue's quotes are not inputs of its own).
        changed = seq != self._last_seq
        return bool(settings.every_s) and changed and time.monotonic() >= self._next_at

    def poll(self) -> None:
        """Reap the writer at work if it has finished (looks every 50 ms at most)."""
        now = time.monotonic()
        if self._child is not None and now >= self._next_reap:
            self._next_reap = now + 0.05
            self._reap(block=False)

    def postpone(self, seq: int, inputs: int) -> None:
        """Count from here for the next snapshot (one taken, or one that could not be)."""
        self._last_inputs, self._last_seq = inputs, seq
        self._next_at = time.monotonic() + self.settings.every_s

    def take(self, seq: int, inputs: int, state: dict[str, Any], since: float) -> None:
        """Write ``state`` (covering ``seq``) from a forked child; the caller goes on.
        ``since``: when the caller stopped matching for it (``time.perf_counter()``)."""
        self.postpone(seq, inputs)
        state = {**state, "seq": seq}
        if not hasattr(os, "fork"):
            self._write(seq, state)
            self.written += 1
            return
        pid = os.fork()
        if pid == 0:  # the child: a frozen image of the state; never returns
            code = 1
            try:
                # Not the parent's sockets, nor its flocks (a pair's lease: a copy of its fd
                # here would keep the shard's ``alive`` lock held after the parent died).
                os.closerange(3, os.sysconf("SC_OPEN_MAX"))
                self._write(seq, state)
                code = 0
            except BaseException:
                traceback.print_exc()  # to the venue's log; the parent logs the failure
            finally:
                os._exit(code)
        self._child = (pid, seq)
        self.paused_ms = (time.perf_counter() - since) * 1000

    def _write(self, seq: int, state: dict[str, Any]) -> None:
        data = snapshot_file.encode(state)
        release = hold_file(HOLD_POINT)
        hold = None if release is None else lambda: wait_released(HOLD_POINT, release, _NEVER)
        snapshot_file.write(self.settings.directory, self.key, seq, data, hold)
        snapshot_file.prune(self.settings.directory, self.key, self.settings.keep)

    def _reap(self, block: bool) -> bool:
        """Whether the writer at work (if any) has finished; logs how it ended."""
        if self._child is None:
            return True
        pid, seq = self._child
        try:
            done, status = os.waitpid(pid, 0 if block else os.WNOHANG)
        except ChildProcessError:
            done, status = pid, 0
        if done == 0:
            return False
        self._child = None
        if os.waitstatus_to_exitcode(status) == 0:
            self.written += 1
            log.info(
                "%s %s: snapshot at seq %d written (its %s paused %.1f ms for it)",
                self.what,
                self.key,
                seq,
                "writer process" if self.what == "gateway" else "venue",
                self.paused_ms,
            )
        else:
            self.failed += 1
            log.error("%s snapshot at seq %d not written (writer: %s)", self.what, seq, status)
        return True

    def close(self, timeout_s: float = 10.0) -> None:
        """Wait (a while) for the writer at work, so a clean stop leaves its snapshot."""
        deadline = time.monotonic() + timeout_s
        while not self._reap(block=False) and time.monotonic() < deadline:
            time.sleep(0.01)


_NEVER = threading.Event()  # a held writer waits for its release file only
