"""q through the gateway over HTTP: a real gateway process over real query services.

Backends are ``queries.service.QueryServer``s on ephemeral ports serving in-test data split
as a stack places it (3 shards x today/past; ``support.gateway_stack``). The reference for
every q query is the translator's SQL run on one DuckDB holding all the rows: the gateway
must give the same rows, in the same order, with q's keys. ``test_gateway_kdb.py`` uses
the same stack and data (``support.gateway_q``) for the kdb+ port.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import duckdb
import httpx
import pytest
from support.gateway_data import assert_same_answer
from support.gateway_q import BY_DATE, BY_SYM, DATA, SELECT_WHERE, TOTALS, expected, start_q_stack
from support.gateway_stack import one_duckdb, stop_stack

from gateway.client import Client, GatewayError
from queries.q import translate
from tickdb.schema import default_schemas


@pytest.fixture(scope="module")
def reference() -> duckdb.DuckDBPyConnection:
    return one_duckdb(DATA)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    running = start_q_stack(tmp_path_factory.mktemp("gateway_q"))
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
