"""The tickerplant scenario of ``bench_failover.py``: a tickerplant pair under a feed.

Failover: two ``tickdb tp`` nodes with ``[replication] mode = "sync"`` and one lease
directory (``lease_ttl_ms`` 1000, ``standby_timeout_ms`` 2000: a starved standby on a loaded
machine is not dropped, and stays eligible); a probe publisher given both addresses
publishes a small batch and waits for its ack, over and over, while a feed publisher adds
load. Each kill SIGKILLs the primary;
measured, from the kill: until the first probe batch acknowledged by the new primary (the
probe's ``flush`` returns after the publisher moved to the other address). The killed node
is started again and waited for as the attached standby before the next kill. Baseline, in
the same run before the kills: the probe's round trip (publish, ack).

Cost of replication: a lone tickerplant (``mode = "off"``), then a pair in sync mode, then
in async mode, each on fresh data directories in the same run: throughput (rows/s of one
publisher sending ``--batches`` batches of 1000 rows as fast as it can, then flushing) and
latency (publish-to-ack round trips of one 100-row batch, p50/p99); printed as ratios to the lone
tickerplant.
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

import zmq
from waits import wait_for

from tickdb.launch import Launched, launch
from tickerplant.publisher import Publisher
from tickerplant.table_payload import to_arrow

NODES = ("a", "b")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Nodes:
    """One tickerplant (``mode = "off"``) or a pair, on fresh directories under ``workdir``."""

    def __init__(self, workdir: Path, mode: str) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.mode = mode
        self.names = ("a",) if mode == "off" else NODES
        self.addresses = {n: f"tcp://127.0.0.1:{free_port()}" for n in self.names}
        self.procs: dict[str, Launched] = {}
        for node in self.names:
            (workdir / f"{node}.toml").write_text(
                f'[tickerplant]\naddress = "{self.addresses[node]}"\n'
                'publish_address = "tcp://127.0.0.1:0"\nreplay_address = "tcp://127.0.0.1:0"\n'
                "kdb_port = 0\nheartbeat_ms = 100\n\n"
                f'[replication]\nmode = "{mode}"\naddress = "tcp://127.0.0.1:0"\n'
                f'lease_dir = "{workdir / "lease"}"\nlease_ttl_ms = 1000\n'
                "standby_timeout_ms = 2000\n"
            )
        for node in self.names:
            self.start(node)
            if mode != "off" and node == "a":
                wait_for(lambda: self.role("a").get("role") == "primary", 60, "a primary")
        if mode != "off":
            wait_for(lambda: self.attached("a"), 60, "the standby attached")

    @property
    def all(self) -> list[str]:
        return [self.addresses[n] for n in self.names]

    def start(self, node: str) -> None:
        config, data = str(self.workdir / f"{node}.toml"), str(self.workdir / node)
        self.procs[node] = launch(
            ["tp", "--config", config, "--data-dir", data],
            name=node,
            log_path=self.workdir / f"{node}.log",
            ready_file=self.workdir / f"{node}.ready",
            ready_timeout_s=60,
        )

    def role(self, node: str) -> dict[str, Any]:
        try:
            return dict(json.loads((self.workdir / f"{node}.ready").read_text()))
        except (OSError, ValueError):
            return {}

    def attached(self, node: str) -> bool:
        socket: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.DEALER)
        socket.setsockopt(zmq.LINGER, 0)
        try:
            socket.connect(self.addresses[node])
            socket.send_multipart([b"STATS"])
            if not socket.poll(1000):
                return False
            return bool(json.loads(socket.recv_multipart()[1]).get("standby_attached"))
        finally:
            socket.close(0)

    def close(self) -> None:
        for proc in self.procs.values():
            proc.stop()


def batch(publisher: Publisher, rows: int) -> Any:
    data = {"sym": ["AAPL"] * rows, "price": [1.0] * rows, "size": list(range(rows))}
    return to_arrow(data, publisher.schemas["trade"])


class Probe:
    """Publish one batch, wait for its ack, again: (started, finished, failovers) each."""

    def __init__(self, addresses: list[str]) -> None:
        self.publisher = Publisher(addresses, timeout_s=30, resend_after_s=0.3)
        self.rounds: list[tuple[float, float, int]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        table = batch(self.publisher, 10)
        while not self.stop.is_set():
            started = time.monotonic()
            self.publisher.publish("trade", table)
            self.publisher.flush()
            self.rounds.append((started, time.monotonic(), self.publisher.failovers))

    def close(self) -> None:
        self.stop.set()
        self.thread.join(30)
        self.publisher.close()


class FeedLoad:
    """Background load: batches of 100 rows at about ``rate`` rows/s, through failovers."""

    def __init__(self, addresses: list[str], rate: int) -> None:
        self.publisher = Publisher(addresses, timeout_s=30, resend_after_s=0.3)
        self.rate = rate
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        table = batch(self.publisher, 100)
        interval = 100 / self.rate
        next_at = time.monotonic()
        while not self.stop.is_set():
            self.publisher.publish("trade", table)
            next_at += interval
            self.stop.wait(max(0.0, next_at - time.monotonic()))

    def close(self) -> None:
        self.stop.set()
        self.thread.join(30)
        self.publisher.close()


def fill_day(addresses: list[str], megabytes: float) -> None:
    """A day's journal of about ``megabytes`` first (1000-row batches, as fast as they go):
    what a takeover late in a busy day starts from."""
    with Publisher(addresses, timeout_s=60) as publisher:
        table = batch(publisher, 1000)
        for _ in range(int(megabytes * 1e6 / table.nbytes)):
            publisher.publish("trade", table)
        publisher.flush()


def run_tp_failover(
    workdir: Path, kills: int, feed_rate: int, day_mb: float = 0.0
) -> dict[str, Any]:
    nodes = Nodes(workdir, "sync")
    if day_mb:
        fill_day(nodes.all, day_mb)
    probe, feed = Probe(nodes.all), FeedLoad(nodes.all, feed_rate)
    takeovers: list[float] = []
    promotions: list[float] = []  # kill to the new primary serving (its ready file's time)
    try:
        probe.thread.start()
        feed.thread.start()
        wait_for(lambda: len(probe.rounds) >= 300, 120, "300 baseline rounds")
        base = [(end - start) * 1000 for start, end, _ in probe.rounds]
        primary, standby = "a", "b"
        for _ in range(kills):
            count = len(probe.rounds)
            wait_for(lambda c=count: len(probe.rounds) >= c + 20, 60, "rounds before the kill")
            failovers = probe.publisher.failovers
            epoch = int(nodes.role(primary)["epoch"])
            killed, killed_at = time.monotonic(), time.time()
            os.killpg(nodes.procs[primary].pid, signal.SIGKILL)

            def moved(f: int = failovers) -> tuple[float, float, int] | None:
                return next((r for r in reversed(probe.rounds) if r[2] > f), None)

            wait_for(moved, 30, "an ack from the new primary")
            first = min(r[1] for r in probe.rounds if r[2] > failovers and r[1] >= killed)
            takeovers.append((first - killed) * 1000)
            role = wait_for(lambda s=standby, e=epoch: _promoted(nodes, s, e), 30, "the promotion")
            promotions.append((role["at"] - killed_at) * 1000)
            nodes.procs[primary].popen.wait(10)
            nodes.start(primary)
            wait_for(lambda s=standby: nodes.attached(s), 60, "the restarted node attached")
            primary, standby = standby, primary
    finally:
        probe.close()
        feed.close()
        nodes.close()
    return {"base": base, "takeovers": takeovers, "promotions": promotions}


def _promoted(nodes: Nodes, node: str, epoch: int) -> dict[str, Any] | None:
    role = nodes.role(node)
    return role if role.get("role") == "primary" and role.get("epoch", 0) > epoch else None


MODES = ("off", "sync", "async")


def run_replication_cost(
    workdir: Path, batches: int, rounds: int, repeats: int = 3
) -> dict[str, dict[str, float]]:
    """Each mode ``repeats`` times, the order turned each time; the medians per mode."""
    runs: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
    for i in range(repeats):
        for mode in MODES[i % 3 :] + MODES[: i % 3]:
            runs[mode].append(_cost_once(workdir / f"{mode}-{i}", mode, batches, rounds))
    return {
        mode: {key: statistics.median(r[key] for r in found) for key in found[0]}
        for mode, found in runs.items()
    }


def _cost_once(workdir: Path, mode: str, batches: int, rounds: int) -> dict[str, float]:
    nodes = Nodes(workdir, mode)
    try:
        publisher = Publisher(nodes.all, timeout_s=60)
        table, big = batch(publisher, 100), batch(publisher, 1000)
        latencies = []
        for _ in range(rounds):
            started = time.perf_counter()
            publisher.publish("trade", table)
            publisher.flush()
            latencies.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        for _ in range(batches):
            publisher.publish("trade", big)
        publisher.flush(120)
        seconds = time.perf_counter() - started
        publisher.close()
        latencies.sort()
        return {
            "rows_per_s": batches * 1000 / seconds,
            "p50_ms": statistics.median(latencies),
            "p99_ms": latencies[int(0.99 * (len(latencies) - 1))],
        }
    finally:
        nodes.close()


def report_tp(failover: dict[str, Any] | None, cost: dict[str, dict[str, float]], pct: Any) -> None:
    if failover is not None:
        base, takeovers = failover["base"], failover["takeovers"]
        b50, b99 = statistics.median(base), pct(base, 0.99)
        print(f"tp baseline: publish-to-ack round trip p50 {b50:.2f} ms, p99 {b99:.2f} ms")
        p50, p99, top = statistics.median(takeovers), pct(takeovers, 0.99), max(takeovers)
        print(
            f"tp primary killed {len(takeovers)} times (sync replication):\n"
            f"  kill to first ack on the new primary  p50 {p50:7.1f} ms  p99 {p99:7.1f} ms"
            f"  max {top:7.1f} ms  (p50 {p50 / b50:.0f}x round trip p50)"
        )
        promotions = failover["promotions"]
        p50, p99, top = statistics.median(promotions), pct(promotions, 0.99), max(promotions)
        print(
            f"  of which kill to the new primary serving  p50 {p50:7.1f} ms  p99 {p99:7.1f} ms"
            f"  max {top:7.1f} ms"
        )
    off = cost["off"]
    for mode in ("off", "sync", "async"):
        r = cost[mode]
        rate = r["rows_per_s"]
        print(
            f"  {mode:5s} {rate:10.0f} rows/s ({rate / off['rows_per_s']:.2f}x)"
            f"  ack p50 {r['p50_ms']:6.2f} ms ({r['p50_ms'] / off['p50_ms']:.2f}x)"
            f"  p99 {r['p99_ms']:6.2f} ms ({r['p99_ms'] / off['p99_ms']:.2f}x)"
        )
