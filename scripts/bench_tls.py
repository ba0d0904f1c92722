"""What TLS costs on the gateway: HTTP against HTTPS, and its kdb+ port plaintext against TLS.

    python scripts/bench_tls.py [--seconds 3] [--repeat 5] [--clients 4] [--rows 200000]

One query service (in this process) holds a trade table of ``--rows`` rows, all today; two
``tickdb gateway`` processes over it, the same but for ``[tls] http``: one plain HTTP, one
HTTPS. The plain one's kdb+ port is ``tls.gateway_kdb = "optional"``, so plaintext and TLS
clients reach the same port of the same process. Certificates: ``tickdb.tls_certs`` (ECDSA
P-256, TLS 1.3). Each case runs plain then TLS, ``--repeat`` times; medians are printed,
with TLS as a ratio to plaintext measured in the same run. Beside wall-clock figures, which
follow whatever else the machine runs, ``cpu`` is the serving gateway process's CPU time
(user + system, from ``/proc``) per request: what TLS adds to the server's work.

Cases:

* ``small``: ``select count(*) from trade``, ``--clients`` threads each with its own kept-
  alive connection (``tickdb.Client`` JSON over HTTP; ``QClient`` ``.tickdb.sql`` over
  kdb+): requests/s and p50/p99 latency.
* ``connect``: the same query on a new connection each time (TCP, and with TLS its
  handshake): what a client that does not keep its connection pays.
* ``bulk``: every row (Arrow over HTTP, q table over kdb+), one client: MB/s of payload.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pyarrow as pa  # noqa: E402

from gateway.client import Client  # noqa: E402
from qipc import QClient  # noqa: E402
from tickdb.tls import client_context  # noqa: E402

SMALL = "select count(*) as n from trade"
BULK = "select * from trade"
TODAY = dt.date.today()


def trade_table(rows: int) -> pa.Table:
    import numpy as np

    start = np.datetime64(dt.datetime.combine(TODAY, dt.time(9, 30)), "ns")
    return pa.table(
        {
            "time": pa.array(start + np.arange(rows) * 1_000_000, pa.timestamp("ns")),
            "sym": pa.array([f"S{i % 100}" for i in range(rows)], pa.string()),
            "price": pa.array(np.linspace(100.0, 101.0, rows), pa.float64()),
            "size": pa.array(np.arange(rows, dtype=np.int64) % 1000, pa.int64()),
            "date": pa.array([TODAY] * rows, pa.date32()),
        }
    )


@contextmanager
def backend(rows: int) -> Iterator[str]:
    """A query service over the trade table, as an RDB of one shard; its endpoint."""
    from gateway.local import local_topology
    from queries.service import QueryServer

    (rdb,) = local_topology({"trade": trade_table(rows)}, shards=1, today=TODAY, hdb=False).values()
    server = QueryServer(
        "tcp://127.0.0.1:0",
        lambda _request: rdb.cursor(),
        info=rdb.info,
        timeout_s=30,
        max_rows=10_000_000,
    )
    server.start()
    try:
        yield server.endpoint
    finally:
        server.close()


@contextmanager
def gateway(workdir: Path, name: str, rdb: str, tls: dict[str, str]) -> Iterator[dict[str, Any]]:
    from tickdb.launch import launch

    config = workdir / f"{name}.toml"
    lines = ["[gateway]", "kdb_port = 0", "[tls]", *(f'{k} = "{v}"' for k, v in tls.items())]
    config.write_text("\n".join(lines) + "\n")
    args = ["gateway", "--config", str(config), "--port", "0", "--rdb", rdb]
    args += ["--kdb-port", str(_free_port()), "--refresh", "1"]
    proc = launch(
        args,
        name=name,
        log_path=workdir / f"{name}.log",
        ready_file=workdir / f"{name}.ready.json",
        ready_timeout_s=60,
        cwd=ROOT,
    )
    try:
        yield {**proc.info, "pid": proc.popen.pid}
    finally:
        proc.stop(grace_s=10)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (Linux ``/proc``)."""
    import os

    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- load ------------------------------------------------------------------------------------
