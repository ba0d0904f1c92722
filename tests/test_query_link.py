"""The query client fails at once when its server dies or is not there, and every reply
names the run of the server process that made it (``queries.service_link``)."""

from __future__ import annotations

import subprocess
import time

import duckdb
import pytest
from support.harness import free_port, wait_until
from support.silent_server import connected

from queries.service import QueryClient, QueryError, QueryServer


def test_a_request_fails_as_soon_as_its_server_is_killed(
    silent: tuple[subprocess.Popen[str], str],
) -> None:
    proc, address = silent
    client = QueryClient(address, timeout_s=30.0)
    failed: list[tuple[QueryError, float]] = []

    def ask() -> None:
        try:
            client.query("select 1", timeout_s=30.0)
        except QueryError as exc:
            failed.append((exc, time.monotonic()))

    import threading

    thread = threading.Thread(target=ask)
    thread.start()
    # The request is on its way once the server holds a connection from us.
    wait_until(lambda: connected(proc.pid), 10, "a connection")
    killed = time.monotonic()
    proc.kill()
    thread.join(10)
    assert failed, "the request did not end"
    error, at = failed[0]
    assert error.kind == "unavailable" and "lost" in str(error)
    assert at - killed < 1.0  # not the 30 s limit
    assert client.connections_lost == 1
    client.close()


def test_nothing_listening_fails_at_once() -> None:
    client = QueryClient(f"tcp://127.0.0.1:{free_port()}", timeout_s=30.0)
    started = time.monotonic()
    with pytest.raises(QueryError) as info:
        client.info()
    assert info.value.kind == "unavailable" and "nothing listening" in str(info.value)
    assert time.monotonic() - started < 1.0
    client.close()


def test_a_restarted_server_is_reached_on_a_fresh_socket_with_a_new_incarnation() -> None:
    con = duckdb.connect()
    address = f"tcp://127.0.0.1:{free_port()}"

    def serve() -> QueryServer:
        server = QueryServer(
            address, lambda _r: con.cursor(), info=dict, timeout_s=5.0, max_rows=10
        )
        server.start()
        return server

    server = serve()
    client = QueryClient(address, timeout_s=5.0)
    try:
        first = client.query("select 1 x")
        assert first.incarnation == server.incarnation
        assert client.info()["query_service"]["incarnation"] == server.incarnation
        server.close()
        server = serve()  # the same address, a new run
        second = wait_until(lambda: _answer(client), 10, "the restarted server")
        assert second.incarnation == server.incarnation != first.incarnation
    finally:
        client.close()
        server.close()


def _answer(client: QueryClient) -> object:
    try:
        return client.query("select 1 x")
    except QueryError:
        return None
