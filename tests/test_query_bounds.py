"""What one query, or one client, can make the gateway hold: time, memory, threads, log.

A real gateway process over real query services (``support.gateway_stack``), probed the way
the findings were made: a query that reads no table, an 80 KB select list, a huge result
under a small row limit, slow queries beside ``/health``, more queries than a client may run
at once, deep nesting and a lone surrogate. Each must be refused or bounded with a short
error and one log line, and the gateway must go on answering everyone afterwards.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.gateway_data import TODAY
from support.gateway_q import DATA, USERS
from support.gateway_stack import start_stack, stop_stack
from support.harness import wait_until

from qipc import QClient, QError
from queries.service import QueryClient, QueryError

LIMIT_S = 3.0  # the gateway's time limit (--timeout)
GRACE_S = 1.0  # past a limit, under load on a shared machine
# Never finishes within any limit here: 10^10 rows through an aggregate.
ENDLESS = "select sum(range % 7) as s from range(10000000000)"
CHECK_SQL = "select sym, count(*) as n from trade group by sym order by sym"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    running = start_stack(tmp_path_factory.mktemp("bounds"), DATA, timeout_s=LIMIT_S, users=USERS)
    warm = post(running["url"], {"sql": CHECK_SQL})  # the parsers' first use is slower
    assert warm.status_code == 200, warm.text
    yield running
    stop_stack(running)


def post(url: str, body: dict[str, Any], **kwargs: Any) -> httpx.Response:
    return httpx.post(f"{url}/query", json=body, timeout=60, **kwargs)


def timed(call: Any) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    reply = call()
    return reply, time.monotonic() - started


def assert_serving(stack: dict[str, Any]) -> None:
    """The gateway still answers a real query, correctly."""
    reply = post(stack["url"], {"sql": CHECK_SQL})
    assert reply.status_code == 200, reply.text
    want = DATA["trade"].group_by("sym").aggregate([("sym", "count")]).sort_by("sym")
    assert [row[1] for row in reply.json()["data"]] == want.column("sym_count").to_pylist()


def memory_kib(pid: int, field: str) -> int:
    """``VmRSS`` (resident now) or ``VmHWM`` (the peak) of a process, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {field}")


QUIET = re.compile(r"^\d{4}-\d\d-\d\d \S+ (INFO|DEBUG) ")


def log_since(stack: dict[str, Any], offset: int) -> list[str]:
    """The gateway's log lines since ``offset`` at WARNING and above, and any that are not a
    log record at all (a traceback's)."""
    return [line for line in stack["proc"].log()[offset:].splitlines() if not QUIET.match(line)]


# -- time -------------------------------------------------------------------------------


def test_a_query_without_tables_stops_at_its_time_limit(stack):
    reply, took = timed(lambda: post(stack["url"], {"sql": ENDLESS, "timeout_s": 1.0}))
    assert reply.status_code == 504, reply.text
    assert reply.json()["error"] == "timeout"
    assert took < 1.0 + GRACE_S
    reply, took = timed(lambda: post(stack["url"], {"sql": ENDLESS}))  # the gateway's own
    assert reply.status_code == 504 and took < LIMIT_S + GRACE_S
    assert_serving(stack)


def test_a_query_text_over_the_limit_is_refused_at_once(stack):
    sql = "select " + ", ".join(f"price + {i} as c{i}" for i in range(4000)) + " from trade"
    assert len(sql) > 80_000
    reply, took = timed(lambda: post(stack["url"], {"sql": sql}))
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"] == "bad_query"
    assert "gateway.max_query_chars" in reply.json()["message"]
    assert took < GRACE_S
    big_body = httpx.post(
        f"{stack['url']}/query",
        content=b'{"sql": "select 1", "pad": "' + b"x" * 2_000_000 + b'"}',
        headers={"content-type": "application/json"},
        timeout=60,
    )
    assert big_body.status_code == 413 and big_body.json()["error"] == "bad_query"
    assert_serving(stack)


@pytest.mark.parametrize("language", ["sql", "q"])
def test_planning_and_translation_count_towards_the_time_limit(stack, language):
    """A select list just under the length limit: seconds of parsing, stopped at 0.5 s."""
    n = 3000
    text = (
        "select " + ", ".join(f"price+{i} as c{i}" for i in range(n)) + " from trade"
        if language == "sql"
        else "select " + ", ".join(f"c{i}:price+{i}" for i in range(n)) + " from trade"
    )
    assert 40_000 < len(text) <= 65_536
    reply, took = timed(lambda: post(stack["url"], {language: text, "timeout_s": 0.5}))
    assert reply.status_code == 504, reply.text[:300]
    assert took < 0.5 + GRACE_S
    assert_serving(stack)


