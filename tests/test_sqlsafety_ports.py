"""Settings tables and SHOW/DESCRIBE/SUMMARIZE are refused on every port that takes SQL.

Before, ``pg_settings`` (directories, memory and thread limits) went through, and the SHOW
and SUMMARIZE forms were not checked at all (``SHOW SELECT * FROM duckdb_settings()``).
Here they are sent to real processes: an RDB and an HDB query port (a tickerplant, RDB and
HDB of ``test_rdb_stack``), and a gateway over HTTP and over its kdb+ port
(``test_gateway_q``'s stack); each gets a ``forbidden`` error naming the construct, the
port logs it, and the next good query is answered.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.gateway_q import USERS, start_q_stack
from support.gateway_stack import stop_stack
from support.harness import Proc, wait_until
from support.rdb_stack import Stack, client, publish_trades, wait_rows

from qipc import QClient, QError
from queries.service import QueryError

PROBES = [
    ("SELECT name, setting FROM pg_settings", "pg_settings"),
    ("SELECT * FROM pg_catalog.pg_settings WHERE name = 'temp_directory'", "pg_settings"),
    ("SELECT * FROM duckdb_settings()", "duckdb_settings"),
    ("SELECT current_setting('memory_limit')", "current_setting"),
    ("SELECT * FROM duckdb_databases()", "duckdb_databases"),
    ("SHOW TABLES", "SHOW"),
    ("SHOW ALL TABLES", "SHOW"),
    ("SHOW SELECT * FROM duckdb_settings()", "SHOW"),
    ("DESCRIBE trade", "DESCRIBE"),
    ("SELECT * FROM (DESCRIBE trade)", "DESCRIBE"),
    ("SUMMARIZE trade", "SUMMARIZE"),
    ("SUMMARIZE SELECT * FROM trade", "SUMMARIZE"),
    ("PRAGMA database_list", "PRAGMA"),
]
GOOD = "SELECT count(*) AS n FROM trade"


@pytest.fixture(scope="module")
def backends(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Proc]]:
    tmp = tmp_path_factory.mktemp("sqlsafety_ports")
    procs: list[Proc] = []
    try:
        stack = Stack(tmp, procs)
        publish_trades(stack.address, 0, 100)
        rdb = stack.start_rdb()
        hdb = stack.start_hdb()
        with client(rdb) as c:
            wait_rows(c, "trade", 100)
        yield {"rdb": rdb, "hdb": hdb}
    finally:
        for proc in reversed(procs):
            proc.stop()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    running = start_q_stack(tmp_path_factory.mktemp("sqlsafety_gateway"))
    yield running
    stop_stack(running)


@pytest.mark.parametrize("role", ["rdb", "hdb"])
def test_query_ports_refuse_settings_and_show_forms(backends: dict[str, Proc], role: str) -> None:
    proc = backends[role]
    with client(proc) as c:
        for sql, named in PROBES:
            with pytest.raises(QueryError) as info:
                c.query(sql)
            assert info.value.kind == "forbidden", (sql, str(info.value))
            assert named.lower() in str(info.value).lower(), (sql, str(info.value))
        assert c.query(GOOD).table.num_rows == 1  # and it goes on serving
    wait_until(lambda: "SHOW, DESCRIBE and SUMMARIZE" in proc.log(), what="the log line")
    assert "pg_settings" in proc.log()


def test_gateway_http_refuses_settings_and_show_forms(gateway: dict[str, Any]) -> None:
    with httpx.Client(base_url=gateway["url"], timeout=30) as http:
        for sql, named in PROBES:
            reply = http.post("/query", json={"sql": sql})
            assert reply.status_code == 403, (sql, reply.text)
            body = reply.json()
            assert body["error"] == "forbidden" and named.lower() in body["message"].lower()
        assert http.post("/query", json={"sql": GOOD}).status_code == 200


def test_gateway_kdb_port_refuses_settings_and_show_forms(gateway: dict[str, Any]) -> None:
    with QClient("127.0.0.1", gateway["kdb_port"], user="quant", password=USERS["quant"]) as q:
        for sql, named in PROBES:
            with pytest.raises(QError, match="forbidden") as info:
                q.sync(".tickdb.sql", sql)
            assert named.lower() in str(info.value).lower(), (sql, str(info.value))
        assert q.sync(".tickdb.sql", GOOD) is not None


def test_the_probes_are_what_the_lock_down_alone_lets_through(tmp_path: Path) -> None:
    """Why the first line matters: on a locked-down database these still answer."""
    import duckdb

    from queries.sqlsafety import lock_down

    con = duckdb.connect(str(tmp_path / "x.duckdb"))
    con.execute("create table trade as select 1 as price")
    lock_down(con)
    cur = con.cursor()
    temp = cur.sql("select value from duckdb_settings() where name = 'temp_directory'")
    assert str(tmp_path) in str(temp.fetchall())
    assert cur.sql("select * from pg_settings").fetchall()
    assert cur.sql("show select * from duckdb_settings()").fetchall()
