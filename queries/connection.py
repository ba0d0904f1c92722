"""Every DuckDB database that runs user SQL is set up here, in one order: macros, then lock-down.

The RDB, the HDB and the gateway (its binding catalog, its merge database, the in-process
backends of the tests) all answer the same SQL, so they must know the same functions: a
macro missing from one of them fails a query only on the route that reaches it (a merge in
the gateway, say). The macros are created in the database, where every cursor sees them,
and before ``lock_down`` locks the configuration.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import duckdb

from queries.macros import register_database_macros
from queries.sqlsafety import lock_down


def prepare_database(
    con: duckdb.DuckDBPyConnection,
    *,
    allowed_directories: Iterable[str | Path] = (),
    temp_directory: str | Path | None = None,
) -> None:
    """Analytics macros, then the in-DuckDB defences; call once, before any user query.

    Settings of the caller's own (memory, threads, caches) must be set before: the lock-down
    locks the configuration.
    """
    register_database_macros(con)
    lock_down(con, allowed_directories=allowed_directories, temp_directory=temp_directory)