# -- memory -----------------------------------------------------------------------------


def test_a_row_limited_huge_result_keeps_the_gateway_small(stack):
    """10 million 200-byte rows (2 GB) under a 1000-row limit, computed in the gateway:
    without a table, and in a merge (a CTE is pulled and run in the gateway's DuckDB)."""
    pid = stack["proc"].popen.pid
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # the peak starts again from now
    before = memory_kib(pid, "VmRSS")
    queries = [
        "select range as i, repeat('x', 200) as pad from range(10000000)",
        "with t as (select sym from trade) "
        "select t.sym, r.range as i, repeat('x', 200) as pad from t, range(10000) r",
    ]
    for sql in queries:
        reply = post(stack["url"], {"sql": sql, "max_rows": 1000})
        assert reply.status_code == 200, reply.text[:300]
        body = reply.json()
        assert body["rows"] == 1000 and body["truncated"] is True
    grown_mib = (memory_kib(pid, "VmHWM") - before) / 1024
    assert grown_mib < 150, f"the gateway's peak RSS grew {grown_mib:.0f} MiB"
    assert_serving(stack)


# -- capacity ---------------------------------------------------------------------------


def running_queries(url: str) -> int:
    for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line.startswith("tickdb_gateway_queries_running "):
            return int(float(line.split()[1]))
    raise AssertionError("no tickdb_gateway_queries_running in /metrics")


def backend_bound(sql_where: str) -> str:
    """A query that runs on one backend to the time limit: a self-join six deep on
    (sym, date) is backend-local, and 53^6 rows of today's IBM are counted on its RDB."""
    joins = " ".join(f"join trade t{k} using (sym, date)" for k in range(2, 7))
    return f"select count(*) as n from trade t1 {joins} where {sql_where}"


IBM_TODAY = f"sym = 'IBM' and date = DATE '{TODAY}'"


class SlowQueries:
    """``per_address`` queries from each of ``addresses`` that run to the time limit."""

    def __init__(
        self, url: str, sql: str, per_address: int, addresses: tuple[str, ...] = ("127.0.0.1",)
    ) -> None:
        self.replies: list[httpx.Response] = []
        self.threads = [
            threading.Thread(target=self._post, args=(url, sql, address))
            for address in addresses
            for _ in range(per_address)
        ]
        for thread in self.threads:
            thread.start()
        n = len(self.threads)
        wait_until(lambda: running_queries(url) >= n, 2 * LIMIT_S, f"{n} slow queries to run")

    def _post(self, url: str, sql: str, address: str) -> None:
        transport = httpx.HTTPTransport(local_address=address)
        with httpx.Client(transport=transport, timeout=60) as client:
            self.replies.append(client.post(f"{url}/query", json={"sql": sql}))

    def join(self) -> list[int]:
        for thread in self.threads:
            thread.join(60)
        return [r.status_code for r in self.replies]


def test_health_metrics_and_tables_answer_while_queries_hold_every_worker(stack):
    """40 slow queries (4 from each of 10 addresses) hold every worker thread the query
    routes have; most of them wait for the RDB's slots, costing no CPU. /health used to
    wait behind them."""
    url = stack["url"]
    addresses = tuple(f"127.0.0.{k}" for k in range(2, 12))
    sql = backend_bound(IBM_TODAY)
    assert httpx.post(f"{url}/query/plan", json={"sql": sql}).status_code == 200  # cached
    slow = SlowQueries(url, sql, 4, addresses)
    try:
        for path in ("/health", "/metrics", "/tables"):
            reply, took = timed(lambda p=path: httpx.get(f"{url}{p}", timeout=10))
            assert reply.status_code == 200, path
            assert took < 0.5, f"{path} took {took:.2f}s behind the slow queries"
    finally:
        assert set(slow.join()) == {504}
    assert_serving(stack)


def test_a_client_over_its_query_limit_gets_429_and_others_go_on(stack):
    url = stack["url"]
    slow = SlowQueries(url, ENDLESS, 4)  # the default gateway.client_queries
    try:
        refused = post(url, {"sql": "select 1 as one"})
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"] == "too_many_queries"
        assert "gateway.client_queries" in refused.json()["message"]
        # Another client (another address) is not held up by this one's queries.
        with httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2")) as other:
            reply = other.post(f"{url}/query", json={"sql": CHECK_SQL}, timeout=10)
            assert reply.status_code == 200, reply.text
            assert other.get(f"{url}/health", timeout=10).status_code == 200
    finally:
        assert slow.join() == [504] * 4
    assert_serving(stack)


