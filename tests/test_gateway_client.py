"""``gateway.client.Client``'s HTTP handling, against a small stand-in server on loopback.

The stand-in answers like the gateway (JSON or an Arrow stream) and can drop a kept-alive
connection right after a reply without saying so, as a restarted or idle-timing-out server
does. The client must send the request again on a fresh connection, never fail on it.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pyarrow as pa
import pyarrow.ipc as ipc
import pytest

from gateway.client import ARROW_STREAM, Client, GatewayError, GatewayUnreachable


def arrow_body(n: int) -> bytes:
    table = pa.table({"x": pa.array(range(n), pa.int64())})
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive unless we close

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.reply(200, "application/json", json.dumps({"status": "ok"}).encode())

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests += 1  # type: ignore[attr-defined]
        if body.get("sql") == "bad":
            msg = {"error": "bad_query", "message": "Parser Error: nope"}
            self.reply(400, "application/json", json.dumps(msg).encode())
            return
        self.reply(200, ARROW_STREAM, arrow_body(int(body["sql"])))

    def reply(self, status: int, media: str, data: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", media)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        # Close without a "Connection: close" header: the client learns only when it
        # next writes or reads on this connection.
        self.close_connection = self.server.drop  # type: ignore[attr-defined]


@pytest.fixture
def server() -> Iterator[ThreadingHTTPServer]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.drop = False  # type: ignore[attr-defined]
    httpd.requests = 0  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def url_of(httpd: ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{httpd.server_address[1]}"


def test_large_arrow_results_and_errors(server: ThreadingHTTPServer) -> None:
    with Client(url_of(server)) as client:
        assert client.query("200000").column("x").to_pylist() == list(range(200_000))
        with pytest.raises(GatewayError) as err:
            client.query("bad")
        assert (err.value.kind, err.value.status) == ("bad_query", 400)
        assert "Parser Error" in str(err.value)
        assert client.health() == {"status": "ok"}


def test_a_connection_the_server_dropped_is_replaced_without_an_error(
    server: ThreadingHTTPServer,
) -> None:
    server.drop = True  # type: ignore[attr-defined]
    with Client(url_of(server)) as client:
        for n in range(5):  # each request after the first finds its kept connection dead
            assert client.query(str(n)).num_rows == n
    assert server.requests == 5  # type: ignore[attr-defined]


def test_threads_share_one_client(server: ThreadingHTTPServer) -> None:
    errors: list[BaseException] = []
    with Client(url_of(server)) as client:

        def run(n: int) -> None:
            try:
                for i in range(20):
                    assert client.query(str(1000 + n * 20 + i)).num_rows == 1000 + n * 20 + i
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    assert not errors, errors[:3]
    assert server.requests == 80  # type: ignore[attr-defined]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_no_gateway_is_unreachable_and_the_cli_exits_2() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with Client(url) as client, pytest.raises(GatewayUnreachable) as err:
        client.query("SELECT 1")
    assert err.value.kind == "unavailable" and err.value.status == 0
    for args in (["query", "SELECT 1"], ["status"]):
        out = subprocess.run(
            [sys.executable, "-m", "tickdb.cli", *args, "--url", url],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 2, out.stderr
        assert url in out.stderr
