"""Read-only checks for user SQL, and the DuckDB settings that back them up.

``check_read_only(sql)`` is the first line: DuckDB's own parser must see exactly one query
(SELECT, WITH, UNION, VALUES, FROM-first; not SHOW, DESCRIBE or SUMMARIZE, anywhere in it,
which list the database's objects and settings), and neither DuckDB's tree of it nor
sqlglot's may name a function or table that reads files, the network, settings (paths,
limits) or the environment, that changes state, or that runs SQL given as a string
(``query()``). ``lock_down(con, ...)`` is the
second line, inside DuckDB: no file access outside the given directories, no extension
loading, no scanning of Python variables, and a locked configuration, so even a construct the
first check misses cannot reach the file system.
"""

from __future__ import annotations

import functools
import json
import re
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from queries.macros import TABLE_ARGUMENTS
from queries.service_protocol import QueryError

MAX_SQL_CHARS = 1_000_000
_CACHED_CHARS = 16_384  # longer queries are checked every time, to bound the cache's memory

# Functions that read files or the network, expose settings or the environment, run SQL from
# a string, or change state. Names are DuckDB's; prefixes catch whole families.
FORBIDDEN_FUNCTIONS = frozenset(
    {
        "glob",
        "getenv",
        "current_setting",
        "query",
        "query_table",
        "checkpoint",
        "force_checkpoint",
        "which_secret",
        "load_aws_credentials",
        "arrow_scan",
        "arrow_scan_dumb",
        "python_map_function",
        "nextval",
        "setval",
        "write_log",
        "http_get",
        "http_post",
        # Settings (temp_directory, memory_limit, …) and variables.
        "pg_settings",
        "getvariable",
        "pg_prepared_statements",
        # SUMMARIZE's table function.
        "summary",
        # Change logging, profiling or the parser, or scan Python objects by address.
        "enable_logging",
        "disable_logging",
        "truncate_duckdb_logs",
        "enable_profiling",
        "disable_profiling",
        "add_grammar_extension",
        "remove_grammar_extension",
        "register_external_resource",
        "register_external_resource_type",
        "create_external_resource",
        "destroy_external_resource",
        "deregister_external_resource",
        "pandas_scan",
        "python_arrow_scan",
    }
)
FORBIDDEN_PREFIXES = (
    "read_",
    "parquet_",
    "duckdb_",
    "pragma_",
    "sqlite_",
    "postgres_",
    "mysql_",
    "iceberg_",
    "delta_",
    "ducklake_",
    "sniff_",
    "json_execute",
)
# A table name with one of these is a file path to DuckDB's replacement scans ('x.csv').
_PATH_CHARS = re.compile(r"[./\\:*?~]")
# A qualified name DuckDB cannot find is tried as a file named by its dotted parts
# (``tradex.csv``, ``main.parquet``, ``a.csv.gz``): refused when a part after the first is a
# file type DuckDB (or an extension of it) reads by name.
_FILE_TYPES = frozenset(
    {
        "csv", "tsv", "psv", "txt", "dat", "parquet", "json", "jsonl", "ndjson", "db",
        "duckdb", "ddb", "sqlite", "sqlite3", "xlsx", "xls", "arrow", "ipc", "feather",
        "avro", "orc", "gz", "gzip", "zst", "zstd", "lz4", "bz2", "xz", "snappy",
    }
)  # fmt: skip

# DuckDB statement types a read-only query may have; everything else is named in the error.
_ALLOWED_TYPES = frozenset({"SELECT"})
_TYPE_NAMES = {
    "MULTI": "PIVOT without an explicit IN list (it creates a type; write ON col IN (...))"
    " or a multi-part statement",
    "VARIABLE_SET": "SET",
    "LOGICAL_PLAN": "logical plan",
}

_parser_lock = threading.Lock()
_parser: duckdb.DuckDBPyConnection | None = None


