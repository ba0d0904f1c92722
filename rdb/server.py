"""The RDB process: subscription, store, query service, write-down, upkeep, wired together.

Start-up order matters for recovery: read the state file, subscribe from the oldest day not
yet handed over (or the tickerplant's session start), register the intraday chunks already
written for those days, then start ingesting and only then bind the query address, so the
ready file appears once the RDB answers with everything up to the moment it subscribed.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
import time
from pathlib import Path
from typing import Any

from queries.service import QueryError, QueryServer
from rdb.handover import Handover
from rdb.ingest import Ingest
from rdb.maintenance import Maintenance
from rdb.query import QueryEngine
from rdb.recovery import Coverage, RdbState, find_chunks
from rdb.store import Day, Store
from tickdb import curve_links
from tickdb.config import Config
from tickdb.types import UNSHARDED, BackendInfo, Shard, TableInfo
from tickerplant.subscriber import Subscriber

log = logging.getLogger("tickdb.rdb")

# The ingest thread gives up the GIL at every socket call and must win it back from query
# threads encoding results; at the default 5 ms switch interval each win could cost 5 ms, a
# few per group. 0.5 ms bounds that wait (measured: tests/test_gateway_stack.py, twenty).
INGEST_SWITCH_INTERVAL_S = 0.0005
# Query threads (the service's workers and DuckDB's) run this many nice steps below ingest,
# so a busy query load cannot take the CPU ingest needs.
QUERY_NICE = 10


def rdb_name(shard: Shard | None, replica: int = 0) -> str:
    """The RDB's directory name: replicas of one shard each keep their own state."""
    name = "rdb" if shard is None else f"rdb-{shard.index}-of-{shard.count}"
    return name if replica == 0 else f"{name}-r{replica}"


def intraday_root(config: Config, shard: Shard | None, replica: int = 0) -> Path:
    """Where this RDB spills intraday chunks: shards' rows differ for the same table and
    date, and replicas write their chunks independently, so each has a directory."""
    root = config.intraday_dir
    if shard is not None:
        root = root / f"shard-{shard.index}-of-{shard.count}"
    if replica:
        root = root.with_name(f"{root.name}-r{replica}")
    return root


