"""The one error type of the query path and how it maps to HTTP.

``QueryError`` and the read-only check come from ``queries`` (shared with the RDB and HDB
services), so a backend's error and the gateway's own look the same to a client.
"""

from __future__ import annotations

from queries.service import QueryError
from queries.sqlsafety import check_read_only

# QueryError.kind -> HTTP status.
HTTP_STATUS = {
    "bad_query": 400,
    "forbidden": 403,
    "timeout": 504,
    "unavailable": 503,
    "internal": 500,
}

__all__ = ["HTTP_STATUS", "QueryError", "check_read_only"]
