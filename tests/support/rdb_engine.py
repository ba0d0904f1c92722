"""The in-process RDB of the ``rdb`` fixture (conftest.py): its day and its tables, and
requests as the query service hands them to the query engine."""

from __future__ import annotations

import datetime as dt

from queries.service_protocol import QueryRequest
from tickdb.schema import default_schemas

DAY = dt.date(2024, 1, 2)
DAY_NS = 1_704_153_600 * 10**9  # DAY's midnight, UTC
SCHEMAS = {name: s for name, s in default_schemas().items() if name in ("trade", "quote")}


def request(sql: str, syms: dict[str, frozenset[str]] | None = None) -> QueryRequest:
    """``sql`` with no limits and, in ``syms``, the sender's promise of the syms it reads."""
    return QueryRequest(sql, None, None, syms or {})
