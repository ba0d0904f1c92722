"""The gateway as a real process over real query services (ZeroMQ), through HTTP and the CLI.

Backends are ``queries.service.QueryServer``s on ephemeral ports serving in-test DuckDB data
split the way a stack places it (3 shards x today/past); the gateway is ``tickdb gateway``
started with ``--rdb``/``--hdb`` for each (``support.gateway_stack``).
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pyarrow as pa
import pyarrow.ipc as ipc
import pytest
from support.gateway_data import TODAY, assert_same_answer, make_data
from support.gateway_stack import one_duckdb, start_stack, stop_stack
from support.harness import wait_until

from gateway.client import Client, GatewayError

DATA = make_data(11, 3000, 7, 0.0)
VWAP = (
    "SELECT sym, date, sum(price * size) / sum(size) AS vwap, count(*) AS n FROM trade "
    "GROUP BY sym, date ORDER BY sym, date"
)


@pytest.fixture(scope="module")
def reference() -> duckdb.DuckDBPyConnection:
    return one_duckdb(DATA)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One stack shared by the tests that do not break it."""
    running = start_stack(tmp_path_factory.mktemp("gateway"), DATA)
    yield running
    stop_stack(running)


@pytest.fixture
def own_stack(tmp_path: Path) -> Iterator[dict[str, Any]]:
    running = start_stack(tmp_path, DATA)
    yield running
    stop_stack(running)


def post(url: str, body: dict[str, Any], **headers: str) -> httpx.Response:
    return httpx.post(f"{url}/query", json=body, headers=headers, timeout=30)


def test_client_query_returns_the_single_duckdb_answer(stack, reference):
    with Client(stack["url"]) as client:
        got = client.query(VWAP)
    assert isinstance(got, pa.Table)
    assert_same_answer(got, reference.sql(VWAP).to_arrow_table(), True, VWAP)
    assert Client.flags(got) == {"truncated": False, "partial": False, "missing": {}}


def test_json_arrow_and_csv_by_accept_or_format(stack, reference):
    url = stack["url"]
    sql = "SELECT sym, count(*) AS n FROM trade GROUP BY sym ORDER BY sym"
    want = reference.sql(sql).fetchall()
    reply = post(url, {"sql": sql})
    assert reply.headers["content-type"].startswith("application/json")
    body = reply.json()
    assert [c["name"] for c in body["columns"]] == ["sym", "n"]
    assert [tuple(r) for r in body["data"]] == want and body["plan"] == "aggregate"
    reply = post(url, {"sql": sql}, Accept="application/vnd.apache.arrow.stream")
    table = ipc.open_stream(reply.content).read_all()
    assert [tuple(r.values()) for r in table.to_pylist()] == want
    reply = post(url, {"sql": sql, "format": "csv"})
    rows = list(csv.reader(io.StringIO(reply.text)))
    assert rows[0] == ["sym", "n"] and [(s, int(n)) for s, n in rows[1:]] == want
    assert reply.headers["x-tickdb-rows"] == str(len(want))


def test_bad_and_forbidden_sql_get_400_and_403(stack):
    url = stack["url"]
    reply = post(url, {"sql": "SELECT nope FROM trade"})
    assert reply.status_code == 400
    assert reply.json()["error"] == "bad_query" and "nope" in reply.json()["message"]
    reply = post(url, {"sql": "SELECT * FROM read_csv('/etc/passwd')"})
    assert reply.status_code == 403 and "read_csv" in reply.json()["message"]
    reply = post(url, {"sql": "SELECT 1", "format": "xml"})
    assert reply.status_code == 400 and "format" in reply.json()["message"]
    with Client(url) as client, pytest.raises(GatewayError) as err:
        client.query("COPY trade TO 'x.csv'")
    assert err.value.status == 403 and err.value.kind == "forbidden"


