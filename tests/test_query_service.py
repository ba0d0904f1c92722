"""The query service over real ZeroMQ sockets on loopback, against plain DuckDB answers."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator

import duckdb
import pyarrow as pa
import pytest
import zmq
from support.harness import wait_until

from queries.service import QueryClient, QueryError, QueryServer, lock_down
from queries.service_protocol import QueryRequest, decode_result, encode_result
from queries.service_server import Prepared

SLOW_SQL = "select sum(a.i * b.i) from t a, t b"


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute(
        "create table t as select range as i, make_timestamp_ns(range * 1000) as ts, "
        "'s' || (range % 7) as sym from range(100000)"
    )
    lock_down(con)
    return con


def _server(con: duckdb.DuckDBPyConnection, **kw: object) -> QueryServer:
    opts: dict = {"info": lambda: {"role": "test"}, "timeout_s": 5.0, "max_rows": 1000}
    opts.update(kw)
    server = QueryServer("tcp://127.0.0.1:0", lambda _request: con.cursor(), **opts)
    server.start()
    return server


@pytest.fixture
def server(con: duckdb.DuckDBPyConnection) -> Iterator[QueryServer]:
    server = _server(con)
    yield server
    server.close()


@pytest.fixture
def client(server: QueryServer) -> Iterator[QueryClient]:
    client = QueryClient(server.endpoint, timeout_s=5.0)
    yield client
    client.close()


def test_binds_an_ephemeral_port(server: QueryServer) -> None:
    assert server.endpoint.startswith("tcp://127.0.0.1:")
    assert not server.endpoint.endswith(":0")


def test_result_matches_plain_duckdb(con: duckdb.DuckDBPyConnection, client: QueryClient) -> None:
    sql = "select sym, count(*) n, max(ts) last from t group by sym order by sym"
    result = client.query(sql)
    assert result.table.equals(con.cursor().sql(sql).to_arrow_table())
    assert result.table.schema.field("last").type == pa.timestamp("ns")
    assert not result.truncated
    assert result.elapsed_ms > 0


def test_prepared_metadata_travels_with_the_reply(con: duckdb.DuckDBPyConnection) -> None:
    def prepare(request: QueryRequest) -> Prepared:
        return Prepared(con.cursor(), {"dates": ["2024-01-02", "2024-01-03"]})

    server = QueryServer(
        "tcp://127.0.0.1:0", prepare, info=dict, timeout_s=5.0, max_rows=10, workers=1
    )
    server.start()
    try:
        with QueryClient(server.endpoint, timeout_s=5.0) as client:
            result = client.query("select i from t order by i limit 20")
        assert result.dates == ("2024-01-02", "2024-01-03")
        assert result.table.num_rows == 10 and result.truncated  # the limits still hold
    finally:
        server.close()


def test_the_senders_sym_promise_reaches_prepare(con: duckdb.DuckDBPyConnection) -> None:
    seen: list[QueryRequest] = []

    def prepare(request: QueryRequest) -> duckdb.DuckDBPyConnection:
        seen.append(request)
        return con.cursor()

    server = QueryServer(
        "tcp://127.0.0.1:0", prepare, info=dict, timeout_s=5.0, max_rows=10, workers=1
    )
    server.start()
    try:
        with QueryClient(server.endpoint, timeout_s=5.0) as client:
            client.query("select 1", syms={"trade": frozenset({"B", "A"}), "quote": frozenset()})
            client.query("select 2")
    finally:
        server.close()
    assert seen[0].syms == {"trade": frozenset({"A", "B"}), "quote": frozenset()}
    assert seen[1].syms == {}


def test_replies_without_metadata_have_no_dates(client: QueryClient) -> None:
    assert client.query("select 1 as x").dates is None


def test_row_limit_truncates_and_says_so(client: QueryClient) -> None:
    result = client.query("select i from t order by i", max_rows=10)
    assert result.table.column("i").to_pylist() == list(range(10))
    assert result.truncated
    exact = client.query("select i from t where i < 10", max_rows=10)
    assert exact.table.num_rows == 10 and not exact.truncated
    capped = client.query("select i from t", max_rows=10**9)  # the server's limit wins
    assert capped.table.num_rows == 1000 and capped.truncated
    empty = client.query("select i from t where i < 0")
    assert empty.table.num_rows == 0 and not empty.truncated


def test_timeout_interrupts_and_server_keeps_serving(client: QueryClient) -> None:
    started = time.monotonic()
    with pytest.raises(QueryError) as info:
        client.query(SLOW_SQL, timeout_s=0.3)
    assert info.value.kind == "timeout"
    assert time.monotonic() - started < 3
    assert client.query("select count(*) c from t").table.column("c")[0].as_py() == 100000


def test_timeout_on_a_reused_cursor_does_not_hit_the_next_query(
    con: duckdb.DuckDBPyConnection,
) -> None:
    shared = con.cursor()
    server = QueryServer(
        "tcp://127.0.0.1:0",
        lambda _request: shared,
        info=dict,
        timeout_s=5.0,
        max_rows=10,
        workers=1,
    )
    server.start()
    try:
        with QueryClient(server.endpoint) as client:
            with pytest.raises(QueryError):
                client.query(SLOW_SQL, timeout_s=0.2)
            for _ in range(20):  # truncated results leave no open result behind either
                assert client.query("select i from t", timeout_s=0.05).truncated
            assert client.query("select 42 x").table.column("x").to_pylist() == [42]
    finally:
        server.close()


def test_bad_query_carries_duckdbs_message(
    con: duckdb.DuckDBPyConnection, client: QueryClient
) -> None:
    sql = "select nope from t"
    with pytest.raises(duckdb.BinderException) as expected:
        con.cursor().sql(sql)
    with pytest.raises(QueryError) as info:
        client.query(sql)
    assert info.value.kind == "bad_query"
    assert str(info.value) == str(expected.value)
    with pytest.raises(QueryError) as runtime:
        client.query("select cast('x' || i as int) from t")
    assert runtime.value.kind == "bad_query"
    assert "Conversion Error" in str(runtime.value)


def test_forbidden_query(client: QueryClient) -> None:
    with pytest.raises(QueryError) as info:
        client.query("copy t to 'x.csv'")
    assert info.value.kind == "forbidden"
    assert "COPY" in str(info.value)


def test_malformed_frames_get_error_replies(
    server: QueryServer, client: QueryClient, caplog: pytest.LogCaptureFixture
) -> None:
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(server.endpoint)
    cases = [
        [b"QUERY"],
        [b"QUERY", b"not json"],
        [b"QUERY", b'{"sql": 1}'],
        [b"QUERY", b'{"sql": "select 1", "max_rows": -1}'],
        [b"QUERY", b'{"sql": "select 1", "timeout_s": "soon"}'],
        [b"QUERY", b'{"sql": "select 1", "syms": ["AAPL"]}'],
        [b"QUERY", b'{"sql": "select 1", "syms": {"trade": "AAPL"}}'],
        [b"QUERY", b'{"sql": "select 1", "syms": {"trade": [1]}}'],
        [b"QUERY", b"{}", b"extra"],
        [b"NOPE", b"x"],
    ]
    try:
        for frames in cases:
            sock.send_multipart(frames)
            assert sock.poll(5000), frames
            reply = sock.recv_multipart()
            assert reply[0] == b"ERR", frames
            assert json.loads(reply[1])["kind"] == "bad_query", frames
    finally:
        sock.close(0)
    assert any("unknown request tag" in r.getMessage() for r in caplog.records)
    assert client.query("select 1 x").table.num_rows == 1


def test_req_clients_are_answered(server: QueryServer) -> None:
    sock = zmq.Context.instance().socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(server.endpoint)
    try:
        sock.send_multipart([b"QUERY", json.dumps({"sql": "select 7 x"}).encode()])
        assert sock.poll(5000)
        tag, meta, payload = sock.recv_multipart()
    finally:
        sock.close(0)
    assert tag == b"OK" and json.loads(meta)["rows"] == 1
    assert pa.ipc.open_stream(payload).read_all().column("x").to_pylist() == [7]


def test_info_reports_owner_info_and_counters(client: QueryClient) -> None:
    client.query("select 1")
    info = client.info()
    assert info["role"] == "test"
    assert info["query_service"]["queries_ok"] >= 1


def test_extra_handlers_and_their_failures(con: duckdb.DuckDBPyConnection) -> None:
    def boom(frames: list[bytes]) -> list[bytes]:
        raise RuntimeError("handler broke")

    handlers = {b"ECHO": lambda frames: [b"ECHOED", *frames], b"BOOM": boom}
    server = _server(con, extra_handlers=handlers)
    try:
        with QueryClient(server.endpoint) as client:
            assert client.call(b"ECHO", b"a", b"b") == [b"ECHOED", b"a", b"b"]
            with pytest.raises(QueryError) as info:
                client.call(b"BOOM")
            assert info.value.kind == "internal" and "handler broke" in str(info.value)
            assert client.call(b"ECHO") == [b"ECHOED"]
    finally:
        server.close()


def test_info_answers_while_workers_are_busy(con: duckdb.DuckDBPyConnection) -> None:
    server = _server(con, workers=1)
    try:
        with QueryClient(server.endpoint) as client:
            errors: list[QueryError] = []

            def slow() -> None:
                try:
                    client.query(SLOW_SQL, timeout_s=3)
                except QueryError as exc:
                    errors.append(exc)

            thread = threading.Thread(target=slow)
            thread.start()
            wait_until(
                lambda: server.describe()["query_service"]["running"] == 1,
                what="slow query running",
            )
            started = time.monotonic()
            assert client.info()["role"] == "test"
            assert time.monotonic() - started < 1.0
            thread.join()
            assert errors and errors[0].kind == "timeout"
    finally:
        server.close()


def test_parallel_queries_from_threads_share_one_client(client: QueryClient) -> None:
    results: dict[int, int] = {}

    def run(k: int) -> None:
        results[k] = client.query(f"select count(*) c from t where i % 8 = {k}").table[0][0]

    threads = [threading.Thread(target=run, args=(k,)) for k in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {k: v.as_py() for k, v in results.items()} == {k: 12500 for k in range(8)}


def test_client_never_hangs_on_a_dead_address() -> None:
    with zmq.Context.instance().socket(zmq.ROUTER) as probe:
        port = probe.bind_to_random_port("tcp://127.0.0.1")
    client = QueryClient(f"tcp://127.0.0.1:{port}", timeout_s=0.2)
    started = time.monotonic()
    with pytest.raises(QueryError) as info:
        client.query("select 1", timeout_s=0.2)
    assert info.value.kind == "unavailable"
    assert time.monotonic() - started < 5
    with pytest.raises(QueryError):
        client.info()
    client.close()


def test_client_recovers_after_a_timeout_and_ignores_the_late_reply(
    con: duckdb.DuckDBPyConnection,
) -> None:
    release = threading.Event()

    def slow(frames: list[bytes]) -> list[bytes]:
        release.wait(10)
        return [b"SLOW"]

    server = _server(con, extra_handlers={b"SLOW": slow, b"FAST": lambda f: [b"FAST"]})
    try:
        client = QueryClient(server.endpoint, timeout_s=0.3)
        with pytest.raises(QueryError) as info:
            client.call(b"SLOW")
        assert info.value.kind == "unavailable"
        release.set()
        # The late SLOW reply goes to the abandoned socket, never to the next request.
        for _ in range(5):
            assert client.call(b"FAST") == [b"FAST"]
        client.close()
    finally:
        server.close()


def test_an_answer_finished_after_the_stop_does_not_hold_close(
    con: duckdb.DuckDBPyConnection,
) -> None:
    # The router thread closes its end of the workers' replies as the server stops. A worker
    # that finished after that waited on its send until close() gave up on it (10 s) and
    # the context ended under it (an exception in the worker's thread).
    started, release = threading.Event(), threading.Event()

    def slow(frames: list[bytes]) -> list[bytes]:
        started.set()
        release.wait(10)
        return [b"SLOW"]

    server = _server(con, extra_handlers={b"SLOW": slow})
    client = QueryClient(server.endpoint, timeout_s=5)
    caller = threading.Thread(target=lambda: _swallow_call(client, b"SLOW"), daemon=True)
    caller.start()
    assert started.wait(10), "the handler never ran"
    (router,) = [t for t in server._threads if t.name == "qs-router"]
    began = time.monotonic()
    closing = threading.Thread(target=server.close)
    closing.start()
    router.join(10)
    assert not router.is_alive(), "the router thread did not stop"
    release.set()  # the answer comes now, with nobody left to take it
    closing.join(15)
    assert not closing.is_alive()
    assert time.monotonic() - began < 5
    caller.join(10)
    client.close()


def _swallow_call(client: QueryClient, tag: bytes) -> None:
    with contextlib.suppress(QueryError):
        client.call(tag)


def test_client_reaches_a_server_that_starts_later(con: duckdb.DuckDBPyConnection) -> None:
    with zmq.Context.instance().socket(zmq.ROUTER) as probe:
        port = probe.bind_to_random_port("tcp://127.0.0.1")
    client = QueryClient(f"tcp://127.0.0.1:{port}", timeout_s=0.2)
    with pytest.raises(QueryError):
        client.query("select 1")
    server = QueryServer(
        f"tcp://127.0.0.1:{port}",
        lambda _request: con.cursor(),
        info=dict,
        timeout_s=5.0,
        max_rows=10,
    )
    server.start()
    try:
        assert wait_until(lambda: _answers(client), what="server reachable")
    finally:
        client.close()
        server.close()


def _answers(client: QueryClient) -> bool:
    try:
        return client.query("select 1 x").table.num_rows == 1
    except QueryError:
        return False


def test_queue_wait_counts_towards_the_time_limit(con: duckdb.DuckDBPyConnection) -> None:
    server = _server(con, workers=1)
    try:
        with QueryClient(server.endpoint) as client:
            first = threading.Thread(target=lambda: _swallow(client, SLOW_SQL, 1.0))
            first.start()
            wait_until(
                lambda: server.describe()["query_service"]["running"] == 1,
                what="first query running",
            )
            started = time.monotonic()
            with pytest.raises(QueryError) as info:
                client.query("select 1", timeout_s=0.5)
            assert info.value.kind == "timeout"
            assert time.monotonic() - started < 2.5
            first.join()
    finally:
        server.close()


def _swallow(client: QueryClient, sql: str, timeout_s: float) -> None:
    with contextlib.suppress(QueryError):
        client.query(sql, timeout_s=timeout_s)


def test_close_interrupts_running_queries(con: duckdb.DuckDBPyConnection) -> None:
    server = _server(con, timeout_s=30.0)
    client = QueryClient(server.endpoint)
    thread = threading.Thread(target=lambda: _swallow(client, SLOW_SQL, 8.0), daemon=True)
    thread.start()
    wait_until(lambda: server.describe()["query_service"]["running"] == 1, what="query running")
    started = time.monotonic()
    server.close()
    assert time.monotonic() - started < 4  # well inside the query's own 8s limit
    thread.join(15)
    client.close()


def test_time_limits_share_one_watchdog_thread(server: QueryServer, client: QueryClient) -> None:
    # Hundreds of finished queries leave entries behind in the watchdog's heap; it sheds
    # them and still interrupts the next slow query on time, with no thread per query.
    for _ in range(300):
        client.query("select 1", timeout_s=30)
    assert not [t for t in threading.enumerate() if isinstance(t, threading.Timer)]
    assert sum(t.name == "qs-watchdog" for t in threading.enumerate()) == 1
    assert len(server._watchdog._heap) <= 65  # finished guards were dropped
    started = time.monotonic()
    with pytest.raises(QueryError) as info:
        client.query(SLOW_SQL, timeout_s=0.3)
    assert info.value.kind == "timeout"
    assert time.monotonic() - started < 3


def test_results_at_any_offset_decode_to_aligned_buffers(capfd: pytest.CaptureFixture[str]) -> None:
    # ZeroMQ hands small messages over inside its receive buffer at any byte offset; Arrow's
    # compute engine (the gateway's Arrow merges) warns on every call over buffers that are
    # not aligned to their type, and may be slow or crash on some hardware.
    table = pa.table({"sym": ["a", "b", "a"], "px": [1.5, 2.5, 3.5], "n": [1, 2, 3]})
    meta, payload = encode_result(table, False, 1.0)[1:]
    shifted = memoryview(b"x" + bytes(payload))[1:]
    got = decode_result(meta, shifted).table
    assert got.equals(table)
    for name, width in (("px", 8), ("n", 8), ("sym", 4)):  # values; a string's offsets
        for chunk in got.column(name).chunks:
            assert chunk.buffers()[1].address % width == 0, name
    summed = got.group_by("sym").aggregate([("px", "sum")])
    assert summed.num_rows == 2
    assert "poorly aligned" not in capfd.readouterr().err
