"""The backends a gateway routes to, and what each one holds.

A backend is anything with ``query(sql, timeout_s=, max_rows=)`` and ``info()``: the real
``queries.service.QueryClient`` (RDB and HDB processes; thread-safe, so one per address) or
an in-process ``gateway.local.LocalBackend``.
``Topology`` keeps the last ``info()`` of each one, read as a ``tickdb.types.BackendInfo``
(role, shard, dates, schemas, sequence numbers), and answers "could this backend hold rows
with these dates and syms?". An unknown backend (never answered) is assumed to hold
anything, so it is asked and fails loudly rather than being skipped silently.

A backend may have replicas: processes holding the same rows (a shard's RDBs, or HDBs,
started with ``tickdb up --replicas``). The planner sees one ``BackendState`` per backend,
its info merged from its replicas' (``gateway.replica_info``); each ``Replica`` keeps its own
info and health, and ``gateway.failover`` picks the replica that answers each part.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from gateway.predicates import MAX_DATE, MIN_DATE, DateSet, Restriction
from gateway.replica_info import merged_info
from queries.service_client import QueryClient
from queries.service_protocol import SymScope
from tickdb.types import BackendInfo, Shard, TableInfo

log = logging.getLogger("gateway.backends")


class Backend(Protocol):
    # ``syms``: per table, the only syms the rows ``sql`` reads can have (an RDB then scans
    # only those: ``rdb.symindex``); a backend may ignore it.
    def query(
        self, sql: str, *, timeout_s: float, max_rows: int, syms: SymScope | None = None
    ) -> Any: ...

    def info(self) -> dict[str, Any]: ...  # JSON, as ``BackendInfo.to_json()`` writes it


def _parse_date(value: Any) -> dt.date:
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


@dataclass(eq=False)
class Replica:
    """One process serving a backend; ``info`` is None until it first answers."""

    name: str
    role: str  # "rdb" | "hdb": as configured; info() must agree
    backend: Backend
    info: BackendInfo | None = None
    error: str | None = None
    checked_at: float = 0.0  # time.time() of the last info() attempt
    ok_at: float | None = None  # time.time() of the last successful info()
    # Why the last query sent here failed (None: it did not); an info() begun after that
    # clears it (``suspect_at``, monotonic), so a dead replica is avoided at once.
    suspect: str | None = None
    suspect_at: float = 0.0
    # Counters: parts of queries in flight here, sent here, and run again elsewhere after
    # failing here (``gateway.failover``).
    outstanding: int = 0
    routed: int = 0
    failovers: int = 0

    @property
    def up(self) -> bool:
        return self.info is not None and self.error is None

    @property
    def current(self) -> bool:
        """Up and holding everything (an RDB that is not still replaying its backlog)."""
        return self.up and self.info is not None and self.info.current is not False

    @property
    def shard(self) -> Shard | None:
        return None if self.info is None else self.info.shard

    @property
    def incarnation(self) -> str | None:
        """The run of the process that gave the last info (``QueryResult.incarnation``)."""
        service = {} if self.info is None else self.info.extra.get("query_service")
        value = service.get("incarnation") if isinstance(service, dict) else None
        return None if value is None else str(value)


@dataclass(eq=False)
class BackendState(Replica):
    """One backend as the planner sees it: a shard's RDB or HDB.

    Without ``replicas`` it is its own one replica. With them, ``info``, ``error`` and
    ``ok_at`` are derived from theirs at every refresh: the info merged from the replicas
    that are up, an error only when none is.
    """

    replicas: list[Replica] = field(default_factory=list)

    def members(self) -> list[Replica]:
        """The processes that serve this backend."""
        return self.replicas or [self]

    def tables(self) -> Mapping[str, TableInfo]:
        return {} if self.info is None else self.info.tables

    def session_date(self) -> dt.date | None:
        return None if self.info is None else self.info.date

    def dates(self, table: str, today: dt.date | None = None) -> DateSet | None:
        """Dates this backend may hold for ``table`` (None: unknown, assume any).

        Open-ended upwards, so a roll we have not seen yet cannot hide data: an RDB holds
        its session date and later ones; an HDB its partitions and any date after its last
        one and before ``today`` (the RDBs' session date), which it may have gained since.
        """
        if self.info is None:
            return None
        if self.role == "rdb":
            # During end of day an RDB still holds the old day while it writes it down.
            held = list(self.info.dates or ())
            day = self.info.date
            days = held + ([day] if day else [])
            return DateSet.between(min(days)) if days else None
        meta = self.tables().get(table)
        if meta is None:
            return DateSet(()) if self.tables() else None
        days = sorted(meta.dates)
        newer_until = MAX_DATE if today is None else today - dt.timedelta(days=1)
        newer = DateSet.between(days[-1] if days else MIN_DATE, newer_until)
        return DateSet.of(days).union(newer)

    def may_hold(self, table: str, restriction: Restriction, today: dt.date | None = None) -> bool:
        shard = self.shard
        if (
            restriction.syms is not None
            and shard is not None
            and not any(shard.owns(sym) for sym in restriction.syms)
        ):
            return False
        if restriction.dates is not None:
            held = self.dates(table, today)
            if held is not None and held.intersect(restriction.dates).empty:
                return False
        return True


class Topology:
    """All backends, refreshed by calling ``info()`` (on demand or from a timer thread)."""

    def __init__(self, states: list[BackendState], info_timeout_s: float = 2.0) -> None:
        self.states = states
        self.by_name = {s.name: s for s in states}
        self.info_timeout_s = info_timeout_s
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.version = 0  # bumped when any schema or placement changes
        # Queries run again because an RDB's dates changed since its last info().
        self.stale_retries = 0

    def refresh(self) -> None:
        threads = [
            threading.Thread(target=self.refresh_replica, args=(s, m), daemon=True)
            for s in self.states
            for m in s.members()
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(self.info_timeout_s + 1.0)

    def refresh_replica(self, state: BackendState, replica: Replica) -> None:
        """Ask one replica for its info (``state``'s own when it has no replicas)."""
        started = time.monotonic()
        replica.checked_at = time.time()
        try:
            backend = replica.backend
            raw = (
                backend.info(timeout_s=self.info_timeout_s)
                if isinstance(backend, QueryClient)
                else backend.info()
            )
            info = BackendInfo.from_json(raw)
            _check_replica(state, replica, info)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            if error != replica.error:  # once per change, not at every refresh
                log.warning("%s does not answer info(): %s", replica.name, error)
            replica.error = error
            if state.replicas:
                with self._lock:
                    self._merge(state)
            return
        with self._lock:
            if not state.replicas and _placement(info) != _placement(state.info):
                self.version += 1
            replica.info, replica.error, replica.ok_at = info, None, time.time()
            if replica.suspect is not None and started > replica.suspect_at:
                replica.suspect = None
            if state.replicas:
                self._merge(state)

    def _merge(self, state: BackendState) -> None:
        """``state``'s picture from its replicas' (under ``_lock``)."""
        members = state.replicas
        up = [r.info for r in members if r.up and r.info is not None]
        known = up or [r.info for r in members if r.info is not None]
        info = merged_info(known) if known else None
        if _placement(info) != _placement(state.info):
            self.version += 1
        state.info = info
        state.error = None if up else "; ".join(f"{r.name}: {r.error}" for r in members)
        state.checked_at = max(r.checked_at for r in members)
        state.ok_at = max((r.ok_at for r in members if r.ok_at), default=None)

    def start(self, interval_s: float) -> None:
        def loop() -> None:
            while not self._stop.wait(interval_s):
                self.refresh()

        self._thread = threading.Thread(target=loop, name="gateway-topology", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def shard_count(self) -> int:
        """Largest shard count any backend reports; 1 when nothing is sharded."""
        counts = [s.shard.count for s in self.states if s.shard]
        if any(s.info is None for s in self.states):
            return max(counts, default=2)  # someone has not answered: assume sharded
        return max(counts, default=1)

    def candidates(self, table: str, restriction: Restriction) -> list[BackendState]:
        today = self.session_date()
        return [s for s in self.states if s.may_hold(table, restriction, today)]

    def session_date(self) -> dt.date | None:
        """The earliest session date the RDBs report (None if no RDB has answered)."""
        days = [d for s in self.states if s.role == "rdb" and (d := s.session_date())]
        return min(days, default=None)

    def table_columns(self) -> dict[str, list[tuple[str, str]]]:
        """Column (name, qtype) lists reported by the backends, first answer wins."""
        out: dict[str, list[tuple[str, str]]] = {}
        for state in self.states:
            for name, meta in state.tables().items():
                if name not in out and meta.columns:
                    out[name] = list(meta.columns)
        return out


class NotAReplica(ValueError):
    """A process listed as a replica reports another role or shard than its peers."""


def _check_replica(state: BackendState, replica: Replica, info: BackendInfo) -> None:
    """A replica must hold what its peers hold: same role, same shard. One that does not
    (a wrong address in the config) is kept out, with an error naming the difference."""
    if not state.replicas:
        return
    for peer in state.replicas:
        known = peer.info
        if peer is replica or known is None or peer.error is not None:
            continue
        if (known.role, known.shard) != (info.role, info.shard):
            why = (
                f"reports {info.role} shard {info.shard or 'all'}, but its peer {peer.name} "
                f"{known.role} shard {known.shard or 'all'}: not a replica of the same backend"
            )
            raise NotAReplica(why)
        return


def _placement(info: BackendInfo | None) -> Any:
    """What routing depends on: a change bumps ``Topology.version``."""
    if info is None:
        return None
    return (
        info.role,
        info.shard,
        info.date,
        tuple(sorted((n, m.columns, m.dates) for n, m in info.tables.items())),
    )
