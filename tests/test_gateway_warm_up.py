"""A gateway warms its query path before it says it is ready (``gateway.warm_up``): by the
time its ready file appears, its backends have answered a real query from it, so the first
client (one failing over to it, say) does not pay the first-use costs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from support.gateway_data import TODAY
from support.harness import Proc

from gateway.client import Client
from gateway.local import local_topology
from queries.service import QueryServer

ROWS = pa.table(
    {
        "date": pa.array([TODAY] * 6, pa.date32()),
        "sym": ["AAPL", "MSFT", "IBM", "AAPL", "MSFT", "IBM"],
        "price": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        "size": [1, 2, 3, 4, 5, 6],
    }
)


class Recording:
    """A backend's ``prepare``: each query's SQL is recorded, then served from ``backend``."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.asked: list[str] = []

    def __call__(self, request: Any) -> Any:
        self.asked.append(request.sql)
        return self.backend.cursor()


@pytest.fixture
def backends() -> Any:
    servers: dict[str, QueryServer] = {}
    recorders: dict[str, Recording] = {}
    for name, backend in local_topology({"trade": ROWS}, shards=1, today=TODAY).items():
        recorders[name] = Recording(backend)
        server = QueryServer(
            "tcp://127.0.0.1:0", recorders[name], info=backend.info, timeout_s=10, max_rows=1000
        )
        server.start()
        servers[name] = server
    yield servers, recorders
    for server in servers.values():
        server.close()


def test_backends_answered_a_query_before_the_gateway_is_ready(
    tmp_path: Path, backends: Any
) -> None:
    servers, recorders = backends
    args = ["gateway", "--port", "0", "--kdb-port", "0", "--refresh", "0.2"]
    for name, server in servers.items():
        args += [f"--{name[:3]}", server.endpoint]
    gateway = Proc(args, tmp_path, "gateway")
    try:
        # The ready file is there: the warm-up already ran, before any client asked anything.
        asked = [sql for r in recorders.values() for sql in r.asked]
        assert any("count" in sql.lower() and "trade" in sql for sql in asked), asked
        assert any("group by" in sql.lower() for sql in asked), asked
        # And it changed nothing a client sees.
        with Client(str(gateway.info["url"])) as client:
            n = client.query("SELECT count(*) AS n FROM trade").column("n")[0].as_py()
        assert n == 6
        assert "warm-up" not in gateway.log()  # nothing skipped, nothing failed
    finally:
        gateway.stop()