class Rdb:
    def __init__(
        self,
        config: Config,
        *,
        tp_address: str,
        shard: Shard | None = None,
        hdb_addresses: list[str] | None = None,
        address: str | None = None,
        workers: int = 2,
        replica: int = 0,
    ) -> None:
        self.config = config
        self.shard = shard
        # Replicas of a shard are independent RDBs: the same rows, their own state and chunks.
        self.replica = replica
        rc = config.rdb
        self.state = RdbState(config.data_path / "rdb" / rdb_name(shard, replica))
        self.intraday_root = intraday_root(config, shard, replica)
        resume = self.state.resume_seq()
        self.curve = curve_links.for_config(config)
        self.subscriber = Subscriber(
            tp_address,
            tables=rc.tables or None,
            syms=rc.syms or None,
            shard=shard,
            start="session" if resume is None else resume,
            curve=self.curve.client,
        )
        hello = self.subscriber.hello
        tables = rc.tables or sorted(hello.schemas)
        schemas = {t: hello.schemas[t] for t in tables}
        first_date = hello.session
        first_start = hello.session_start_seq
        if resume is not None:
            first_date = min(self.state.pending)
            first_start = self.state.pending[first_date]
        self.store = Store(schemas, first_date)
        self.store.live.start_seq = first_start
        self.coverage = Coverage()
        self._attach_chunks(self.store.live)
        self.state.begin(first_date, first_start)
        self.handover = Handover(
            self.store,
            self.state,
            hdb_dir=config.hdb_dir,
            intraday_root=self.intraday_root,
            shard=shard or UNSHARDED,
            hdb_addresses=list(hdb_addresses or []),
            memory_limit_mb=rc.memory_limit_mb,
        )
        self.maintenance = Maintenance(
            self.store,
            self.state,
            intraday_root=self.intraday_root,
            memory_limit_mb=rc.memory_limit_mb,
        )
        self.ingest = Ingest(
            self.store,
            self.subscriber,
            self._on_roll,
            self.coverage.covered,
            catch_up_to=_backlog_end(self.subscriber),
        )
        self.engine = QueryEngine(
            self.store,
            intraday_dir=self.intraday_root,
            # The cap bounds rows held; queries still need working memory of their own.
            memory_limit_mb=max(256, rc.memory_limit_mb),
            cursors=workers,
            nice=QUERY_NICE,
        )
        self.queries = QueryServer(
            address or rc.address,
            self.engine.prepare_with_dates,
            info=self.info,
            timeout_s=rc.query_timeout_s,
            max_rows=rc.max_rows,
            workers=workers,
            on_error=self._retry_on_vanished_chunk,
            worker_nice=QUERY_NICE,
            setting="rdb.address (--address)",
            curve=self.curve,
            tables=config.tables,
        )
        self.started = time.time()

    def _attach_chunks(self, day: Day) -> None:
        """Register chunks a previous run wrote for ``day`` (pending days only)."""
        for table in day.tables:
            chunks = find_chunks(self.state, self.intraday_root, table, day.date)
            if chunks:
                day.tables[table].chunks.extend(chunks)
                day.tables[table].seq = chunks[-1].seq
                self.coverage.add(table, day.start_seq, chunks)
                log.info("recovery: %d chunks of %s for %s", len(chunks), table, day.date)

    def _on_roll(self, old: Day, next_date: dt.date) -> None:
        live = self.store.live
        # A date the state file knew (replaying after a crash) keeps its name and chunks.
        known = self.state.date_starting_after(live.start_seq)
        if known is not None and known != live.date:
            with self.store.lock:
                live.date = known
        self._attach_chunks(live)
        self.state.begin(live.date, live.start_seq)
        self.handover.submit(old)

    def _retry_on_vanished_chunk(self, error: QueryError) -> bool:
        # A snapshot taken just before a handover may name chunk files deleted after it:
        # a fresh snapshot no longer holds that date, so running again is exact.
        return error.kind == "unavailable"

    @property
    def endpoint(self) -> str:
        return self.queries.endpoint

    def start(self) -> None:
        self.handover.start()
        for date in sorted(self.state.pending):
            if date < self.store.live.date:
                log.warning("state lists %s before the replayed day; ignoring", date)
                self.state.done(date)
        self.ingest.start()
        self.maintenance.start()
        self.queries.start()

    def close(self) -> None:
        self.queries.close()
        self.ingest.stop()
        self.maintenance.stop()
        self.handover.stop()
        self.subscriber.close()
        self.engine.close()

    def info(self) -> dict[str, Any]:
        """The INFO reply (``tickdb.types.BackendInfo``), from one snapshot."""
        snapshot = self.store.snapshot()
        hello = self.subscriber.hello
        dates = tuple(sorted(snapshot.dates))
        tables = {
            name: TableInfo(
                columns=tuple((c.name, c.qtype) for c in schema.columns),
                rows=sum(v[name].rows for v in snapshot.dates.values()),
                dates=dates,
            )
            for name, schema in self.store.schemas.items()
        }
        return BackendInfo(
            role="rdb",
            shard=self.shard,
            tables=tables,
            date=self.store.live.date,
            dates=dates,
            # Every query reply lists the dates its snapshot held (``gateway.handover``).
            query_dates=True,
            states=snapshot.states,
            seq=max(self.ingest.applied_seq, snapshot.seq),
            tp_seq=max(hello.seq, self.subscriber.last_seq),
            last_heartbeat=self.ingest.last_message,
            current=self.ingest.current,
            extra={
                "replica": self.replica,
                "ingest_lag_ms": _rounded(self.ingest.lag.current_ms()),
                "ingest_lag_p99_ms": _rounded(self.ingest.lag.p99_ms()),
                "ingest_lag_window_s": self.ingest.lag.window_ns / 1e9,
                "memory_bytes": sum(d.nbytes for d in self.store.days()),
                "spills": self.maintenance.spills,
                "compactions": self.maintenance.compactions,
                "written": list(self.handover.written),
                "writedown_error": self.handover.last_error,
                "ingest_error": repr(self.ingest.error) if self.ingest.error else None,
                "skipped_on_replay": self.ingest.skipped,
            },
        ).to_json()


def _backlog_end(subscriber: Subscriber) -> int | None:
    """The seq the subscriber's start-up replay reached, when it has a backlog to hand over
    (``Ingest.current``); None when it starts level with the tickerplant."""
    target = max(subscriber.last_seq, subscriber.hello.seq)
    if subscriber.replayed_records == 0 and subscriber.last_seq >= target:
        return None
    return target


def _rounded(ms: float | None) -> float | None:
    return None if ms is None else round(ms, 3)


def run_rdb(rdb: Rdb, ready_file: Path | None, stop: Any) -> None:
    """Serve until ``stop`` is set; exits non-zero if ingest died (restart replays)."""
    from tickdb.malloc import keep_large_buffers
    from tickdb.ready import write_ready

    sys.setswitchinterval(INGEST_SWITCH_INTERVAL_S)
    # Its subscription receives messages of up to a megabyte: kept mapped between them,
    # not faulted in again each time (a server process's choice, not the Subscriber's).
    keep_large_buffers()
    rdb.start()
    # Ready once current: a launcher (tickdb up, a test) then sees every row of the day.
    # Queries are answered before (INFO says current: false, and the gateway waits).
    while not rdb.ingest.current and rdb.ingest.error is None and not stop.wait(0.005):
        pass
    write_ready(ready_file, {"address": rdb.endpoint, **{"role": "rdb"}})
    log.info("rdb serving %s at %s", rdb.store.live.date, rdb.endpoint)
    try:
        while not stop.wait(0.2):
            if rdb.ingest.error is not None:
                raise SystemExit(1)
    finally:
        rdb.close()