def _duckdb_tree(sql: str) -> Any:
    """DuckDB's parse tree of one SELECT-type statement, as JSON."""
    global _parser
    with _parser_lock:
        if _parser is None:
            _parser = duckdb.connect()
        row = _parser.execute("SELECT json_serialize_sql(?)", [sql]).fetchone()
    tree = json.loads(row[0]) if row else {"error": True}
    if tree.get("error"):
        message = tree.get("error_message", "no parse tree")
        raise QueryError("forbidden", f"query the safety check cannot verify: {message}")
    return tree


def _duckdb_nodes(node: Any) -> Iterator[dict[str, Any]]:
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _check_duckdb_tree(sql: str) -> None:
    """The checks on DuckDB's own tree, so nothing hides in syntax sqlglot parses
    differently or not at all (``SHOW SELECT …`` is an opaque Command to it)."""
    for node in _duckdb_nodes(_duckdb_tree(sql)):
        if node.get("type") == "SHOW_REF":
            raise QueryError(
                "forbidden",
                "SHOW, DESCRIBE and SUMMARIZE are not allowed: they list the database's "
                "objects and settings; the gateway lists tables and columns (GET /tables, "
                "GET /tables/NAME, .tickdb.tables)",
            )
        name = node.get("function_name")
        if isinstance(name, str) and forbidden_name(name):
            raise QueryError("forbidden", _function_message(name))
        if node.get("type") == "BASE_TABLE":
            parts = [node.get(key) for key in ("catalog_name", "schema_name", "table_name")]
            _check_table_name([p for p in parts if isinstance(p, str) and p])


def _function_message(name: str) -> str:
    return (
        f"function {name.lower()}() is not allowed in queries "
        "(it reads files, settings or the environment, changes state, or runs SQL)"
    )


def _table_message(part: str) -> str:
    return (
        f"table {part!r} is not allowed: file paths, settings and system tables cannot be queried"
    )


def _duckdb_statement_types(sql: str) -> list[str]:
    """DuckDB's parse of ``sql`` (a parse error is DuckDB's message, as bad_query)."""
    global _parser
    with _parser_lock:
        if _parser is None:
            _parser = duckdb.connect()
        try:
            statements = _parser.extract_statements(sql)
        except duckdb.Error as exc:
            raise QueryError("bad_query", str(exc)) from None
    return [s.type.name for s in statements]


def forbidden_name(name: str) -> bool:
    lowered = name.lower()
    return lowered in FORBIDDEN_FUNCTIONS or lowered.startswith(FORBIDDEN_PREFIXES)


def _function_name(node: exp.Func) -> str:
    if isinstance(node, exp.Anonymous):
        return str(node.name)
    return node.sql_name()


def check_read_only(sql: str) -> None:
    """Raise ``QueryError("forbidden", …)`` naming the construct unless ``sql`` is read-only.

    Unparseable SQL raises ``QueryError("bad_query", <DuckDB's message>)``. Verdicts are
    cached by query text: dashboards repeat the same queries, and the two parses cost up to
    a millisecond, a large share of a small query's time.
    """
    if len(sql) > MAX_SQL_CHARS:
        raise QueryError("bad_query", f"query is longer than {MAX_SQL_CHARS} characters")
    if not sql.isascii():  # O(1): only text with non-ASCII characters is encoded
        try:
            sql.encode()
        except UnicodeEncodeError as exc:  # a lone surrogate, from JSON's "\ud800" escapes
            raise QueryError(
                "bad_query", f"the query is not valid Unicode (character {exc.start})"
            ) from None
    try:
        verdict = _verdict(sql) if len(sql) <= _CACHED_CHARS else _uncached(sql)
    except RecursionError:
        # Nesting deeper than the parsers' recursion (brackets, CASE or subqueries within
        # one another): the query's fault, a short error, not a traceback.
        raise QueryError("bad_query", "the query is nested too deeply to parse") from None
    if verdict is not None:
        raise QueryError(verdict.kind, str(verdict))


