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

from hdb.intraday import write_chunk
from hdb.parquet_out import WriteOptions
from hdb.writer import write_partition
from queries.service import QueryClient, QueryError
from rdb.decode import decode_payloads
from rdb.hdbio import reload_and_check
from tickdb.config import Config
from tickdb.types import UNSHARDED, Shard
from tickerplant.journal import journal_path, read_journal, scan_journal
from tickerplant.protocol import KIND_EOD, KIND_UPD, TopicFilter
from tickerplant.pubsub import ShardMap, select_rows

_GROUP = 5000


class EodJobError(Exception):
    pass


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
    wanted = tables or config.rdb.tables or sorted(config.tables)
    unknown = sorted(set(wanted) - set(config.tables))
    if unknown:
        raise EodJobError(f"unknown tables {unknown}")
    schemas = {t: config.tables[t] for t in wanted}
    selection = TopicFilter(frozenset(wanted), None, shard)
    shards = ShardMap()
    limit = config.rdb.memory_limit_mb * 1024 * 1024
    scratch = Path(tempfile.mkdtemp(prefix="eod-", dir=_ensure(config.intraday_dir)))
    rows = dict.fromkeys(wanted, 0)
    memory: dict[str, list[pa.RecordBatch]] = {t: [] for t in wanted}
    pending: dict[str, list[bytes]] = {t: [] for t in wanted}
    in_memory = 0

    def flush_pending() -> None:
        nonlocal in_memory
        for table, payloads in pending.items():
            if payloads:
                batches = decode_payloads(payloads)
                memory[table].extend(batches)
                added = sum(b.num_rows for b in batches)
                rows[table] += added
                in_memory += sum(b.nbytes for b in batches)
                payloads.clear()
        if in_memory > limit:
            for table, batches in memory.items():
                if batches:
                    data = pa.Table.from_batches(batches, schema=schemas[table].arrow)
                    write_chunk(scratch, schemas[table], date, data)
                    batches.clear()
            in_memory = 0

    columns = [
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,.0f}/{task.total:,.0f}"),
        TimeElapsedColumn(),
    ]
    try:
        with Progress(*columns, disable=not show_progress, transient=False) as progress:
            task = progress.add_task(f"read journal {date}", total=scan.records)
            group = 0
            for record in read_journal(path):
                group += 1
                if record.kind == KIND_UPD and record.table in schemas:
                    picked = select_rows(selection, record, shards, config.tables)
                    if picked is not None:
                        pending[record.table].append(bytes(picked.payload))
                elif record.kind == KIND_EOD:
                    break
                if group >= _GROUP:
                    flush_pending()
                    progress.advance(task, group)
                    group = 0
            flush_pending()
            progress.advance(task, group)
            write = progress.add_task(f"write {date}", total=len(schemas))
            for table, schema in schemas.items():
                from hdb.intraday import list_chunks

                chunks = list_chunks(scratch, table, date)
                data = pa.Table.from_batches(memory[table], schema=schema.arrow)
                write_partition(
                    config.hdb_dir,
                    schema,
                    date,
                    data if data.num_rows or not chunks else None,
                    chunks=chunks,
                    shard=shard or UNSHARDED,
                    options=WriteOptions(memory_limit=f"{max(64, limit // 2**21)}MB"),
                )
                progress.advance(write)
            for address in hdb_addresses or []:
                reload_task = progress.add_task(f"reload {address}", total=1)
                _reload(address, date, list(schemas))
                progress.advance(reload_task)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return rows


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
