"""The data, users and q queries of the q tests through the gateway, over HTTP
(``test_gateway_q.py``) and over its kdb+ port (``test_gateway_kdb.py``), and the
reference answer: the translator's SQL run on one DuckDB holding all the rows."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from queries.q import translate
from support.gateway_data import TODAY, make_data
from support.gateway_stack import start_stack
from tickdb.schema import default_schemas

DATA = make_data(23, 2000, 7, 0.0)
USERS = {"quant": "s3cret", "ops": "other"}

SELECT_WHERE = f"select time, sym, price from trade where sym=`IBM, date={TODAY:%Y.%m.%d}"
BY_SYM = "select vwap:size wavg price, n:count i by sym from trade"
TOTALS = "select total:sum size, hi:max price, n:count i from trade"
BY_DATE = "select n:count i, lo:min price by date from trade where sym in `AAPL`MSFT"


def expected(reference: duckdb.DuckDBPyConnection, q: str) -> pa.Table:
    return reference.sql(translate(q, default_schemas()).sql).to_arrow_table()


def start_q_stack(
    workdir: Path, timeout_s: float = 5.0, sections: Mapping[str, dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The stack over ``DATA`` with the kdb+ port on for ``USERS``, at most 1500 rows; one
    user may run 12 queries at once (``test_many_clients_at_once``); ``sections``: more
    config sections (``{"auth": {...}}``)."""
    return start_stack(
        workdir,
        DATA,
        timeout_s=timeout_s,
        max_rows=1500,
        users=USERS,
        settings={"client_queries": 12},
        sections=sections,
    )