def _uncached(sql: str) -> QueryError | None:
    try:
        _check(sql)
    except QueryError as exc:
        return exc
    except RecursionError:
        # sqlglot's parser recurses per level of nesting, and DuckDB allows 1000 levels.
        return QueryError("bad_query", "the query is nested too deeply to parse")
    return None


_verdict = functools.lru_cache(maxsize=4096)(_uncached)


def _check(sql: str) -> None:
    types = _duckdb_statement_types(sql)
    if not types:
        raise QueryError("bad_query", "empty query")
    if len(types) > 1:
        raise QueryError("forbidden", f"one statement per query, got {len(types)}")
    if types[0] not in _ALLOWED_TYPES:
        what = _TYPE_NAMES.get(types[0], types[0])
        raise QueryError(
            "forbidden",
            f"{what} statements are not allowed: only read-only queries "
            "(SELECT, WITH, UNION, VALUES, FROM-first)",
        )
    _check_duckdb_tree(sql)
    try:
        trees = sqlglot.parse(sql, read="duckdb")
    except SqlglotError as exc:
        # DuckDB parsed it but the checker cannot see inside it: refuse rather than guess.
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        msg = f"query uses syntax the safety check cannot verify: {first}"
        raise QueryError("forbidden", msg) from None
    for tree in trees:
        if tree is not None:
            _check_tree(tree)


def _check_tree(tree: exp.Expr) -> None:
    for func in tree.find_all(exp.Func):
        name = _function_name(func)
        if forbidden_name(name):
            raise QueryError("forbidden", _function_message(name))
    for table in tree.find_all(exp.Table):
        if isinstance(table.this, exp.Anonymous):
            _check_macro_tables(table.this)
        if not isinstance(table.this, exp.Identifier):
            continue  # a table function: checked above
        _check_table_name([p for p in (table.catalog, table.db, table.name) if p])


def _check_macro_tables(call: exp.Anonymous) -> None:
    """A table macro's tables are named by string literals (``ohlcv('trade', …)``): which
    tables a query reads is read from its text, by the gateway's routing and by
    ``read:TABLE`` roles, and a name computed when it runs would escape both."""
    name = str(call.name).lower()
    for i in TABLE_ARGUMENTS.get(name, ()):
        if i >= len(call.expressions):
            continue  # too few arguments: DuckDB says so
        arg = call.expressions[i]
        if not (isinstance(arg, exp.Literal) and arg.is_string):
            raise QueryError(
                "bad_query",
                f"{name}: argument {i + 1} names a table: write its name in quotes "
                f"('trade'), not {arg.sql(dialect='duckdb')[:60]}",
            )
        _check_table_name([str(arg.this)])


def _check_table_name(parts: list[str]) -> None:
    """A table's catalog, schema and name (those given): no path, no forbidden name."""
    for part in parts:
        if _PATH_CHARS.search(part) or forbidden_name(part):
            raise QueryError("forbidden", _table_message(part))
    if any(part.lower() in _FILE_TYPES for part in parts[1:]):
        raise QueryError("forbidden", _table_message(".".join(parts)))


def lock_down(
    con: duckdb.DuckDBPyConnection,
    *,
    allowed_directories: Iterable[str | Path] = (),
    temp_directory: str | Path | None = None,
) -> None:
    """Apply the in-DuckDB defences to ``con``'s database; call once, before any user query.

    After this the configuration is locked: set everything else (memory_limit, threads,
    caches) before calling it. Directories are made absolute with a trailing slash, as
    DuckDB's ``allowed_directories`` matches prefixes.
    """
    if temp_directory is not None:
        con.execute("SET temp_directory = ?", [str(Path(temp_directory).absolute())])
    dirs = [str(Path(d).absolute()).rstrip("/") + "/" for d in allowed_directories]
    if dirs:
        con.execute("SET allowed_directories = ?", [dirs])
    # GLOBAL so that cursors (new client contexts) inherit it: a cursor would otherwise scan
    # the calling Python frame for DataFrames or Arrow tables named like the user's table.
    con.execute("SET GLOBAL python_enable_replacements = false")
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
