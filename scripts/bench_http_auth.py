"""What ``[auth]`` costs an HTTP request: the same small query through two real gateway
processes over the same backend, one with ``[auth] mode = "none"`` (the raw baseline) and
one with ``mode = "on"``, asked with a bearer token, with a Basic password (argon2 once,
then remembered) and as an identity whose read role names tables (each query parsed for
the tables it reads). Requests are interleaved so load on the machine hits each alike.
Prints the median round trip per kind and its ratio to the baseline, then what each check
costs per call in this process (median of timed batches): a token, a remembered Basic
password, and the parse that finds the tables a query reads (done once per query text).

    .venv/bin/python scripts/bench_http_auth.py [--requests 2000]
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import argon2
import httpx
import pyarrow as pa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.local import local_topology  # noqa: E402
from queries.read_access import tables_read  # noqa: E402
from queries.service import QueryServer  # noqa: E402
from tickdb.auth import AuthConfig, Authorizer, IdentityConfig, hash_token  # noqa: E402
from tickdb.launch import Launched, launch  # noqa: E402

TODAY = dt.date.today()
SQL = "select count(*) n from trade where sym = 'S1'"
PASSWORD = "bench-password"
TOKENS = {"reader": "tdb_bench_reader", "trades": "tdb_bench_trades"}


def data() -> dict[str, pa.Table]:
    n = 1000
    return {
        "trade": pa.table(
            {
                "time": pa.array([dt.datetime(2024, 1, 1, 9, 30)] * n, pa.timestamp("ns")),
                "sym": pa.array([f"S{i % 10}" for i in range(n)]),
                "price": pa.array([1.0] * n),
                "size": pa.array([1] * n, pa.int64()),
                "date": pa.array([TODAY] * n, pa.date32()),
            }
        )
    }


def auth_toml() -> str:
    hashed = argon2.PasswordHasher().hash(PASSWORD)  # the default cost, as deployed
    return "\n".join(
        [
            "[auth]",
            'mode = "on"',
            "[auth.identities.reader]",
            f'password = "{hashed}"',
            f'tokens = ["{hash_token(TOKENS["reader"])}"]',
            'roles = ["read"]',
            "[auth.identities.trades]",
            f'tokens = ["{hash_token(TOKENS["trades"])}"]',
            'roles = ["read:trade"]',
            "",
        ]
    )


def gateway(workdir: Path, name: str, endpoint: str, toml: str) -> Launched:
    config = workdir / f"{name}.toml"
    config.write_text(toml)
    args = ["gateway", "--config", str(config), "--data-dir", str(workdir / name)]
    args += ["--port", "0", "--kdb-port", "0", "--rdb", endpoint]
    return launch(
        args,
        name=name,
        log_path=workdir / f"{name}.log",
        ready_file=workdir / f"{name}.ready.json",
        ready_timeout_s=60,
    )


def per_call(label: str, fn: Callable[[], object], n: int = 2000) -> None:
    batches = []
    for _ in range(7):
        started = time.perf_counter()
        for _ in range(n):
            fn()
        batches.append((time.perf_counter() - started) / n)
    print(f"  {label:44s} {statistics.median(batches) * 1e6:8.1f} us")


def checks() -> None:
    hasher = argon2.PasswordHasher()
    config = AuthConfig(
        mode="on",
        identities={
            "reader": IdentityConfig(
                password=hasher.hash(PASSWORD),
                tokens=[hash_token(TOKENS["reader"])],
                roles=["read"],
            )
        },
    )
    authorizer = Authorizer(config)
    authorizer.check_login("reader", PASSWORD)  # argon2 once; remembered after
    known = {"trade": None, "quote": None}
    join = "select t.sym, avg(q.bid) from trade t join quote q using (sym) group by 1"
    print("per call, in process")
    per_call("check_token (sha256, constant-time scan)", lambda: authorizer.check_token("x"))
    remembered = lambda: authorizer.check_login("reader", PASSWORD)  # noqa: E731
    per_call("check_login, a remembered password", remembered)
    per_call("tables_read, a one-table query", lambda: tables_read(SQL, known), 200)
    per_call("tables_read, a join", lambda: tables_read(join, known), 200)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--checks-only", action="store_true", help="Only the per-call part.")
    args = parser.parse_args()
    if args.checks_only:
        checks()
        return
    backend = local_topology(data(), shards=1, today=TODAY, hdb=False)["rdb0"]
    server = QueryServer(
        "tcp://127.0.0.1:0",
        lambda _r: backend.cursor(),
        info=backend.info,
        timeout_s=10,
        max_rows=1_000_000,
    )
    server.start()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        open_gw = gateway(workdir, "open", server.endpoint, "")
        auth_gw = gateway(workdir, "auth", server.endpoint, auth_toml())
        basic = "Basic " + base64.b64encode(f"reader:{PASSWORD}".encode()).decode()
        kinds = {
            "mode none (baseline)": (open_gw.info["url"], {}),
            "bearer token": (auth_gw.info["url"], {"Authorization": f"Bearer {TOKENS['reader']}"}),
            "Basic password": (auth_gw.info["url"], {"Authorization": basic}),
            "read:trade token": (
                auth_gw.info["url"],
                {"Authorization": f"Bearer {TOKENS['trades']}"},
            ),
        }
        clients = {k: httpx.Client(base_url=url, headers=h) for k, (url, h) in kinds.items()}
        times: dict[str, list[float]] = {k: [] for k in kinds}
        try:
            for c in clients.values():  # warm up: connections, argon2's first check
                for _ in range(20):
                    c.post("/query", json={"sql": SQL}).raise_for_status()
            for _ in range(args.requests):
                for kind, c in clients.items():
                    started = time.perf_counter()
                    c.post("/query", json={"sql": SQL}).raise_for_status()
                    times[kind].append(time.perf_counter() - started)
        finally:
            for c in clients.values():
                c.close()
            open_gw.stop(grace_s=10)
            auth_gw.stop(grace_s=10)
            server.close()
    base = statistics.median(times["mode none (baseline)"])
    print(f"{args.requests} requests each, interleaved; median round trip, ratio to mode none")
    for kind, samples in times.items():
        median = statistics.median(samples)
        print(f"  {kind:22s} {median * 1e3:7.3f} ms   x{median / base:.3f}")
    checks()


if __name__ == "__main__":
    from stop_on_term import stop_on_term

    stop_on_term()
    main()
