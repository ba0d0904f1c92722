"""Keeping ``tickdb up``'s components running: restart what exits, with a backoff.

Every component recovers from its own durable state or from the tickerplant's journal (an
RDB replays its gap, a venue its books, the tickerplant continues from its journal), so a
crash is answered by starting the same command again. A component that keeps crashing is
restarted after a backoff that doubles from ``stack.restart_backoff_s`` (0.1 s) up to
``stack.restart_backoff_max_s`` (5 s), and starts over once it stayed up
``stack.restart_reset_s`` (30 s): a broken component cannot spin the machine, and a
component that crashes once a day comes back at once.

A restart binds the addresses the first run bound (``--address``, ``--port``), so the
others find it where they left it even when the config asked for any free port. Every
change is written to ``<data>/run/stack.json`` (``tickdb.stack_status``), which ``tickdb
status`` shows with each component's role, epoch and restarts. The nodes of a pair (venue,
tickerplant) take their role from their lease, read every ``ROLE_CHECK_S``: a takeover is a
change of role the status shows without any exit or restart.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tickdb.config import StackConfig
from tickdb.launch import Launched
from tickdb.stack_status import lease_role, write_status

log = logging.getLogger("tickdb.supervise")

ROLE_CHECK_S = 0.25  # how often the pairs' leases are read (one small file each)


@dataclass(frozen=True)
class RestartPolicy:
    enabled: bool = True
    backoff_s: float = 0.1
    backoff_max_s: float = 5.0
    reset_after_s: float = 30.0

    @classmethod
    def of(cls, stack: StackConfig) -> RestartPolicy:
        return cls(
            stack.restart,
            stack.restart_backoff_s,
            stack.restart_backoff_max_s,
            stack.restart_reset_s,
        )


@dataclass
class Supervised:
    """One component: how to start it again, and what happened to it."""

    name: str
    role: str  # as started: primary | replica | client | standby (``tickdb.stack_status``)
    args: list[str]
    launched: Launched
    # (flag, ready-file key): a restart passes the first run's bound address with the flag.
    pin: tuple[str, str] | None = None
    # More (flag, ready-file key) pairs pinned alike: a gateway's kdb+, order and FIX ports,
    # which clients given several gateways go back to.
    also_pin: tuple[tuple[str, str], ...] = ()
    backoff_s: float = 0.1
    started_at: float = 0.0  # monotonic
    started_wall: float = field(default_factory=time.time)
    restart_at: float | None = None  # monotonic; set while it waits to be restarted
    restarts: int = 0
    epoch: int = 0  # takeovers (standbys): none yet
    last_exit: str | None = None
    pinned: str | None = None  # the bound address restarts reuse
    also_pinned: dict[str, str] = field(default_factory=dict)  # flag -> value
    # A node of a pair: its lease file, which says who is the primary now.
    lease: Path | None = None

    def live_role(self) -> tuple[str, int]:
        """(role, epoch) now: a pair's node as its lease says, the others as started."""
        if self.lease is not None:
            found = lease_role(self.lease, self.launched.pid)
            if found is not None:
                return found
        return self.role, self.epoch

    def restart_args(self) -> list[str]:
        args = list(self.args)
        pinned = dict(self.also_pinned)
        if self.pin is not None and self.pinned is not None:
            pinned[self.pin[0]] = self.pinned
        for flag, value in pinned.items():
            if flag in args:
                args[args.index(flag) + 1] = value
            else:
                args += [flag, value]
        return args

    def describe(self) -> dict[str, Any]:
        launched = self.launched
        role, epoch = self.live_role()
        return {
            "name": self.name,
            "role": role,
            "pid": launched.pid,
            "alive": self.restart_at is None and launched.alive(),
            "ready": self.restart_at is None and launched.alive() and launched.ready(),
            "epoch": epoch,
            "restarts": self.restarts,
            "started": self.started_wall,
            "last_exit": self.last_exit,
            "address": _where(launched.info) or self.pinned or "",
            **({"lease": str(self.lease)} if self.lease is not None else {}),
        }