def test_the_kdb_port_counts_a_users_queries_towards_the_same_limit(stack):
    """Four slow queries of one kdb+ user on four connections: its fifth connection's query
    is refused with a q error; HTTP from the same address (another client) goes on."""
    url, port = stack["url"], stack["kdb_port"]
    errors: list[str] = []

    def slow() -> None:
        with QClient("127.0.0.1", port, user="quant", password=USERS["quant"]) as q:
            try:
                q.sync(".tickdb.sql", ENDLESS)
            except QError as exc:
                errors.append(exc.message)

    threads = [threading.Thread(target=slow) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        wait_until(lambda: running_queries(url) >= 4, LIMIT_S, "4 slow kdb+ queries to run")
        with (
            QClient("127.0.0.1", port, user="quant", password=USERS["quant"]) as q,
            pytest.raises(QError) as err,
        ):
            q.sync("select n:count i from trade")
        assert err.value.message.startswith("limit: user quant already has 4 queries running")
        assert post(url, {"sql": CHECK_SQL}).status_code == 200
    finally:
        for thread in threads:
            thread.join(60)
    assert len(errors) == 4 and all(e.startswith("timeout") for e in errors), errors
    assert_serving(stack)


def test_a_slow_query_does_not_hold_a_backend_alone(stack):
    """Both queries go to the one RDB holding today's IBM rows; the slow one runs there to
    the time limit while the quick one is answered beside it."""
    url = stack["url"]
    slow = SlowQueries(url, backend_bound(IBM_TODAY), 1)
    try:
        wait_until(
            lambda: any(
                s.describe()["query_service"]["running"] for s in stack["servers"].values()
            ),
            LIMIT_S,
            "the slow query to run on its backend",
        )
        reply = post(url, {"sql": f"select count(*) as n from trade where {IBM_TODAY}"})
        assert reply.status_code == 200, reply.text
        assert not slow.replies, "the quick query was answered only after the slow one"
    finally:
        assert slow.join() == [504]


# -- parsers ----------------------------------------------------------------------------

DEEP = {
    "sql brackets": {"sql": "select " + "(" * 100 + "1" + ")" * 100},
    "sql case": {"sql": "select " + "case when true then " * 400 + "1" + " end" * 400},
    "sql and": {"sql": "select * from trade where " + " and ".join(["price > 1"] * 3000)},
    "q brackets": {"q": "select from trade where price>" + "(" * 100 + "1" + ")" * 100},
    "q chain": {"q": "select x:" + "+".join(["price"] * 2000) + " from trade"},
    "q neg": {"q": "select x:" + "neg " * 50 + "price from trade"},
    "sql surrogate": {"sql": "select '\ud800' as s"},
    "q surrogate": {"q": 'select from trade where sym like "\ud800"'},
}


@pytest.mark.parametrize("name", list(DEEP))
def test_deep_nesting_and_bad_unicode_are_a_400_and_one_log_line(stack, name):
    offset = len(stack["proc"].log())
    body = json.dumps(DEEP[name]).encode()  # a lone surrogate as JSON's "\ud800" escape
    reply = httpx.post(
        f"{stack['url']}/query",
        content=body,
        headers={"content-type": "application/json"},
        timeout=60,
    )
    assert reply.status_code == 400, reply.text[:300]
    assert reply.json()["error"] == "bad_query"
    assert len(reply.content) < 1000
    new = log_since(stack, offset)
    assert len(new) == 1, new[:5]
    assert "Traceback" not in new[0] and len(new[0]) < 500
    assert_serving(stack)


def test_the_kdb_port_refuses_deep_nesting_with_a_q_error(stack):
    deep = "select from trade where price>" + "(" * 100 + "1" + ")" * 100
    chain = "select x:" + "+".join(["price"] * 2000) + " from trade"
    offset = len(stack["proc"].log())
    with QClient("127.0.0.1", stack["kdb_port"], user="quant", password=USERS["quant"]) as q:
        for call in ((deep,), (chain,), (".tickdb.sql", "select " + "(" * 100 + "1" + ")" * 100)):
            with pytest.raises(QError) as err:
                q.sync(*call)
            assert "deep" in err.value.message and len(err.value.message) < 300
        answer = q.sync("select n:count i from trade")
        assert answer.columns["n"].tolist() == [DATA["trade"].num_rows]
    new = log_since(stack, offset)
    assert len(new) == 3 and not any("Traceback" in line for line in new), new[:5]


def test_a_backend_answers_recursion_with_a_short_bad_query(stack):
    server = next(iter(stack["servers"].values()))
    deep = "select " + "case when true then " * 400 + "1" + " end" * 400
    with QueryClient(server.endpoint, timeout_s=10) as client:
        with pytest.raises(QueryError) as err:
            client.query(deep)
        assert err.value.kind == "bad_query" and "nested too deeply" in str(err.value)
        assert client.query("select 1 as one").table.num_rows == 1
