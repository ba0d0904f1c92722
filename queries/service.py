"""The query service shared by the RDB and the HDB: read-only DuckDB SQL over ZeroMQ.

``QueryServer`` answers ``[QUERY, json]`` with ``[OK, meta, Arrow IPC stream]`` or
``[ERR, {"kind", "error"}]``; ``QueryClient`` is its client. The pieces live in
``service_protocol`` (frames, QueryError, QueryResult), ``service_server``,
``service_client`` and ``sqlsafety`` (``check_read_only``, ``lock_down``); see
``docs/query-service.md``.
"""

from __future__ import annotations

from queries.service_client import QueryClient
from queries.service_protocol import (
    ERR,
    ERROR_KINDS,
    INFO,
    OK,
    QUERY,
    QueryError,
    QueryResult,
)
from queries.service_server import QueryServer
from queries.sqlsafety import check_read_only, lock_down

__all__ = [
    "ERR",
    "ERROR_KINDS",
    "INFO",
    "OK",
    "QUERY",
    "QueryClient",
    "QueryError",
    "QueryResult",
    "QueryServer",
    "check_read_only",
    "lock_down",
]
