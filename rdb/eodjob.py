"""``tickdb eod --date D``: write session D's partitions straight from the journal.

For after a crash, or a day no RDB held: it reads ``<data>/journal/D.tpj`` (the day's own
file: every record of session D and nothing else), keeps the wanted tables and shard, spills
to intraday chunks in a private scratch directory past ``rdb.memory_limit_mb`` so a large
day never sits whole in memory, writes each partition with the HDB writer (atomic replace,
so rerunning is harmless and gives the same files) and RELOADs the given HDBs. Progress is
shown with rich.
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
from pathlib import Path

import pyarrow as pa
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from hdb.intraday import list_chunks, write_chunk
from hdb.parquet_out import WriteOptions
from hdb.writer import write_partition
from queries.service import QueryClient, QueryError
from rdb.decode import decode_payloads
from rdb.hdbio import reload_and_check
from tickdb.config import Config
from tickdb.schema import TableSchema
from tickdb.types import UNSHARDED, Shard
from tickerplant.journal import ScanResult, journal_path, read_journal, scan_journal
from tickerplant.protocol import KIND_EOD, KIND_UPD, TopicFilter
from tickerplant.pubsub import ShardMap, select_rows

_GROUP = 5000  # journal records read between decodes (and progress updates)


class EodJobError(Exception):
    pass


class DayRows:
    """The rows of the day read so far: payloads waiting to be decoded, decoded batches in
    memory, and intraday chunks in ``scratch`` once memory passed ``limit_bytes``."""

    def __init__(
        self, schemas: dict[str, TableSchema], date: dt.date, scratch: Path, limit_bytes: int
    ) -> None:
        self.schemas = schemas
        self.date = date
        self.scratch = scratch
        self.limit_bytes = limit_bytes
        self.rows = dict.fromkeys(schemas, 0)
        self.memory: dict[str, list[pa.RecordBatch]] = {t: [] for t in schemas}
        self.pending: dict[str, list[bytes]] = {t: [] for t in schemas}
        self.in_memory = 0

    def add(self, table: str, payload: bytes) -> None:
        self.pending[table].append(payload)

    def flush(self) -> None:
        """Decode the pending payloads; spill everything in memory past the limit."""
        for table, payloads in self.pending.items():
            if payloads:
                batches = decode_payloads(payloads)
                self.memory[table].extend(batches)
                self.rows[table] += sum(b.num_rows for b in batches)
                self.in_memory += sum(b.nbytes for b in batches)
                payloads.clear()
        if self.in_memory > self.limit_bytes:
            self.spill()

    def spill(self) -> None:
        for table, batches in self.memory.items():
            if batches:
                data = pa.Table.from_batches(batches, schema=self.schemas[table].arrow)
                write_chunk(self.scratch, self.schemas[table], self.date, data)
                batches.clear()
        self.in_memory = 0

    def chunks(self, table: str) -> list[Path]:
        return list_chunks(self.scratch, table, self.date)

    def in_memory_table(self, table: str) -> pa.Table:
        return pa.Table.from_batches(self.memory[table], schema=self.schemas[table].arrow)


def run_eod_job(
    config: Config,
    date: dt.date,
    *,
    shard: Shard | None = None,
    hdb_addresses: list[str] | None = None,
    tables: list[str] | None = None,
    show_progress: bool = True,
) -> dict[str, int]:
    """Write D's partitions; returns rows written per table."""
    path = journal_path(config.journal_dir, date)
    scan = ended_session(path, date)
    schemas = wanted_schemas(config, tables)
    limit = config.rdb.memory_limit_mb * 1024 * 1024
    scratch = Path(tempfile.mkdtemp(prefix="eod-", dir=_ensure(config.intraday_dir)))
    day = DayRows(schemas, date, scratch, limit)
    try:
        with _progress(show_progress) as progress:
            read_day(
                path, scan, config, TopicFilter(frozenset(schemas), None, shard), day, progress
            )
            options = WriteOptions(memory_limit=f"{max(64, limit // 2**21)}MB")
            write_day(config.hdb_dir, day, shard or UNSHARDED, options, progress)
            for address in hdb_addresses or []:
                reload_task = progress.add_task(f"reload {address}", total=1)
                _reload(address, date, list(schemas))
                progress.advance(reload_task)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return day.rows


def ended_session(path: Path, date: dt.date) -> ScanResult:
    """The journal's scan, if it holds a whole, ended session; else EodJobError says why."""
    if not path.exists():
        raise EodJobError(f"no journal for {date} at {path}")
    scan = scan_journal(path)
    if scan.corrupt:
        raise EodJobError(f"{scan.describe()} Repair it first: tickdb journal repair")
    if not scan.ends_with_eod:
        raise EodJobError(
            f"session {date} has not ended (no end-of-day record in {path}); "
            "roll it first with `tickdb tp roll`"
        )
    return scan


def wanted_schemas(config: Config, tables: list[str] | None) -> dict[str, TableSchema]:
    """The tables to write: those asked for, else the RDB's, else every configured one."""
    wanted = tables or config.rdb.tables or sorted(config.tables)
    unknown = sorted(set(wanted) - set(config.tables))
    if unknown:
        raise EodJobError(f"unknown tables {unknown}")
    return {t: config.tables[t] for t in wanted}


def read_day(
    path: Path,
    scan: ScanResult,
    config: Config,
    selection: TopicFilter,
    day: DayRows,
    progress: Progress,
) -> None:
    """Collect the selected rows of every update up to the end-of-day record into ``day``."""
    task = progress.add_task(f"read journal {day.date}", total=scan.records)
    shards = ShardMap()
    group = 0
    for record in read_journal(path):
        group += 1
        if record.kind == KIND_UPD and record.table in day.schemas:
            picked = select_rows(selection, record, shards, config.tables)
            if picked is not None:
                day.add(record.table, bytes(picked.payload))
        elif record.kind == KIND_EOD:
            break
        if group >= _GROUP:
            day.flush()
            progress.advance(task, group)
            group = 0
    day.flush()
    progress.advance(task, group)


def write_day(
    hdb_dir: Path, day: DayRows, shard: Shard, options: WriteOptions, progress: Progress
) -> None:
    """One partition per table, from its chunks and the rows still in memory."""
    task = progress.add_task(f"write {day.date}", total=len(day.schemas))
    for table, schema in day.schemas.items():
        chunks = day.chunks(table)
        data = day.in_memory_table(table)
        write_partition(
            hdb_dir,
            schema,
            day.date,
            data if data.num_rows or not chunks else None,
            chunks=chunks,
            shard=shard,
            options=options,
        )
        progress.advance(task)


def _progress(show: bool) -> Progress:
    columns = [
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,.0f}/{task.total:,.0f}"),
        TimeElapsedColumn(),
    ]
    return Progress(*columns, disable=not show, transient=False)


def _ensure(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def _reload(address: str, date: dt.date, tables: list[str]) -> None:
    client = QueryClient(address, timeout_s=10.0)
    try:
        if not reload_and_check(client, date, tables):
            raise EodJobError(f"HDB {address} reloaded but does not list {date}")
    except QueryError as exc:
        raise EodJobError(f"HDB {address}: {exc}") from None
    finally:
        client.close()
