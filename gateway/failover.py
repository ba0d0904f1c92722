"""Which replica answers a part of a query, and running it again elsewhere when it fails.

A backend (a shard's RDB or HDB) may have several replicas (``gateway.backends``). For each
part of a query the ``Picker`` chooses one, in this order of preference:

1. up, current and not suspect: answered its last info(), holds everything (an RDB that is
   not still replaying its backlog), and no query failed there since;
2. up and current, though a query failed there since its last info();
3. never answered yet: asked anyway, so a backend that never came up fails loudly;
4. down at its last info(): asked anyway (a dead one fails at once, ``queries.service_link``).

A replica that is up but not current is never asked: its answer would lack rows. Among the
best, the one with the fewest parts in flight, ties taken in turn (round robin).

``PartRunner.run`` sends the part; when the replica fails with ``unavailable`` (it died, its
connection dropped, it is overloaded), or answers from a new incarnation (it restarted since
its info, so it may not be current), the part runs again on another replica of the same
backend within the query's deadline, and the client sees no error. For an RDB the other
replica must hold the same dates as the first (the HDB parts were built on them:
``gateway.handover``); if none does, ``StaleTopology`` makes the router refresh and run the
whole query again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from gateway.backends import BackendState, Replica
from gateway.errors import QueryError
from gateway.handover import StaleTopology

log = logging.getLogger("gateway.failover")


def rank(replica: Replica) -> int | None:
    if replica.current:
        return 0 if replica.suspect is None else 1
    if replica.info is None:
        return 2
    if replica.error is not None:
        return 3
    return None  # up but catching up


def why_not(replica: Replica) -> str:
    """Why a replica cannot take a part, for the error when no replica can."""
    if replica.suspect:
        return f"{replica.name}: {replica.suspect}"
    if replica.error:
        return f"{replica.name}: {replica.error}"
    info = replica.info
    seq = "" if info is None or info.seq is None else f" (seq {info.seq} of {info.tp_seq})"
    return f"{replica.name}: catching up{seq}"


class Picker:
    """Chooses a replica of a backend for each part (the module docstring)."""

    def __init__(self) -> None:
        self._turns: dict[str, int] = {}  # per backend, so each takes its replicas in turn
        self._lock = threading.Lock()

    def choose(self, state: BackendState, avoid: frozenset[str] = frozenset()) -> Replica | None:
        members = [m for m in state.members() if m.name not in avoid]
        ranked = [(r, m) for m in members if (r := rank(m)) is not None]
        if not ranked:
            return None
        best = min(r for r, _ in ranked)
        choices = [m for r, m in ranked if r == best]
        if len(choices) == 1:
            return choices[0]
        with self._lock:
            turn = self._turns.get(state.name, 0)
            self._turns[state.name] = turn + 1
        fewest = min(m.outstanding for m in choices)
        least = [m for m in choices if m.outstanding == fewest]
        return least[turn % len(least)]


class PartRunner:
    """Sends parts to replicas and fails them over; counts what it did."""

    def __init__(self, refresh: Callable[[BackendState, Replica], None]) -> None:
        self.picker = Picker()
        self.refresh = refresh  # one replica's info(), now (after it restarted)
        self._lock = threading.Lock()
        self.failovers = 0  # parts run again on another replica
        self.restarts_seen = 0  # replies from a replica that restarted since its info()

    def first(self, state: BackendState) -> Replica | QueryError:
        """The replica for a backend's parts in this attempt, or why there is none."""
        chosen = self.picker.choose(state)
        if chosen is not None:
            return chosen
        reasons = "; ".join(why_not(m) for m in state.members())
        return QueryError("unavailable", f"no replica of {state.name} can answer ({reasons})")

    def run(
        self,
        state: BackendState,
        replica: Replica,
        send: Callable[[Replica], Any],
        *,
        compatible: Callable[[Replica], bool],
        abandoned: threading.Event,
    ) -> Any:
        """``send(replica)``'s result, from ``replica`` or, when it fails, another one.

        ``compatible``: whether another replica may answer the same part (an RDB: the
        same dates as the first one); when the only candidates are not, ``StaleTopology``.
        """
        tried: list[Replica] = []
        errors: list[str] = []
        rechecked = False
        while True:
            self._count(replica, outstanding=1, routed=1)
            try:
                result = send(replica)
                if _restarted(replica, result):
                    raise _Restarted
                return result
            except QueryError as exc:
                if exc.kind != "unavailable" or abandoned.is_set():
                    raise
                why = str(exc)
                self._suspect(replica, why)
                tried.append(replica)
            except _Restarted:
                # It answered from a new run of its process: ask what it holds now. If it is
                # current again it may answer once more; its reply, made before, is dropped.
                why = "restarted since its last info()"
                with self._lock:
                    self.restarts_seen += 1
                self.refresh(state, replica)
                if rechecked or not replica.current:
                    self._suspect(replica, why)
                    tried.append(replica)
                rechecked = True
            finally:
                self._count(replica, outstanding=-1)
            # A backend without replicas is named by the caller's error already.
            errors.append(f"{replica.name}: {why}" if state.replicas else why)
            following = self.picker.choose(state, frozenset(r.name for r in tried))
            if following is None:
                raise QueryError("unavailable", "; ".join(errors))
            if not compatible(following):
                raise StaleTopology(f"{following.name} holds other dates than {replica.name}")
            if following is not replica:
                with self._lock:
                    replica.failovers += 1
                    self.failovers += 1
                log.warning(
                    "%s failed (%s); running its part on %s", replica.name, why, following.name
                )
            if abandoned.is_set():
                raise QueryError("unavailable", "query abandoned")
            replica = following

    def _count(self, replica: Replica, *, outstanding: int, routed: int = 0) -> None:
        with self._lock:
            replica.outstanding += outstanding
            replica.routed += routed

    def _suspect(self, replica: Replica, why: str) -> None:
        with self._lock:
            replica.suspect, replica.suspect_at = why, time.monotonic()


class _Restarted(Exception):
    """The reply came from another incarnation than the replica's last info() named."""


def _restarted(replica: Replica, result: Any) -> bool:
    answered = getattr(result, "incarnation", None)
    known = replica.incarnation
    return answered is not None and known is not None and answered != known
