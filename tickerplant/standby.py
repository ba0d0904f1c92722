"""A node of a tickerplant pair: the primary while it holds the lease, the standby otherwise.

Both nodes run ``tickdb tp`` with ``[replication] mode = "sync"`` (or ``"async"``), each with
its own journal directory and ports, and one shared ``replication.lease_dir``. The pair's
leadership is a lease (``tickdb.lease``: a file, two ``flock`` s and an epoch, as the venue
pairs use), not a consensus protocol:

- the node holding the lease is the tickerplant: it serves publishers and subscribers under
  the lease's epoch and replicates its journal (``tickerplant.replication``); it writes its
  endpoints beside the lease (``tickerplant.primary.json``) for the standby to find;
- the other node mirrors the journal (``tickerplant.mirror``) and checks the lease every
  ``CHECK_S``: when the primary dies (its ``flock`` freed: at once) or stops renewing for
  ``lease_ttl_ms`` (frozen), it takes epoch + 1, opens its copy of the journal as a
  tickerplant (the same recovery as a restart: seq, session, exactly-once ledger) and binds
  its own ports. Clients given both addresses find it (``tickerplant.failover_client``);
- a primary that finds the lease taken (it checks before every loop turn, and after a
  freeze reads the file again) stops at once, acknowledging nothing more, and comes back as
  the standby of the new primary: what it journaled that the new one never got is moved
  aside (``RESTART``) and its files become copies of the new primary's.

A standby takes over only if its primary counted it in (``attached``: caught up; in sync
mode, every acknowledged batch is on it) and its own loop ran without a gap since (a
frozen standby may have been dropped, and its primary have acknowledged alone); a node
that finds the lease free and last held by itself, or never held, starts as the primary.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import zmq

from tickdb.config import Config
from tickdb.durable import write_atomic
from tickdb.gc_pauses import frozen_objects, keep_pauses_short
from tickdb.lease import Lease, LeaseState
from tickerplant.clock import Clock
from tickerplant.ingest import BatchValidator
from tickerplant.mirror import JournalMirror, MirrorLink
from tickerplant.mirror_state import MirroredSession
from tickerplant.replication import STANDBY_ALIVE
from tickerplant.server import Tickerplant

log = logging.getLogger(__name__)

KEY = "tickerplant"
PRIMARY_FILE = f"{KEY}.primary.json"
CHECK_S = 0.01  # how often a standby looks at the lease: its takeover delay after a kill


class TickerplantNode:
    def __init__(
        self,
        config: Config,
        clock: Clock | None = None,
        on_role: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        settings = config.replication
        self.config = config
        self.clock = clock
        self.on_role = on_role
        self.lease_dir = Path(settings.lease_dir)
        # Who this node is, across its restarts: its host and journal directory.
        self.name = f"{socket.gethostname()}:{config.journal_dir.resolve()}"
        self.lease = Lease(
            self.lease_dir, KEY, f"{self.name}:{os.getpid()}", settings.lease_ttl_ms / 1000
        )
        self.timeout_s = settings.standby_timeout_ms / 1000
        self.stopping = threading.Event()
        self.tp: Tickerplant | None = None
        self.role = ""
        self._validator: BatchValidator | None = None
        self._mirrored: MirroredSession | None = None  # the copy's state, at a takeover

    def stop(self) -> None:
        self.stopping.set()
        tp = self.tp
        if tp is not None:
            tp.stop()

    def run(self) -> None:
        try:
            while not self.stopping.is_set():
                if self._first_claim() or self._follow():
                    self._lead()
        finally:
            self.lease.close()

    # -- primary ----------------------------------------------------------------------------
    def _first_claim(self) -> bool:
        """At start, or back from a fencing: lead if the lease is free and ours to take."""
        state, _ = self.lease.read()
        return (
            self.role == ""
            and (state is None or self._ours(state))
            and self.lease.vacant()
            and self.lease.acquire()
        )

    def _ours(self, state: LeaseState) -> bool:
        return state.holder.rsplit(":", 1)[0] == self.name

    def _lead(self) -> None:
        validator, self._validator = self._validator, None
        mirrored, self._mirrored = self._mirrored, None
        try:
            tp = Tickerplant(
                self.config, self.clock, lease=self.lease, validator=validator, mirrored=mirrored
            )
        except BaseException:
            self.lease.step_down()
            raise
        self.tp = tp
        if self.stopping.is_set():
            tp.stop()
        # As a lone tickerplant does (``tickerplant.cli``): the start-up heap out of the
        # collector's full collections. A standby froze what it built while it waited;
        # taking over, only what the takeover built is frozen, with no collection first:
        # that would be a pause on the failover's path.
        keep_pauses_short(collect=mirrored is None)
        hello = tp.hello()
        endpoints = {k: hello[k] for k in ("address", "publish", "replay", "replication")}
        body = {"epoch": self.lease.epoch, "holder": self.lease.holder, **endpoints}
        write_atomic(self.lease_dir / PRIMARY_FILE, json.dumps(body), durable=False)
        self._set_role("primary", hello)
        try:
            tp.serve()
        finally:
            self.tp = None
            self.lease.step_down()  # frees the flock: a standby takes over at once
        if tp.fenced:
            log.warning("fenced by epoch %s: rejoining as a standby", self._lease_epoch())

    def _lease_epoch(self) -> int:
        state, _ = self.lease.read()
        return state.epoch if state else 0

    # -- standby ----------------------------------------------------------------------------
    def _follow(self) -> bool:
        """Mirror the primary until this node may lead (True) or is stopped (False)."""
        # What a tickerplant builds first (its validator: a second of pyarrow imports and
        # layouts at first) is built before it is needed: not in a takeover.
        self._validator = BatchValidator(
            self.config.tables, self.config.tickerplant.max_message_bytes
        )
        # So is the collector's walk over that start-up heap: done and frozen here, idle,
        # a full collection under load after a takeover visits only what came since.
        keep_pauses_short()
        mirror = JournalMirror(self.config.journal_dir, self.config.journal.fsync == "always")
        ctx: zmq.Context[Any] = zmq.Context()
        link: MirrorLink | None = None
        self._set_role("standby", {"epoch": self._lease_epoch()})
        waiting_logged = False
        # Held while this node mirrors (freed by the kernel if it dies): the primary drops
        # a standby whose connection closed only once this lock is free.
        alive = os.open(self.lease_dir / STANDBY_ALIVE, os.O_RDWR | os.O_CREAT, 0o600)
        holds_alive = False
        try:
            while not self.stopping.is_set():
                if not holds_alive:  # (a previous standby's process may still be exiting)
                    holds_alive = _try_flock(alive)
                state, _ = self.lease.read()
                link = self._connect(ctx, link, state, mirror)
                if link is None:
                    self.stopping.wait(CHECK_S)
                else:  # what the primary sent before it died counts: read it first
                    link.step(CHECK_S)
                if self.lease.vacant():
                    if (link is not None and link.attached) or state is None or self._ours(state):
                        if self.lease.acquire():
                            self._mirrored = mirror.recovery
                            return True
                    else:
                        self.lease.step_down()  # its flock, taken by ``vacant``, let go
                    if not waiting_logged and not self.lease.holds():
                        waiting_logged = True
                        log.error(
                            "the primary is gone, but this standby was not in sync with it: "
                            "not taking over (start the last primary again)"
                        )
            return False
        finally:
            os.close(alive)  # and its lock: a primary does not hold it
            if link is not None:
                link.close()
            mirror.close()
            ctx.term()

    def _connect(
        self,
        ctx: zmq.Context[Any],
        link: MirrorLink | None,
        state: LeaseState | None,
        mirror: JournalMirror,
    ) -> MirrorLink | None:
        """The link to the lease holder's replication port: kept, (re)made, or none yet."""
        if state is None or self._ours(state):
            return link
        if link is not None and link.epoch == state.epoch:
            if time.monotonic() - link.last_heard < 2 * self.timeout_s:
                return link
            log.warning("primary silent on the replication link: connecting again")
        try:
            primary = json.loads((self.lease_dir / PRIMARY_FILE).read_text())
        except (OSError, ValueError):
            return link
        if primary.get("epoch") != state.epoch or primary.get("holder") != state.holder:
            return link  # the new primary has not written its endpoints yet
        if link is not None:
            link.close()
        log.warning("standby of %s (epoch %d)", primary["replication"], state.epoch)
        self._set_role("standby", {"epoch": state.epoch, "primary": primary["address"]})
        return MirrorLink(
            ctx,
            primary["replication"],
            state.epoch,
            mirror,
            self.timeout_s,
            self.config.tickerplant.max_message_bytes,
        )

    def _set_role(self, role: str, info: dict[str, Any]) -> None:
        self.role = role
        if self.on_role is not None:
            self.on_role(
                {
                    **info,
                    "role": role,
                    "pid": os.getpid(),
                    "at": time.time(),
                    "gc_frozen": frozen_objects(),
                }
            )


def _try_flock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True
