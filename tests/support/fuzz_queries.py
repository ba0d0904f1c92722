"""Fuzz targets of the query front ends: the q translator and the SQL sandbox.

Any text a client sends must end in a translation or ``TranslationError`` (q), and in
acceptance or ``QueryError`` (SQL). What the SQL check accepts is then run on a DuckDB
database locked down as the query ports lock theirs: it must never need the lock-down,
that is never hit a permission error or the locked configuration, and never change the
catalog. A query that runs too long is interrupted (that is not a finding).
"""

from __future__ import annotations

import contextlib
import threading

import duckdb

from queries.connection import prepare_database
from queries.q import TranslationError, translate
from queries.q.lexer import tokenize
from queries.q.vocab import FUNCTIONS, QUERY_KEYWORDS, TEMPLATE_WORDS
from queries.service_protocol import QueryError
from queries.sqlsafety import FORBIDDEN_FUNCTIONS, FORBIDDEN_PREFIXES, check_read_only
from support.fuzz_core import Target
from tickdb.schema import default_schemas

SCHEMAS = default_schemas()
RUN_TIMEOUT_S = 2.0


def text_of(data: bytes) -> str:
    return data.decode("utf-8", "replace")


# -- q --------------------------------------------------------------------------------------


def fuzz_q(data: bytes) -> None:
    """The lexer alone, then the translator (which parses)."""
    text = text_of(data)
    with contextlib.suppress(TranslationError):
        tokenize(text)
    try:
        result = translate(text, SCHEMAS)
    except TranslationError:
        return
    assert result.sql, "an empty translation"


Q_SEEDS = [
    "select from trade",
    "select max price by sym from trade where date=2024.01.02",
    "select vwap:size wavg price by sym from trade",
    "aj[`sym`time; select from trade; quote]",
    "select from trade where price>100, sym=`AAPL",
    "select from trade where time within 09:30 16:00",
    "exec price by sym from trade",
    "select ema[0.5;price] from trade",
    "select d:max price - avg deltas price by sym from trade",
    "update x:price from trade where price>avg price",
    "select 7 xbar time from trade",
    "delete price from trade where size>1",
    'select from trade where sym like "b*"',
    "select[5] from trade",
    "`sym xasc select from trade lj `sym xkey select sym, bid from quote",
    "select count i by 0D00:05 xbar time from trade",
    "wj[-2000000000 0+\\:trade.time; `sym`time; trade; (quote; (max;`ask))]",
    "select from trade where (sym=`a) and size>100, price within 1 2.5e3",
    "select sum size by sym, 1 xbar time.minute from trade where date within 2024.01.01 2024.01.31",
]
Q_TOKENS = tuple(
    w.encode()
    for w in sorted(
        {*QUERY_KEYWORDS, *TEMPLATE_WORDS, *FUNCTIONS}
        | {"trade", "quote", "sym", "price", "size", "time", "date", "i", "(", ")", "[", "]"}
        | {";", ":", "`", '"', "/:", "\\:", "'", "0N", "0w", "-", ",", " ", "\n/ ", "{"}
    )
)


# -- SQL ------------------------------------------------------------------------------------

_database: duckdb.DuckDBPyConnection | None = None
_catalog: tuple[object, ...] | None = None
_CATALOG_SQL = (
    "SELECT (SELECT count(*) FROM duckdb_tables()), (SELECT count(*) FROM duckdb_views()), "
    "(SELECT count(*) FROM duckdb_functions()), (SELECT count(*) FROM duckdb_sequences()), "
    "(SELECT count(*) FROM duckdb_types()), (SELECT count(*) FROM trade)"
)


