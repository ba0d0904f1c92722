"""The read-only check on user SQL and the DuckDB settings behind it."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from queries.service import QueryError, check_read_only, lock_down

ALLOWED = [
    "select 1",
    "SELECT sym, avg(price) FROM trade WHERE date = DATE '2024-01-02' GROUP BY sym",
    "from trade select sym, max(price) group by all",
    "with a as (select * from trade) select * from a union all select * from trade",
    "values (1, 'a'), (2, 'b')",
    "select * from trade asof join quote using (sym, time)",
    "select * from ohlcv('trade', interval 1 minute)",
    "select time_bucket(interval '1 minute', time) b, sum(size) from trade group by b",
    "pivot trade on sym in ('A', 'B') using sum(size)",
    "select * from range(10)",
    "select * from main.trade",
]

FORBIDDEN = [
    ("copy trade to 'x.csv'", "COPY"),
    ("attach 'x.db' as x", "ATTACH"),
    ("detach x", "DETACH"),
    ("install httpfs", "LOAD"),
    ("load httpfs", "LOAD"),
    ("set threads = 1", "SET"),
    ("reset threads", "SET"),
    ("set variable x = 1", "SET"),
    ("pragma version", "PRAGMA"),
    ("call pragma_version()", "CALL"),
    ("export database 'x'", "EXPORT"),
    ("create table x as select 1", "CREATE"),
    ("insert into trade values (1)", "INSERT"),
    ("update trade set price = 0", "UPDATE"),
    ("delete from trade", "DELETE"),
    ("drop table trade", "DROP"),
    ("explain select 1", "EXPLAIN"),
    ("pivot trade on sym using sum(size)", "PIVOT"),
    ("select 1; select 2", "one statement"),
    ("select * from read_csv('/etc/passwd')", "read_csv()"),
    ("select * from read_csv_auto('/etc/passwd')", "read_csv_auto()"),
    ("select * from read_parquet('/x/*.parquet')", "read_parquet()"),
    ("select * from parquet_scan('/x.parquet')", "parquet_scan()"),
    ("select * from parquet_metadata('/x.parquet')", "parquet_metadata()"),
    ("select * from read_json_auto('/x.json')", "read_json_auto()"),
    ("select * from read_text('/etc/hostname')", "read_text()"),
    ("select * from read_blob('/etc/hostname')", "read_blob()"),
    ("select * from glob('/etc/*')", "glob()"),
    ("select * from sniff_csv('/etc/passwd')", "sniff_csv()"),
    ("select getenv('HOME')", "getenv()"),
    ("select 'HOME'.getenv()", "getenv()"),
    ("select current_setting('allowed_directories')", "current_setting()"),
    ("select * from duckdb_settings()", "duckdb_settings()"),
    ("select * from duckdb_settings", "duckdb_settings"),
    ("select * from pragma_database_list", "pragma_database_list"),
    ("select * from query('select 42')", "query()"),
    ("select * from query_table('trade')", "query_table()"),
    ("select * from 'trade.csv'", "trade.csv"),
    ('select * from "/etc/passwd"', "/etc/passwd"),
    ("with t as (select * from read_parquet('a')) select * from t", "read_parquet()"),
    # Settings (directories, limits) and the forms that list the database.
    ("select * from pg_settings", "pg_settings"),
    ("select name, setting from pg_catalog.pg_settings", "pg_settings"),
    ("from pg_settings", "pg_settings"),
    ("select getvariable('x')", "getvariable()"),
    ("select * from duckdb_databases()", "duckdb_databases()"),
    ("select * from duckdb_temporary_files()", "duckdb_temporary_files()"),
    ("select * from pragma_database_size()", "pragma_database_size()"),
    ("select * from summary((select 1))", "summary()"),
    ("select * from truncate_duckdb_logs()", "truncate_duckdb_logs()"),
    ("select * from enable_profiling()", "enable_profiling()"),
    ("describe trade", "DESCRIBE"),
    ("show tables", "SHOW"),
    ("show all tables", "SHOW"),
    ("show databases", "SHOW"),
    ("summarize trade", "SUMMARIZE"),
    ("select * from (describe trade)", "DESCRIBE"),
    ("from (summarize select 1)", "SUMMARIZE"),
    ("select * from trade where sym in (select * from (show tables))", "SHOW"),
    # sqlglot reads these as opaque commands: DuckDB's own tree is what catches them.
    ("show select * from duckdb_settings()", "SHOW"),
    ("show select getenv('HOME')", "SHOW"),
    ("select (select count(*) from read_csv('/etc/passwd'))", "read_csv()"),
    ("select * from trade where sym in (select * from glob('*'))", "glob()"),
]


@pytest.mark.parametrize("sql", ALLOWED)
def test_read_only_queries_pass(sql: str) -> None:
    check_read_only(sql)


@pytest.mark.parametrize(("sql", "named"), FORBIDDEN)
def test_forbidden_constructs_are_named(sql: str, named: str) -> None:
    with pytest.raises(QueryError) as info:
        check_read_only(sql)
    assert info.value.kind == "forbidden"
    assert named.lower() in str(info.value).lower()


@pytest.mark.parametrize(
    ("sql", "named"),
    [
        ("select * from quote_metrics('qu' || 'ote')", "argument 1 names a table"),
        ("select * from slippage('fill', lower('QUOTE'))", "argument 2 names a table"),
        ("select * from OHLCV((select 'quote'), INTERVAL 1 MINUTE)", "argument 1 names a table"),
    ],
)
def test_a_table_macro_takes_its_tables_as_quoted_names(sql: str, named: str) -> None:
    """What a query reads is decided from its text (routing, read:TABLE roles): a table
    name computed when the query runs would be read unchecked."""
    with pytest.raises(QueryError) as info:
        check_read_only(sql)
    assert info.value.kind == "bad_query" and named in str(info.value)
    check_read_only("select * from ohlcv('trade', INTERVAL 1 MINUTE)")
    check_read_only("with q as (select 1) select * from markout('fill', 'q', INTERVAL 1 SECOND)")
    with pytest.raises(QueryError, match=r"x\.csv"):
        check_read_only("select * from ohlcv('x.csv', INTERVAL 1 MINUTE)")


def test_syntax_error_is_bad_query_with_duckdb_message() -> None:
    with pytest.raises(duckdb.ParserException) as expected:
        duckdb.connect().execute("selec 1")
    with pytest.raises(QueryError) as info:
        check_read_only("selec 1")
    assert info.value.kind == "bad_query"
    assert str(info.value) == str(expected.value)


def test_empty_query_is_bad_query() -> None:
    with pytest.raises(QueryError) as info:
        check_read_only("  ")
    assert info.value.kind == "bad_query"


def test_lock_down_blocks_files_even_without_the_check(tmp_path: Path) -> None:
    allowed = tmp_path / "hdb"
    allowed.mkdir()
    inside = allowed / "x.csv"
    inside.write_text("a\n1\n")
    outside = tmp_path / "secret.csv"
    outside.write_text("a\n2\n")
    con = duckdb.connect()
    lock_down(con, allowed_directories=[allowed])
    cur = con.cursor()
    assert cur.sql(f"select a from read_csv('{inside}')").fetchall() == [(1,)]
    with pytest.raises(duckdb.PermissionException):
        cur.sql(f"select * from read_csv('{outside}')").fetchall()
    with pytest.raises(duckdb.PermissionException):
        cur.execute(f"copy (select 1) to '{tmp_path / 'out.csv'}'")
    with pytest.raises(duckdb.Error, match="configuration"):
        cur.execute("set enable_external_access = true")


def test_lock_down_stops_scans_of_python_variables() -> None:
    con = duckdb.connect()
    lock_down(con)
    secret_table = pa.table({"a": [1]})  # noqa: F841 - what a replacement scan would find
    with pytest.raises(duckdb.CatalogException):
        con.cursor().sql("select * from secret_table").fetchall()
