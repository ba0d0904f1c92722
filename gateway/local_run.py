"""Queries no backend is asked for, answered in the gateway's own DuckDB within the limits.

A query that reads no table (``select sum(range % 7) from range(1000000000)``), or only
tables no backend may hold rows of for its dates and syms, runs over the catalog's empty
tables. It used to run there to the end and in full, whatever the limits. Now it runs as a
backend's query does (``queries.service_server``): interrupted at the query's deadline by
the executor's watchdog, its rows streamed in batches and reading stopped after
``max_rows + 1``, so the gateway's memory follows ``max_rows`` x the row width.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

from gateway.errors import QueryError
from queries.service_server import classify
from queries.service_watchdog import Watchdog

_MAX_BATCH_ROWS = 1 << 20


def run_bounded(
    cur: duckdb.DuckDBPyConnection,
    sql: str,
    *,
    deadline: float,
    max_rows: int,
    watchdog: Watchdog,
) -> tuple[pa.Table, bool]:
    """``sql`` on ``cur`` (closed after): at most ``max_rows`` rows, and whether there were
    more; ``QueryError("timeout")`` at ``deadline`` (``time.monotonic()``)."""
    guard = watchdog.watch(cur, deadline)
    try:
        relation = cur.sql(sql)
        if relation is None:
            raise QueryError("bad_query", "the statement returns no rows")
        reader = relation.to_arrow_reader(min(max(max_rows + 1, 2048), _MAX_BATCH_ROWS))
        batches: list[pa.RecordBatch] = []
        rows = 0
        for batch in reader:
            batches.append(batch)
            rows += batch.num_rows
            if rows > max_rows:
                break
        table = pa.Table.from_batches(batches, schema=reader.schema)
        return table.slice(0, max_rows), rows > max_rows
    except QueryError:
        raise
    except Exception as exc:
        if guard.fired:
            raise QueryError(
                "timeout", "the query did not finish within the query time limit"
            ) from None
        raise classify(exc) from None
    finally:
        watchdog.finish(guard)
        cur.close()
