"""The venue scenario of ``bench_failover.py``: a venue pair under a stream of orders.

A tickerplant, a venue pair of one shard (``--lease`` and ``--standby``), a gateway taking
orders, and ``clients`` threads submitting crossing orders and waiting for the venue's
answer. Each kill SIGKILLs whichever venue is primary; measured: from the kill to the first
output batch the standby publishes as the new primary (its role file's ``first_output_at``,
same host clock). The killed one is started again as the standby before the next kill.
Baseline, in the same run: an order's round trip (submit, venue answer) before the kills.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import threading
import time
from pathlib import Path
from typing import Any

from waits import wait_for

from gateway.client import Client, GatewayError
from tickdb.launch import Launched, launch

SYMS = ["AAPL", "MSFT", "GOOG"]


class VenuePair:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.run = workdir / "run"
        self.config = workdir / "venue.toml"
        self.config.write_text(
            '[tickerplant]\naddress = "tcp://127.0.0.1:0"\npublish_address = '
            '"tcp://127.0.0.1:0"\nreplay_address = "tcp://127.0.0.1:0"\nkdb_port = 0\n'
            "heartbeat_ms = 200\n\n[risk.defaults]\nmax_messages_per_s = 0\n"
            "duplicate_window_s = 0\nmax_open_orders = 0\nmax_open_orders_per_sym = 0\n"
            "max_fills_per_window = 0\n"
        )
        self.procs: dict[str, Launched] = {}
        self.tp_address = str(self._launch("vtp", ["tp"]).info["address"])
        self.start("venue-0", "--lease")
        self.start("venue-0-s", "--standby")
        gateway = ["gateway", "--port", "0", "--kdb-port", "0", "--tp", self.tp_address]
        gateway += ["--order-port", "tcp://127.0.0.1:0"]
        self.url = str(self._launch("vgateway", gateway).info["url"])

    def _launch(self, name: str, args: list[str]) -> Launched:
        common = ["--config", str(self.config), "--data-dir", str(self.workdir / "vdata")]
        self.procs[name] = launch(
            [*args, *common],
            name=name,
            log_path=self.workdir / f"{name}.log",
            ready_file=self.workdir / f"{name}.ready",
            ready_timeout_s=60,
        )
        return self.procs[name]

    def start(self, name: str, flag: str) -> None:
        args = ["venue", "--tp", self.tp_address, "--shard", "0/1", flag, "--name", name]
        self._launch(name, [*args, "--lease-dir", str(self.run)])

    def role(self, name: str) -> dict[str, Any]:
        try:
            return dict(json.loads((self.run / f"{name}.role.json").read_text()))
        except (OSError, ValueError):
            return {}

    def close(self) -> None:
        for proc in reversed(list(self.procs.values())):
            proc.stop()


class OrderLoad:
    def __init__(self, url: str, clients: int) -> None:
        self.url = url
        self.latencies: list[tuple[float, float]] = []  # (started, seconds)
        self.errors = 0
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(clients)
        ]

    def _run(self, index: int) -> None:
        with Client(self.url, timeout_s=30) as client:
            n = 0
            while not self.stop.is_set():
                n += 1
                side = "buy" if n % 2 else "sell"
                started = time.monotonic()
                try:
                    client.submit(f"B{index}", SYMS[n % 3], side, 5, 100.0, clordid=f"{index}-{n}")
                except GatewayError:
                    self.errors += 1
                self.latencies.append((started, time.monotonic() - started))


def run_venue_scenario(workdir: Path, kills: int, clients: int) -> dict[str, Any]:
    pair = VenuePair(workdir)
    load = OrderLoad(pair.url, clients)
    try:
        for t in load.threads:
            t.start()
        wait_for(lambda: len(load.latencies) >= 300, 120, "300 baseline orders")
        base = [s * 1000 for _, s in load.latencies]
        takeovers: list[float] = []
        primary, standby = "venue-0", "venue-0-s"
        for _ in range(kills):
            count = len(load.latencies)
            wait_for(lambda c=count: len(load.latencies) >= c + 20, 60, "orders before the kill")
            epoch = int(pair.role(primary)["epoch"])
            killed = time.time()
            os.killpg(pair.procs[primary].pid, signal.SIGKILL)

            def took_over(name: str = standby, e: int = epoch) -> dict[str, Any] | None:
                r = pair.role(name)
                return r if r.get("epoch", 0) > e and r.get("first_output_at") else None

            took = wait_for(took_over, 30, "the standby's first output")
            takeovers.append((took["first_output_at"] - killed) * 1000)
            pair.procs[primary].popen.wait(10)
            pair.start(primary, "--standby")
            primary, standby = standby, primary
    finally:
        load.stop.set()
        for t in load.threads:
            t.join(30)
        pair.close()
    return {"base": base, "takeovers": takeovers, "errors": load.errors}


def report_venue(result: dict[str, Any], pct: Any) -> None:
    base, takeovers = result["base"], result["takeovers"]
    b50, b99 = statistics.median(base), pct(base, 0.99)
    print(f"venue baseline: order round trip p50 {b50:.1f} ms, p99 {b99:.1f} ms ({len(base)})")
    p50, p99, top = statistics.median(takeovers), pct(takeovers, 0.99), max(takeovers)
    print(
        f"venue primary killed {len(takeovers)} times: {result['errors']} client errors\n"
        f"  takeover  p50 {p50:7.1f} ms  p99 {p99:7.1f} ms  max {top:7.1f} ms"
        f"  (p50 {p50 / b50:.1f}x order p50, p99 {p99 / b99:.1f}x order p99)"
    )
