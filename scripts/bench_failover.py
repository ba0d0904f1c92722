"""Failover benchmark: how long a killed process costs the clients, per kind of failover.

A real stack: a tickerplant, two RDB and two HDB replicas of one backend each (fixed
ports, so a killed one comes back where it was), a gateway over them, a light feed, and
``--clients`` threads querying the gateway without pause (``SELECT count(*) FROM trade``,
which asks an RDB replica for today and an HDB replica for the rolled day). Each scenario
kills one of its victims ``--kills`` times (SIGKILL), measures, restarts it and waits until
the gateway routes to it again before the next kill.

Measured per kill, from the SIGKILL:

- ``first ok``: until the first query that started after the kill succeeds (the new path:
  the dead replica avoided, or its part run again on the other one);
- ``in flight``: until the last query in flight at the kill completes (parts on the killed
  replica fail at once, ``queries.service_link``, and run again on the other);
- ``errors``: operations that failed (should be none).

The baseline, measured in the same run before each scenario's kills: the same load's
latency. The ratios divide the failover times by the baseline's median and p99.

A scenario is a class with ``probe`` (the operation its clients repeat: what "a success"
means), ``victims``, ``prepare``, ``kill`` and ``restore``; the timing, the baseline and
the report are shared. ``rdb`` and ``hdb`` (query replicas) today; a venue standby (probe:
an order answered) and a tickerplant standby (probe: a published batch acknowledged) plug
in the same way.

``venue`` and ``gateway`` (``scripts/failover_stack.py``, only with ``--only``): a
``tickdb up`` stack with a venue standby and two gateways under the chaos soak's load
(orders and queries, clients given both gateways); kill the venue primary or the gateway in
use, time until the first request started after the kill succeeds on the new path, and
until the killed one is back (a venue replays the journal).

``venue-output`` (``scripts/failover_venue.py``, only with ``--only venue-output``): a venue
pair under orders; kill the primary, time until the standby's first output as the new
primary.

``tp`` (``scripts/failover_tp.py``, only with ``--only tp``): a tickerplant pair with sync
replication under a feed; kill the primary, time until the first batch acknowledged by the
new one; then the cost of replication (sync, async) on throughput and ack latency, as ratios
to a lone tickerplant in the same run.

    .venv/bin/python scripts/bench_failover.py [--kills 20] [--clients 4]
        [--only rdb|hdb|venue|gateway|venue-output|tp]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from waits import wait_for  # noqa: E402

from gateway.client import Client, GatewayError  # noqa: E402
from tickdb.launch import Launched, launch  # noqa: E402
from tickerplant.discovery import request  # noqa: E402
from tickerplant.protocol import ROLL  # noqa: E402
from tickerplant.publisher import Publisher  # noqa: E402

SYMS = [f"S{i:02d}" for i in range(50)]
PROBE_SQL = "SELECT count(*) AS n FROM trade"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def trades(start: int, rows: int) -> pa.Table:
    return pa.table(
        {
            "sym": [SYMS[i % len(SYMS)] for i in range(start, start + rows)],
            "price": [100.0 + i % 13 for i in range(start, start + rows)],
            "size": list(range(start, start + rows)),
        }
    )


# -- the stack -------------------------------------------------------------------------------


class Stack:
    """A tickerplant, two RDB and two HDB replicas, a gateway, under ``workdir``."""

    def __init__(self, workdir: Path, day_rows: int) -> None:
        self.workdir = workdir
        self.config = workdir / "stack.toml"
        self.config.write_text(
            '[tickerplant]\naddress = "tcp://127.0.0.1:0"\npublish_address = '
            '"tcp://127.0.0.1:0"\nreplay_address = "tcp://127.0.0.1:0"\nkdb_port = 0\n'
            "heartbeat_ms = 200\n"
        )
        self.procs: dict[str, Launched] = {}
        self.tp = self._launch("tp", ["tp"])
        self.tp_address = str(self.tp.info["address"])
        self.addresses = {
            f"{role}-{r}": f"tcp://127.0.0.1:{free_port()}"
            for role in ("rdb", "hdb")
            for r in (0, 1)
        }
        for r in (0, 1):
            self.start("hdb", r)
        for r in (0, 1):
            self.start("rdb", r)
        self.published = 0
        self.publish(day_rows)
        self._wait_rows(day_rows)
        self.roll()
        self.publish(day_rows // 2)
        args = ["gateway", "--port", "0", "--refresh", "0.2", "--timeout", "10", "--kdb-port", "0"]
        args += ["--rdb", f"{self.addresses['rdb-0']},{self.addresses['rdb-1']}"]
        args += ["--hdb", f"{self.addresses['hdb-0']},{self.addresses['hdb-1']}"]
        self.gateway = self._launch("gateway", args)
        self.url = str(self.gateway.info["url"])
        wait_for(lambda: self.serving() == 4, 60, "four serving replicas")

    def _launch(self, name: str, args: list[str], wait: bool = True) -> Launched:
        common = ["--config", str(self.config), "--data-dir", str(self.workdir / "data")]
        launched = launch(
            [*args, *common],
            name=name,
            log_path=self.workdir / f"{name}.log",
            ready_file=self.workdir / f"{name}.ready",
            ready_timeout_s=60,
            wait=wait,
        )
        self.procs[name] = launched
        return launched

    def start(self, role: str, replica: int, wait: bool = True) -> Launched:
        name = f"{role}-{replica}"
        args = [role, "--address", self.addresses[name]]
        if role == "hdb":
            args += ["--shard", "all"]
        else:
            args += ["--tp", self.tp_address, "--replica", str(replica)]
            args += ["--hdb", self.addresses["hdb-0"], "--hdb", self.addresses["hdb-1"]]
        return self._launch(name, args, wait)

    def publish(self, rows: int) -> None:
        with Publisher(self.tp_address) as pub:
            for i in range(self.published, self.published + rows, 1000):
                pub.publish("trade", trades(i, min(1000, self.published + rows - i)))
            pub.flush()
        self.published += rows

    def _wait_rows(self, rows: int) -> None:
        from queries.service import QueryClient

        for r in (0, 1):
            with QueryClient(self.addresses[f"rdb-{r}"], timeout_s=10) as c:
                wait_for(
                    lambda c=c: c.query(PROBE_SQL).table.column(0)[0].as_py() == rows,
                    60,
                    f"{rows} rows in rdb-{r}",
                )

    def roll(self) -> None:
        import zmq

        from queries.service import QueryClient

        ctx = zmq.Context()
        try:
            request(ctx, self.tp_address, [ROLL], 10.0)
        finally:
            ctx.term()
        for r in (0, 1):
            with QueryClient(self.addresses[f"rdb-{r}"], timeout_s=10) as c:
                wait_for(lambda c=c: len(c.info()["dates"]) == 1, 60, f"rdb-{r} handed over")

    def replicas(self) -> dict[str, dict[str, Any]]:
        with urllib.request.urlopen(f"{self.url}/health", timeout=10) as reply:
            health = json.loads(reply.read())
        return {r["name"].split(":", 1)[1]: r for b in health["backends"] for r in b["replicas"]}

    def serving(self) -> int:
        try:
            return sum(r["up"] and r["current"] for r in self.replicas().values())
        except OSError:
            return 0

    def close(self) -> None:
        for proc in reversed(list(self.procs.values())):
            proc.stop()


# -- load and timing -------------------------------------------------------------------------


@dataclass
class Op:
    started: float
    ended: float
    ok: bool


@dataclass
class Load:
    """Clients running the probe without pause; every operation timed."""

    url: str
    clients: int
    probe: Callable[[Client], object]
    ops: list[Op] = field(default_factory=list)
    # Per client, when the operation it is running started (None: between two).
    running: dict[int, float | None] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._threads = [
            threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(self.clients)
        ]

    def _run(self, index: int) -> None:
        with Client(self.url, timeout_s=30) as client:
            while not self._stop.is_set():
                started = time.monotonic()
                self.running[index] = started
                try:
                    self.probe(client)
                    ok = True
                except GatewayError:
                    ok = False
                with self._lock:
                    self.ops.append(Op(started, time.monotonic(), ok))
                    self.running[index] = None

    def in_flight(self) -> set[float]:
        """Start times of the operations running now."""
        with self._lock:
            return {t for t in self.running.values() if t is not None}

    def done(self, starts: set[float]) -> bool:
        with self._lock:
            return starts <= {op.started for op in self.ops}

    def count(self) -> int:
        with self._lock:
            return len(self.ops)

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(30)

    def since(self, t: float) -> list[Op]:
        with self._lock:
            return [op for op in self.ops if op.ended >= t]


class Feed(threading.Thread):
    """A light feed, so the RDB replicas ingest while they are killed and replay."""

    def __init__(self, address: str, rate: int, start: int) -> None:
        super().__init__(daemon=True)
        self.address, self.rate, self.next = address, rate, start
        self.stop_event = threading.Event()

    def run(self) -> None:
        with Publisher(self.address) as pub:
            while not self.stop_event.wait(0.1):
                rows = max(1, self.rate // 10)
                pub.publish("trade", trades(self.next, rows))
                self.next += rows


# -- scenarios -------------------------------------------------------------------------------


def query_probe(client: Client) -> object:
    return client.query(PROBE_SQL)


class QueryReplica:
    """Kill one replica of a query backend (``rdb`` or ``hdb``); restart it on its address."""

    probe = staticmethod(query_probe)

    def __init__(self, role: str) -> None:
        self.role = role
        self.killed: str | None = None  # the incarnation last killed

    def victims(self, stack: Stack) -> list[str]:
        return [f"{self.role}-0", f"{self.role}-1"]

    def prepare(self, stack: Stack, victim: str) -> None:
        """Before the clock starts: what ``restore`` must see change."""
        self.killed = stack.replicas()[stack.addresses[victim]]["incarnation"]

    def kill(self, stack: Stack, victim: str) -> None:
        os.killpg(stack.procs[victim].pid, signal.SIGKILL)

    def restore(self, stack: Stack, victim: str) -> None:
        stack.procs[victim].popen.wait(10)
        stack.start(self.role, int(victim.rsplit("-", 1)[1]), wait=False)
        address = stack.addresses[victim]

        def serving_again() -> bool:
            replica = stack.replicas()[address]
            return bool(replica["current"] and replica["incarnation"] != self.killed)

        wait_for(serving_again, 120, f"{victim} serving again")


# Venue and gateway kills run on a whole stack (``failover_stack``); a tickerplant standby
# (kill the primary; probe: a publisher's batch acknowledged) plugs in there as a target.
STACK_SCENARIOS = ("venue", "gateway")
SCENARIOS = {"rdb": QueryReplica("rdb"), "hdb": QueryReplica("hdb")}


def measure_kill(stack: Stack, load: Load, scenario: QueryReplica, victim: str) -> dict[str, float]:
    settled = load.count() + 2 * load.clients  # the load back in its stride after a restore
    wait_for(lambda: load.count() >= settled, 30, "the load to settle")
    scenario.prepare(stack, victim)
    killed = time.monotonic()
    in_flight = load.in_flight()
    scenario.kill(stack, victim)
    wait_for(
        lambda: any(op.ok and op.started >= killed for op in load.since(killed)), 30, "a success"
    )
    wait_for(lambda: load.done(in_flight), 30, "the queries in flight at the kill")
    ops = load.since(killed)
    first_ok = min(op.ended for op in ops if op.ok and op.started >= killed) - killed
    straddling = max((op.ended for op in ops if op.started in in_flight), default=killed)
    return {
        "first_ok_ms": first_ok * 1000,
        "in_flight_ms": (straddling - killed) * 1000,
        "errors": float(sum(not op.ok for op in ops)),
    }


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q * (len(ordered) - 1))))]


def baseline(load: Load, queries: int) -> dict[str, float]:
    start = time.monotonic()
    goal = load.count() + queries
    wait_for(lambda: load.count() >= goal, 120, f"{queries} baseline queries")
    latencies = [(op.ended - op.started) * 1000 for op in load.since(start) if op.started >= start]
    return {
        "p50_ms": statistics.median(latencies),
        "p99_ms": pct(latencies, 0.99),
        "n": len(latencies),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=20, help="kills per victim kind")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument(
        "--query-rate",
        type=float,
        default=0.0,
        help="venue and gateway scenarios: queries/s each query client starts (0: back to back)",
    )
    parser.add_argument("--rows", type=int, default=20_000, help="rows of the rolled day")
    parser.add_argument("--feed-rate", type=int, default=500, help="rows/s published meanwhile")
    parser.add_argument(
        "--restart-backoff",
        type=float,
        default=0.1,
        help="venue and gateway scenarios: seconds before the supervisor restarts the victim",
    )
    parser.add_argument("--batches", type=int, default=2000, help="tp: batches of 1000 rows")
    parser.add_argument(
        "--tp-day-mb", type=float, default=0.0, help="tp: journal this many MB before the kills"
    )
    choices = [*sorted(SCENARIOS), *STACK_SCENARIOS, "venue-output", "tp"]
    parser.add_argument("--only", choices=choices, action="append")
    args = parser.parse_args()
    if args.only and "tp" in args.only:
        from failover_tp import report_tp, run_replication_cost, run_tp_failover

        with tempfile.TemporaryDirectory() as tmp:
            # TICKDB_BENCH_KEEP=DIR: the nodes' directories and logs are kept there.
            work = Path(os.environ.get("TICKDB_BENCH_KEEP") or tmp)
            failover = run_tp_failover(
                work / "failover", args.kills, args.feed_rate, args.tp_day_mb
            )
            report_tp(failover, run_replication_cost(Path(tmp), args.batches, 1000), pct)
        args.only.remove("tp")
        if not args.only:
            return
    if args.only and "venue-output" in args.only:
        from failover_venue import report_venue, run_venue_scenario

        with tempfile.TemporaryDirectory() as tmp:
            report_venue(run_venue_scenario(Path(tmp), args.kills, args.clients), pct)
        args.only.remove("venue-output")
    stack_kinds = [k for k in STACK_SCENARIOS if k in (args.only or STACK_SCENARIOS)]
    if stack_kinds:
        from failover_stack import report_stack, run_stack_scenarios

        result = run_stack_scenarios(
            stack_kinds,
            args.kills,
            args.clients,
            args.feed_rate,
            restart_backoff_s=args.restart_backoff,
            query_rate=args.query_rate,
        )
        report_stack(result)
    if args.only:
        args.only = [k for k in args.only if k in SCENARIOS]
        if not args.only:
            return
    with tempfile.TemporaryDirectory() as tmp:
        stack = Stack(Path(tmp), args.rows)
        feed = Feed(stack.tp_address, args.feed_rate, stack.published)
        try:
            feed.start()
            for name in args.only or sorted(SCENARIOS):
                scenario = SCENARIOS[name]
                load = Load(stack.url, args.clients, scenario.probe)
                load.start()
                try:
                    base = baseline(load, 500)
                    print(
                        f"{name} baseline: {args.clients} clients, p50 {base['p50_ms']:.1f} ms, "
                        f"p99 {base['p99_ms']:.1f} ms ({base['n']:.0f} operations)"
                    )
                    runs = []
                    for i in range(args.kills):
                        victims = scenario.victims(stack)
                        victim = victims[i % len(victims)]
                        runs.append(measure_kill(stack, load, scenario, victim))
                        scenario.restore(stack, victim)
                finally:
                    load.stop()
                report(name, runs, base)
        finally:
            feed.stop_event.set()
            stack.close()


def report(name: str, runs: list[dict[str, float]], base: dict[str, float]) -> None:
    errors = sum(r["errors"] for r in runs)
    print(f"{name} replica killed {len(runs)} times: {errors:.0f} client errors")
    for key, label in (("first_ok_ms", "first ok"), ("in_flight_ms", "in flight")):
        values = [r[key] for r in runs]
        p50, p99, top = statistics.median(values), pct(values, 0.99), max(values)
        print(
            f"  {label:9s} p50 {p50:7.1f} ms  p99 {p99:7.1f} ms  max {top:7.1f} ms"
            f"  (p50 {p50 / base['p50_ms']:.1f}x baseline p50, p99 {p99 / base['p99_ms']:.1f}x"
            " baseline p99)"
        )


if __name__ == "__main__":
    from stop_on_term import stop_on_term

    stop_on_term()
    main()