def test_row_limit_is_flagged(stack):
    reply = post(stack["url"], {"sql": "SELECT * FROM trade ORDER BY time", "max_rows": 5})
    body = reply.json()
    assert body["rows"] == 5 and body["truncated"] is True
    assert reply.headers["x-tickdb-truncated"] == "true"


def test_tables_show_schema_and_rows_by_tier(stack):
    with Client(stack["url"]) as client:
        tables = {t["name"]: t for t in client.tables()}
        trade = client.table("trade")
    assert set(tables) >= {"trade", "quote"}
    assert trade["columns"][:2] == [["time", "timestamp"], ["sym", "symbol"]]
    assert trade["columns"][-1] == ["date", "date"]
    today = sum(1 for d in DATA["trade"].column("date").to_pylist() if d == TODAY)
    assert trade["rows"] == {"rdb": today, "hdb": DATA["trade"].num_rows - today}
    assert len(trade["backends"]) == 6
    assert httpx.get(f"{stack['url']}/tables/nope").status_code == 404


def test_health_and_metrics(stack):
    url = stack["url"]
    post(url, {"sql": VWAP})
    health = httpx.get(f"{url}/health").json()
    assert health["status"] == "ok" and len(health["backends"]) == 6
    rdb = next(b for b in health["backends"] if b["role"] == "rdb")
    assert rdb["seq_lag"] == 0 and rdb["heartbeat_age_s"] is not None
    metrics = httpx.get(f"{url}/metrics").text
    assert 'tickdb_gateway_queries_total{outcome="ok",plan="aggregate"}' in metrics
    assert "tickdb_gateway_backend_up" in metrics
    merged = {
        line.split('"')[1]: float(line.split()[-1])
        for line in metrics.splitlines()
        if line.startswith("tickdb_gateway_merges_total{")
    }
    assert set(merged) == {"stack", "arrow", "duckdb"} and merged["arrow"] >= 1  # VWAP


def test_dead_backend_clear_error_then_partial_then_status(own_stack):
    url, servers = own_stack["url"], own_stack["servers"]
    sql = "SELECT count(*) AS n FROM trade"
    servers["hdb1"].close()
    started = time.monotonic()
    reply = post(url, {"sql": sql, "timeout_s": 1.0})
    assert time.monotonic() - started < 3.0  # within the limit, plus HTTP and process
    assert reply.status_code in (503, 504)
    assert "hdb:" in reply.json()["message"] and servers["hdb1"].endpoint in reply.json()["message"]
    reply = post(url, {"sql": sql, "timeout_s": 1.0, "allow_partial": True})
    body = reply.json()
    assert reply.status_code == 200 and body["partial"] is True, body
    assert list(body["missing"]) == [f"hdb:{servers['hdb1'].endpoint}"]
    assert body["data"][0][0] < DATA["trade"].num_rows
    wait_until(lambda: httpx.get(f"{url}/health").status_code == 503, 10, "health to degrade")
    status = run_cli("status", "--url", url)
    assert status.returncode == 1 and "NO" in status.stdout


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tickdb.cli", *args], capture_output=True, text=True, timeout=60
    )


def test_query_and_status_commands(stack, reference):
    url = stack["url"]
    sql = "SELECT sym, count(*) AS n FROM trade GROUP BY sym ORDER BY sym"
    out = run_cli("query", sql, "--url", url)
    assert out.returncode == 0, out.stderr
    first_sym = reference.sql(sql).fetchall()[0][0]
    assert first_sym in out.stdout and "n" in out.stdout
    out = run_cli("query", sql, "--url", url, "--format", "json")
    assert [tuple(r) for r in json.loads(out.stdout)["data"]] == reference.sql(sql).fetchall()
    out = run_cli("query", "SELECT nope FROM trade", "--url", url)
    assert out.returncode == 1 and "bad_query" in out.stderr
    out = run_cli("status", "--url", url)
    assert out.returncode == 0 and "ok" in out.stdout