def run_clients(
    make: Callable[[], Any], call: Callable[[Any], None], clients: int, seconds: float
) -> list[float]:
    """``clients`` threads, each with its own ``make()``, calling ``call`` for ``seconds``;
    every call's latency."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    start = threading.Barrier(clients + 1)

    def worker(i: int) -> None:
        conn = make()
        try:
            start.wait()
            deadline = time.perf_counter() + seconds
            while (t0 := time.perf_counter()) < deadline:
                call(conn)
                latencies[i].append(time.perf_counter() - t0)
        finally:
            if conn is not None:
                conn.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    for thread in threads:
        thread.join()
    return [x for per in latencies for x in per]


def summary(latencies: list[float], seconds: float, clients: int) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "rps": len(ordered) / seconds,
        "p50": ordered[len(ordered) // 2] * 1e3,
        "p99": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1e3,
        "clients": clients,
    }


def http_small(url: str, ca: Path | None, args: argparse.Namespace) -> dict[str, float]:
    def make() -> Client:
        return Client(url, verify=ca or True, timeout_s=60)

    got = run_clients(make, lambda c: c.raw(SMALL, "json"), args.clients, args.seconds)
    return summary(got, args.seconds, args.clients)


def http_connect(url: str, ca: Path | None, args: argparse.Namespace) -> dict[str, float]:
    verify: Any = client_context(ca) if ca else True  # one context: as a client would

    def call(_: None) -> None:
        with Client(url, verify=verify, timeout_s=60) as client:
            client.raw(SMALL, "json")

    got = run_clients(lambda: None, call, args.clients, args.seconds)
    return summary(got, args.seconds, args.clients)


def http_bulk(url: str, ca: Path | None, args: argparse.Namespace) -> dict[str, float]:
    sizes: list[int] = []

    def call(c: Client) -> None:
        sizes.append(len(c.raw(BULK, "arrow")))

    got = run_clients(lambda: Client(url, verify=ca or True), call, 1, args.seconds)
    return {**summary(got, args.seconds, 1), "mb_s": sum(sizes) / args.seconds / 1e6}


def kdb_small(port: int, ca: Path | None, args: argparse.Namespace) -> dict[str, float]:
    tls: Any = client_context(ca) if ca else False

    def call(q: QClient) -> None:
        q.sync(".tickdb.sql", SMALL)

    got = run_clients(lambda: QClient("127.0.0.1", port, tls=tls), call, args.clients, args.seconds)
    return summary(got, args.seconds, args.clients)


def kdb_connect(port: int, ca: Path | None, args: argparse.Namespace) -> dict[str, float]:
    tls: Any = client_context(ca) if ca else False

    def call(_: None) -> None:
        with QClient("127.0.0.1", port, tls=tls) as q:
            q.sync(".tickdb.sql", SMALL)

    got = run_clients(lambda: None, call, args.clients, args.seconds)
    return summary(got, args.seconds, args.clients)


def kdb_bulk(port: int, ca: Path | None, args: argparse.Namespace) -> dict[str, float]:
    from qipc.codec import encode
    from qipc.types import RESPONSE

    tls: Any = client_context(ca) if ca else False
    sizes: list[int] = []

    def call(q: QClient) -> None:
        result = q.sync(".tickdb.sql", BULK)
        if not sizes:  # the payload's size, once: encoding it again costs time
            sizes.append(len(encode(result, RESPONSE)))
        else:
            sizes.append(sizes[0])

    got = run_clients(lambda: QClient("127.0.0.1", port, tls=tls), call, 1, args.seconds)
    return {**summary(got, args.seconds, 1), "mb_s": sum(sizes) / args.seconds / 1e6}


# -- report ----------------------------------------------------------------------------------
def median_of(runs: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def report(name: str, plain: list[dict[str, float]], tls: list[dict[str, float]]) -> str:
    keys = ["rps", "p50", "p99", "cpu"] + (["mb_s"] if "mb_s" in plain[0] else [])
    parts = [f"{name:<22}"]
    for key in keys:
        p, s = median_of(plain, key), median_of(tls, key)
        ratios = [t[key] / q[key] for q, t in zip(plain, tls, strict=True) if q[key]]
        ratio = statistics.median(ratios) if ratios else float("nan")
        unit = {"rps": "req/s", "p50": "ms", "p99": "ms", "cpu": "ms", "mb_s": "MB/s"}[key]
        parts.append(f"{key} {p:,.1f} -> {s:,.1f} {unit} ({ratio:.2f}x)")
    return "  ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--rows", type=int, default=200_000)
    args = parser.parse_args()

    from tickdb.tls_certs import create_tls

    with tempfile.TemporaryDirectory() as tmp, backend(args.rows) as rdb:
        workdir = Path(tmp)
        files = create_tls(workdir / "tls")
        files_cfg = {"cert": str(files.cert), "key": str(files.key)}
        plain_cfg = {**files_cfg, "gateway_kdb": "optional"}
        https_cfg = {**files_cfg, "http": "on"}
        with (
            gateway(workdir, "plain", rdb, plain_cfg) as plain,
            gateway(workdir, "https", rdb, https_cfg) as https,
        ):
            print(
                f"{args.rows:,} rows; {args.clients} clients; {args.seconds:g} s x "
                f"{args.repeat}; plain -> TLS (ratio TLS/plain, median of runs)",
                flush=True,
            )
            kdb_port = int(plain["kdb_port"])

            def url(ca: Path | None) -> str:
                return str(https["url"] if ca else plain["url"])

            def measured(case: Case, pid: Callable[[Path | None], int]) -> Case:
                """``case`` with the serving process's CPU ms per request as ``cpu``."""

                def run(ca: Path | None, a: argparse.Namespace) -> dict[str, float]:
                    before = cpu_seconds(pid(ca))
                    got = case(ca, a)
                    spent = cpu_seconds(pid(ca)) - before
                    return {**got, "cpu": spent * 1e3 / max(1.0, got["rps"] * a.seconds)}

                return run

            def http_pid(ca: Path | None) -> int:
                return int(https["pid"] if ca else plain["pid"])

            def kdb_pid(_ca: Path | None) -> int:
                return int(plain["pid"])

            Case = Callable[[Path | None, argparse.Namespace], dict[str, float]]
            cases: list[tuple[str, Case]] = [
                ("HTTP small, kept", measured(lambda ca, a: http_small(url(ca), ca, a), http_pid)),
                (
                    "HTTP new connection",
                    measured(lambda ca, a: http_connect(url(ca), ca, a), http_pid),
                ),
                ("HTTP bulk (Arrow)", measured(lambda ca, a: http_bulk(url(ca), ca, a), http_pid)),
                ("kdb+ small, kept", measured(lambda ca, a: kdb_small(kdb_port, ca, a), kdb_pid)),
                (
                    "kdb+ new connection",
                    measured(lambda ca, a: kdb_connect(kdb_port, ca, a), kdb_pid),
                ),
                ("kdb+ bulk (q table)", measured(lambda ca, a: kdb_bulk(kdb_port, ca, a), kdb_pid)),
            ]
            warm = argparse.Namespace(**{**vars(args), "seconds": 0.5})
            for name, case in cases:
                for ca in (None, files.ca_cert):  # first-query costs, caches: not measured
                    case(ca, warm)
                plain_runs, tls_runs = [], []
                for _ in range(args.repeat):
                    plain_runs.append(case(None, args))
                    tls_runs.append(case(files.ca_cert, args))
                print(report(name, plain_runs, tls_runs), flush=True)


if __name__ == "__main__":
    from stop_on_term import stop_on_term

    stop_on_term()
    main()
