"""q through the gateway over HTTP: a real gateway process over real query services.

Backends are ``queries.service.QueryServer``s on ephemeral ports serving in-test data split
as a stack places it (3 shards x today/past). The reference for every q query is the
translator's SQL run on one DuckDB holding all the rows: the gateway must give the same
rows, in the same order, with q's keys. ``test_gateway_kdb.py`` reuses this stack for the
kdb+ port (its fixture turns the port on and sets a user).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pyarrow as pa
import pytest
from harness import Proc, free_port, write_config
from test_gateway_property import TODAY, assert_same_answer, make_data

from gateway.client import Client, GatewayError
from gateway.local import local_topology
from queries.q import translate
from queries.service import QueryServer
from tickdb.schema import default_schemas

DATA = make_data(23, 2000, 7, 0.0)
USERS = {"quant": "s3cret", "ops": "other"}

SELECT_WHERE = f"select time, sym, price from trade where sym=`IBM, date={TODAY:%Y.%m.%d}"
BY_SYM = "select vwap:size wavg price, n:count i by sym from trade"
TOTALS = "select total:sum size, hi:max price, n:count i from trade"
BY_DATE = "select n:count i, lo:min price by date from trade where sym in `AAPL`MSFT"


def one_duckdb() -> duckdb.DuckDBPyConnection:
    """Every row in one DuckDB: the reference answers come from here."""
    con = duckdb.connect()
    for name, table in DATA.items():
        con.register(name, table)
    return con


@pytest.fixture(scope="module")
def reference() -> duckdb.DuckDBPyConnection:
    return one_duckdb()


def expected(reference: duckdb.DuckDBPyConnection, q: str) -> pa.Table:
    return reference.sql(translate(q, default_schemas()).sql).to_arrow_table()


def start_stack(
    workdir: Path, timeout_s: float = 5.0, sections: dict[str, dict[str, Any]] | None = None
) -> dict[str, Any]:
    """QueryServers for 3 shards x 2 tiers and ``tickdb gateway`` with its kdb+ port on;
    ``sections`` are more config sections (``{"auth": {...}}``)."""
    servers = {}
    for name, backend in local_topology(DATA, shards=3, today=TODAY).items():
        server = QueryServer(
            "tcp://127.0.0.1:0",
            lambda _request, b=backend: b.cursor(),
            info=backend.info,
            timeout_s=10,
            max_rows=10**6,
        )
        server.start()
        servers[name] = server
    config = write_config(
        workdir / "gateway.toml",
        {"gateway": {"kdb_port": free_port()}, "gateway.users": USERS, **(sections or {})},
    )
    args = ["gateway", "--config", str(config), "--port", "0", "--refresh", "0.2"]
    args += ["--timeout", str(timeout_s), "--max-rows", "1500"]
    for name, server in servers.items():
        args += [f"--{name[:3]}", server.endpoint]
    try:
        gateway = Proc(args, workdir, "gateway")
    except Exception:
        for server in servers.values():
            server.close()
        raise
    return {
        "url": gateway.info["url"],
        "kdb_port": gateway.info.get("kdb_port"),
        "servers": servers,
        "proc": gateway,
    }


def stop_stack(stack: dict[str, Any]) -> None:
    stack["proc"].stop()
    for server in stack["servers"].values():
        server.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    running = start_stack(tmp_path_factory.mktemp("gateway_q"))
    yield running
    stop_stack(running)


def post(url: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{url}/query", json=body, timeout=30)


@pytest.mark.parametrize("q", [SELECT_WHERE, BY_SYM, TOTALS, BY_DATE])
def test_q_over_http_equals_the_translation_on_one_duckdb(stack, reference, q):
    with Client(stack["url"]) as client:
        got = client.q(q)
    want = expected(reference, q)
    assert got.num_rows > 0
    assert_same_answer(got, want, True, q)
    assert Client.keys(got) == list(translate(q, default_schemas()).keys)


def test_by_result_is_keyed_and_typed_in_every_format(stack, reference):
    url = stack["url"]
    with Client(url) as client:
        got = client.q(BY_SYM)
    assert Client.keys(got) == ["sym"] and got.column_names == ["sym", "vwap", "n"]
    assert [got.schema.field(c).metadata[b"q"] for c in got.column_names] == [
        b"symbol",
        b"float",
        b"long",
    ]
    # The same query across shards and tiers, in one DuckDB: same syms in q's order.
    assert got.column("sym").to_pylist() == sorted(DATA["trade"].column("sym").unique().tolist())
    reply = post(url, {"q": BY_SYM, "format": "json"})
    body = reply.json()
    assert reply.status_code == 200 and body["keys"] == ["sym"]
    assert reply.headers["x-tickdb-keys"] == "sym"
    assert [row[0] for row in body["data"]] == got.column("sym").to_pylist()
    reply = post(url, {"q": TOTALS, "format": "csv"})
    assert reply.status_code == 200 and "x-tickdb-keys" not in reply.headers
    assert reply.text.splitlines()[0].replace('"', "") == "total,hi,n"


def test_bad_q_gets_400_with_message_and_position(stack):
    reply = post(stack["url"], {"q": "select ema[0.5;price] from trade"})
    body = reply.json()
    assert reply.status_code == 400 and body["error"] == "bad_query"
    assert "'ema'" in body["message"] and body["position"] == 7
    with Client(stack["url"]) as client, pytest.raises(GatewayError) as err:
        client.q("select from trade where time within 09:30 16:00")
    assert err.value.status == 400 and err.value.position == 29
    assert "time.minute" in str(err.value)
    reply = post(stack["url"], {"q": "select from nosuch"})
    assert reply.status_code == 400 and "nosuch" in reply.json()["message"]
    # Neither or both of sql and q: a malformed request, and the gateway carries on.
    for body in ({}, {"sql": "SELECT 1", "q": "select from trade"}):
        reply = post(stack["url"], body)
        assert reply.status_code == 400 and "exactly one of sql and q" in reply.json()["message"]
    assert post(stack["url"], {"q": TOTALS}).status_code == 200


def test_q_plan_shows_the_sql_and_how_it_runs(stack):
    reply = httpx.post(f"{stack['url']}/query/plan", json={"q": BY_SYM}, timeout=30)
    plan = reply.json()
    assert reply.status_code == 200
    assert plan["sql"] == translate(BY_SYM, default_schemas()).sql and plan["mode"]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tickdb.cli", *args], capture_output=True, text=True, timeout=60
    )


def test_query_command_with_q(stack, reference):
    url = stack["url"]
    out = run_cli("query", "--q", BY_SYM, "--url", url, "--format", "json")
    assert out.returncode == 0, out.stderr
    body = json.loads(out.stdout)
    want = expected(reference, BY_SYM)
    assert body["keys"] == ["sym"] and body["rows"] == want.num_rows
    out = run_cli("query", "--q", BY_SYM, "--url", url)
    assert out.returncode == 0 and want.column("sym")[0].as_py() in out.stdout
    out = run_cli("query", "--q", "select ema[0.5;price] from trade", "--url", url)
    assert out.returncode == 1 and "'ema'" in out.stderr and "character 7" in out.stderr
    out = run_cli("query", "SELECT 1", "--q", TOTALS, "--url", url)
    assert out.returncode == 2 and "not both" in out.stderr