class Supervisor:
    """Restarts components that exit (``check()``, called in a loop by ``tickdb up``)."""

    def __init__(
        self,
        policy: RestartPolicy,
        relaunch: Callable[[Supervised], Launched],
        status_file: Path | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = policy
        self.relaunch = relaunch
        self.status_file = status_file
        self.clock = clock
        self.components: list[Supervised] = []
        self._ready: set[str] = set()
        self._roles: dict[str, tuple[str, int]] = {}  # the pairs' roles last written
        self._roles_at = 0.0  # monotonic: when the leases were last read

    def add(self, component: Supervised) -> None:
        component.backoff_s = self.policy.backoff_s
        component.started_at = self.clock()
        self._pin(component)
        self.components.append(component)
        self.write_status()

    def check(self) -> list[str]:
        """Restart what is due, schedule what exited; what happened, one line each.

        With restarts off, the first exit is returned as ``stop: <why>``."""
        now = self.clock()
        events: list[str] = []
        for c in self.components:
            if c.restart_at is not None:
                if now >= c.restart_at:
                    events.append(self._restart(c, now))
                continue
            if c.launched.alive():
                if c.name not in self._ready and c.launched.ready():
                    self._ready.add(c.name)
                    self._pin(c)
                    if c.restarts:
                        events.append(f"{c.name} ready again")
                if now - c.started_at >= self.policy.reset_after_s:
                    c.backoff_s = self.policy.backoff_s
                continue
            c.last_exit = exit_reason(c.launched.popen.returncode)
            self._ready.discard(c.name)
            if not self.policy.enabled:
                return [f"stop: {c.name} {c.last_exit} (see {c.launched.log_path})"]
            c.restart_at = now + c.backoff_s
            events.append(f"{c.name} {c.last_exit}; restarting in {c.backoff_s:g} s")
            c.backoff_s = min(c.backoff_s * 2, self.policy.backoff_max_s)
        events += self._role_changes(now)
        if events:
            for event in events:
                log.warning("%s", event)
            self.write_status()
        return events

    def _role_changes(self, now: float) -> list[str]:
        """The pairs' takeovers since the last look (their leases, every ROLE_CHECK_S)."""
        if now - self._roles_at < ROLE_CHECK_S:
            return []
        self._roles_at = now
        changes = []
        for c in self.components:
            if c.lease is None:
                continue
            role = c.live_role()
            if self._roles.get(c.name) != role:
                changes.append(f"{c.name} is now {role[0]} (epoch {role[1]})")
        return changes

    def _restart(self, c: Supervised, now: float) -> str:
        c.restart_at = None
        c.restarts += 1
        c.started_at, c.started_wall = now, time.time()
        try:
            c.launched = self.relaunch(c)
        except OSError as exc:  # could not even start: try again after the next backoff
            c.last_exit = f"failed to start: {exc}"
            return f"{c.name} {c.last_exit}"
        return f"{c.name} restarted (restart {c.restarts}, pid {c.launched.pid})"

    def _pin(self, c: Supervised) -> None:
        if c.pin is not None and c.pinned is None:
            value = c.launched.info.get(c.pin[1])
            if value not in (None, ""):
                c.pinned = str(value)
        for flag, key in c.also_pin:
            value = c.launched.info.get(key)
            if flag not in c.also_pinned and value not in (None, ""):
                c.also_pinned[flag] = str(value)

    def write_status(self) -> None:
        described = [c.describe() for c in self.components]
        pairs = zip(self.components, described, strict=True)
        self._roles = {c.name: (d["role"], d["epoch"]) for c, d in pairs if c.lease is not None}
        if self.status_file is not None:
            write_status(self.status_file, os.getpid(), described)


def exit_reason(code: int | None) -> str:
    if code is None:
        return "running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


def _where(info: dict[str, Any]) -> str:
    return str(info.get("url") or info.get("address") or info.get("endpoint") or "")