def locked_database() -> duckdb.DuckDBPyConnection:
    """One in-memory database with a ``trade`` and a ``quote`` table, locked down."""
    global _database, _catalog
    if _database is None:
        con = duckdb.connect()
        con.execute("SET threads = 1")
        con.execute("SET memory_limit = '256MB'")
        con.execute(
            "CREATE TABLE trade AS SELECT TIMESTAMP '2024-01-02 09:30:00' + INTERVAL (i) SECOND "
            "AS time, ['A','B'][i % 2 + 1] AS sym, 10.0 + i AS price, i AS size, "
            "DATE '2024-01-02' AS date FROM range(10) t(i)"
        )
        con.execute(
            "CREATE TABLE quote AS SELECT time, sym, price AS bid, price + 1 AS ask, 1 AS bsize, "
            "1 AS asize, date FROM trade"
        )
        prepare_database(con)
        _database = con
        _catalog = con.execute(_CATALOG_SQL).fetchone()
    return _database


def _escaped(exc: duckdb.Error) -> bool:
    """An error only the lock-down raises: the check let through what it should stop."""
    return isinstance(exc, duckdb.PermissionException) or "configuration has been locked" in str(
        exc
    )


def fuzz_sql(data: bytes) -> None:
    sql = text_of(data)
    try:
        check_read_only(sql)
    except QueryError as exc:
        assert exc.kind in ("forbidden", "bad_query"), exc.kind
        return
    con = locked_database().cursor()
    timer = threading.Timer(RUN_TIMEOUT_S, con.interrupt)
    timer.start()
    try:
        con.execute(sql).fetchmany(1000)
    except duckdb.Error as exc:
        assert not _escaped(exc), f"the SQL check accepted what the lock-down refused: {exc}"
    finally:
        timer.cancel()
        con.close()
    after = locked_database().execute(_CATALOG_SQL).fetchone()
    assert after == _catalog, f"an accepted query changed the catalog: {_catalog} -> {after}"


SQL_SEEDS = [
    "select * from trade",
    "select sym, count(*) n, sum(price*size)/sum(size) vwap from trade group by sym",
    "with t as (select 1 x) select * from t",
    "from trade select sym where price > 1",
    "select * from (values (1), (2)) v(x) union all select 3",
    "select list_transform([1, 2], x -> x + 1)",
    "select t.sym, q.bid from trade t asof join quote q on t.sym = q.sym and t.time >= q.time",
    "pivot trade on sym in ('A', 'B') using sum(price)",
    "select * from read_csv('x.csv')",
    "select * from 'x.parquet'",
    "select current_setting('memory_limit')",
    "select * from duckdb_settings()",
    "show tables",
    "summarize trade",
    "copy trade to 'x.csv'",
    "attach 'x.db'",
    "select * from query('select 1')",
    "select getenv('HOME')",
    "set memory_limit = '1GB'",
    "select * from glob('*')",
    "select * from trade where sym in (select sym from quote) order by time desc limit 3",
]
SQL_TOKENS = tuple(
    w.encode()
    for w in sorted(
        FORBIDDEN_FUNCTIONS
        | {p + "x" for p in FORBIDDEN_PREFIXES}
        | {"select", "from", "where", "with", "as", "union", "values", "show", "describe"}
        | {"summarize", "pivot", "unpivot", "using", "on", "in", "table", "lateral", "join"}
        | {"set", "pragma", "call", "copy", "attach", "export", "install", "load", "create"}
        | {"(", ")", "'", '"', ";", ",", ".", "*", "main.", "system.", "x.csv", "'/etc/passwd'"}
        | {"->", "::", "$$", "--", "/*", "*/", "e'", "?", "$1", "columns(*)", "struct_pack("}
    )
)

TARGETS = [
    Target(
        "q_translate",
        "queries.q tokenize, parse, translate",
        fuzz_q,
        lambda: [q.encode() for q in Q_SEEDS],
        Q_TOKENS,
    ),
    Target(
        "sql_sandbox",
        "queries.sqlsafety.check_read_only, then a locked-down DuckDB",
        fuzz_sql,
        lambda: [q.encode() for q in SQL_SEEDS],
        SQL_TOKENS,
    ),
]
