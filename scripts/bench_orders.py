"""Order path benchmark: submits, sustained order rate and the kill switch, end to end.

Real processes on loopback: a ``tickdb tp`` (journal on, ``fsync = "interval"``), one
``tickdb venue`` per shard and a ``tickdb gateway`` with ``--tp`` (no RDB or HDB). Clients
are separate processes calling ``gateway.client.Client.submit`` over HTTP, as a user does.
Risk is on with every check, except the four that a benchmark's flood trips by design:
``max_messages_per_s``, ``duplicate_window_s``, ``max_open_orders`` and
``max_open_orders_per_sym`` are 0 (off). A trade in every sym gives the price collar
(``price_collar_pct = 50``), notional and exposure checks a reference price. Orders are
non-crossing day limit orders (buys near 10, sells near 20) over 100 syms and 10 accounts,
every one with its own ClOrdID, so each rests and is answered ``accepted``.

Measured in one run, a fresh stack for each repeat; medians over repeats are printed:

1. baseline: a raw pyzmq REQ/REP round trip between two processes, 200-byte payload;
   and ``GET /health`` on the same gateway (its HTTP floor, no order path);
2. submit -> accepted (``wait=True``) paced open loop at 1k and 5k orders/s (2 shards):
   client threads in 2 processes each send their share at fixed times; p50/p99 of the
   round trip (reply - send), the same from the scheduled time (queueing included), the
   rate achieved, and the ratio to the raw round trip;
3. sustained orders/s, 2 shards: client threads send ``wait=False`` as fast as they can;
   the time runs until a subscriber to the ``order`` table has seen every ``accepted``
   event; then the same with ``wait=True``;
4. kill switch, 3 shards, 10k working orders of one account: ``POST /risk/kill`` until
   its response (it returns once all are canceled), and until the subscriber has the
   10,000th ``canceled`` event (also by the tickerplant's stamp of that row);
5. ``scripts/bench_risk.py`` and ``scripts/bench_matching.py`` as subprocesses, for the
   risk and matching targets.

    .venv/bin/python scripts/bench_orders.py                 # 3 repeats, ~7 minutes here
    .venv/bin/python scripts/bench_orders.py --quick         # 1 repeat, shorter phases
    .venv/bin/python scripts/bench_orders.py --repeat 5 --seconds 5 --orders 20000
    .venv/bin/python scripts/bench_orders.py --skip paced,flood,pure   # the kill switch alone
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing as mp
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import zmq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.client import Client  # noqa: E402
from gateway.order_client import OrderRejected  # noqa: E402
from tickdb.config import GatewayConfig  # noqa: E402
from tickdb.ready import wait_ready  # noqa: E402
from tickerplant.publisher import Publisher  # noqa: E402
from tickerplant.subscriber import Subscriber, Update  # noqa: E402

ACCOUNTS = [f"A{i}" for i in range(10)]
SYMS = [f"S{i:03d}" for i in range(100)]
REFERENCE = 15.0
PAYLOAD = 200  # bytes of the raw baseline's message, about one order's JSON
CONFIG = """
[tickerplant]
address = "tcp://127.0.0.1:0"
publish_address = "tcp://127.0.0.1:0"
replay_address = "tcp://127.0.0.1:0"
kdb_port = 0

[journal]
fsync = "interval"

[risk.defaults]
max_messages_per_s = 0
duplicate_window_s = 0
max_open_orders = 0
max_open_orders_per_sym = 0
price_collar_pct = 50
"""
TARGETS = {
    "p50_us": 500.0,
    "p99_us": 2000.0,
    "orders_per_s": 10_000.0,
    "risk_p99_us": 25.0,
    "matching_p99_us": 50.0,
    "kill_ms": 100.0,
}


# -- processes -------------------------------------------------------------------------------
@dataclass
class Component:
    name: str
    popen: subprocess.Popen[bytes]
    info: dict[str, Any]

    def stop(self) -> None:
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, signal.SIGTERM)
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(10)
            except ProcessLookupError:
                pass


def start(args: Sequence[str], workdir: Path, name: str) -> Component:
    """``python -m tickdb.cli ARGS --ready-file F``; returns once it wrote its endpoints."""
    ready = workdir / f"{name}.ready.json"
    log = open(workdir / f"{name}.log", "ab")  # noqa: SIM115 - the child holds it
    popen = subprocess.Popen(
        [sys.executable, "-m", "tickdb.cli", *args, "--ready-file", str(ready)],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        process_group=0,
    )
    log.close()
    try:
        info = wait_ready(ready, 60, alive=lambda: popen.poll() is None)
    except Exception:
        Component(name, popen, {}).stop()
        output = (workdir / f"{name}.log").read_text(errors="replace")
        raise RuntimeError(f"{name} failed to start:\n{output}") from None
    return Component(name, popen, info)


@dataclass
class Stack:
    workdir: Path
    tp: Component
    venues: list[Component] = field(default_factory=list)
    gateway: Component | None = None

    @property
    def tp_address(self) -> str:
        return str(self.tp.info["address"])

    @property
    def url(self) -> str:
        assert self.gateway is not None
        return str(self.gateway.info["url"])

    def stop(self) -> None:
        for proc in [self.gateway, *self.venues, self.tp]:
            if proc is not None:
                proc.stop()


def start_stack(workdir: Path, shards: int) -> Stack:
    config = workdir / "stack.toml"
    text = CONFIG
    if "order_port" in {f.name for f in dataclasses.fields(GatewayConfig)}:
        # the gateway's ZeroMQ order-entry port: not measured here, on a free port
        text += '\n[gateway]\norder_port = "tcp://127.0.0.1:0"\n'
    config.write_text(text)
    cfg = ["--config", str(config)]
    tp = start(["tp", *cfg, "--data-dir", str(workdir / "data")], workdir, "tp")
    stack = Stack(workdir, tp)
    try:
        for k in range(shards):
            venue = ["venue", *cfg, "--tp", stack.tp_address, "--shard", f"{k}/{shards}"]
            stack.venues.append(start(venue, workdir, f"venue-{k}"))
        gateway = ["gateway", *cfg, "--tp", stack.tp_address, "--port", "0", "--kdb-port", "0"]
        stack.gateway = start(gateway, workdir, "gateway")
        set_reference_prices(stack)
    except Exception:
        stack.stop()
        raise
    return stack


def set_reference_prices(stack: Stack) -> None:
    """A trade in every sym, then wait until the gateway's collar uses it."""
    publisher = Publisher(stack.tp_address)
    publisher.publish(
        "trade", {"sym": SYMS, "price": [REFERENCE] * len(SYMS), "size": [1] * len(SYMS)}
    )
    publisher.close()
    client = Client(stack.url, timeout_s=30)
    deadline = time.monotonic() + 30
    for n in range(10**6):
        try:  # 1.00 is 93% from the reference: refused once the gateway knows it
            client.submit("A0", SYMS[-1], "buy", 1, 1.0, clordid=f"probe{n}")
        except OrderRejected as exc:
            if exc.code == "price_collar":
                break
        if time.monotonic() > deadline:
            raise RuntimeError("the gateway never received the reference prices")
        time.sleep(0.05)
    client.close()


# -- the orders ------------------------------------------------------------------------------
def order_for(seq: int) -> tuple[str, str, str, int, float]:
    """Account, sym, side, qty, price of the ``seq``-th order: never crosses."""
    account = ACCOUNTS[seq % len(ACCOUNTS)]
    sym = SYMS[(seq * 7 + seq // len(ACCOUNTS)) % len(SYMS)]
    side = "buy" if seq % 2 else "sell"
    base = 10.0 if side == "buy" else 20.0
    return account, sym, side, 1 + seq % 10, round(base + (seq % 50) / 100, 2)


# -- client processes --------------------------------------------------------------------------
def paced_worker(
    url: str, rate: float, threads: int, first: int, stride: int, tag: str, go: Any, out: Any
) -> None:
    """``threads`` threads; thread ``t`` sends the orders ``first + t + k * stride`` at their
    scheduled times ``start + (first + t + k * stride) / rate`` until ``end``; puts
    (sched, sent, done) monotonic ns per order, and the error count."""
    clients = [Client(url, timeout_s=30) for _ in range(threads)]
    for t, client in enumerate(clients):  # connect and warm up, untimed
        for w in range(20):
            client.submit(*order_for(w + t), clordid=f"{tag}w{first + t}.{w}")
    out.put("ready")
    start_ns, end_ns = go.get()
    results: list[list[tuple[int, int, int]]] = [[] for _ in range(threads)]
    errors = [0] * threads
    gap_ns = 1e9 / rate

    def run(t: int) -> None:
        client, rows = clients[t], results[t]
        k = 0
        while True:
            seq = first + t + k * stride
            sched = start_ns + int(seq * gap_ns)
            if sched >= end_ns or time.monotonic_ns() >= end_ns:
                return  # behind schedule at the end: what was not sent counts as not offered
            wait = sched - time.monotonic_ns()
            if wait > 0:
                time.sleep(wait / 1e9)
            sent = time.monotonic_ns()
            try:
                client.submit(*order_for(seq), clordid=f"{tag}{seq}")
            except Exception:
                errors[t] += 1
            rows.append((sched, sent, time.monotonic_ns()))
            k += 1

    pool = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    out.put(([row for rows in results for row in rows], sum(errors)))


def flood_worker(
    url: str, seqs: list[int], threads: int, wait: bool, account: str, tag: str, go: Any, out: Any
) -> None:
    """Send the orders ``seqs`` from ``threads`` threads, each as fast as its replies come;
    puts (latencies ns, first send, last reply monotonic ns, errors)."""
    clients = [Client(url, timeout_s=60) for _ in range(threads)]
    for t, client in enumerate(clients):  # connect and warm up, untimed
        acct, sym, side, qty, price = order_for(t)
        client.submit(account or acct, sym, side, qty, price, clordid=f"{tag}w{seqs[0]}.{t}")
    out.put("ready")
    go.get()
    latencies: list[list[int]] = [[] for _ in range(threads)]
    errors = [0] * threads
    first = time.monotonic_ns()

    def run(t: int) -> None:
        client, rows = clients[t], latencies[t]
        for seq in seqs[t::threads]:
            acct, sym, side, qty, price = order_for(seq)
            sent = time.monotonic_ns()
            try:
                client.submit(
                    account or acct, sym, side, qty, price, clordid=f"{tag}{seq}", wait=wait
                )
            except Exception:
                errors[t] += 1
            rows.append(time.monotonic_ns() - sent)

    pool = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    out.put(([x for rows in latencies for x in rows], first, time.monotonic_ns(), sum(errors)))


def run_workers(
    target: Callable[..., None], arglists: list[tuple[Any, ...]], go_value: Any
) -> list[Any]:
    """Start one spawned process per arglist, wait until all are warmed up, release them
    together with ``go_value`` (called if callable), and return what each put."""
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    go = ctx.Queue()
    procs = [ctx.Process(target=target, args=(*a, go, out), daemon=True) for a in arglists]
    for proc in procs:
        proc.start()
    for _ in procs:
        assert out.get(timeout=120) == "ready"
    value = go_value() if callable(go_value) else go_value
    for _ in procs:
        go.put(value)
    results = [out.get(timeout=600) for _ in procs]
    for proc in procs:
        proc.join(10)
    return results


# -- the order table, counted ------------------------------------------------------------------
class EventCounter:
    """Counts ``order`` rows of one event kind (optionally one account), in a thread."""

    def __init__(self, tp_address: str, event: str, account: str | None = None) -> None:
        self.event = event
        self.account = account
        self.count = 0
        self.last_mono_ns = 0
        self.last_stamp_ns = 0  # the tickerplant's ``time`` of the latest matching row
        self._target = 0
        self._done = threading.Event()
        self._stop = threading.Event()
        accounts = [account] if account else None
        self._sub = Subscriber(tp_address, tables=["order"], accounts=accounts)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            message = self._sub.poll(0.05)
            if not isinstance(message, Update):
                continue
            data: pa.Table = message.data
            mask = pc.equal(data["event"], self.event)
            if self.account:
                mask = pc.and_(mask, pc.equal(data["account"], self.account))
            hits = data.filter(mask)
            if hits.num_rows == 0:
                continue
            self.count += hits.num_rows
            self.last_mono_ns = time.monotonic_ns()
            stamp = pc.max(hits["time"].cast(pa.int64())).as_py()
            self.last_stamp_ns = max(self.last_stamp_ns, stamp)
            if self._target and self.count >= self._target:
                self._done.set()

    def wait_for(self, n: int, timeout_s: float) -> bool:
        self._target = n
        if self.count >= n:
            return True
        return self._done.wait(timeout_s) or self.count >= n

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sub.close()


# -- measurements ------------------------------------------------------------------------------
def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, int(len(ordered) * q))])


def echo_server(conn: Any) -> None:
    ctx = zmq.Context()
    rep = ctx.socket(zmq.REP)
    port = rep.bind_to_random_port("tcp://127.0.0.1")
    conn.send(port)
    while True:
        message = rep.recv()
        if message == b"stop":
            rep.send(b"")
            return
        rep.send(message)


def raw_round_trip(n: int) -> dict[str, float]:
    """REQ/REP between this process and another on loopback: p50/p99 µs."""
    ctx = mp.get_context("spawn")
    here, there = ctx.Pipe()
    proc = ctx.Process(target=echo_server, args=(there,), daemon=True)
    proc.start()
    port = here.recv()
    zctx = zmq.Context()
    req = zctx.socket(zmq.REQ)
    req.connect(f"tcp://127.0.0.1:{port}")
    payload = os.urandom(PAYLOAD)
    for _ in range(1000):
        req.send(payload)
        req.recv()
    times = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        req.send(payload)
        req.recv()
        times.append(time.perf_counter_ns() - t0)
    req.send(b"stop")
    req.recv()
    req.close(0)
    zctx.term()
    proc.join(5)
    return {"p50_us": pct(times, 0.5) / 1e3, "p99_us": pct(times, 0.99) / 1e3}


def http_floor(url: str, n: int) -> dict[str, float]:
    """``GET /health`` on the gateway (no backends): its HTTP stack alone."""
    client = Client(url, timeout_s=30)
    for _ in range(200):
        client.get("/health")
    times = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        client.get("/health")
        times.append(time.perf_counter_ns() - t0)
    client.close()
    return {"p50_us": pct(times, 0.5) / 1e3, "p99_us": pct(times, 0.99) / 1e3}


def paced(
    url: str, rate: float, seconds: float, procs: int, threads: int, tag: str
) -> dict[str, float]:
    stride = procs * threads
    args = [(url, rate, threads, p * threads, stride, tag) for p in range(procs)]

    def window() -> tuple[int, int]:
        begin = time.monotonic_ns() + 200_000_000
        return begin, begin + int(seconds * 1e9)

    results = run_workers(paced_worker, args, window)
    rows = [row for part, _ in results for row in part]
    errors = sum(e for _, e in results)
    first_sched = min(r[0] for r in rows)
    last_done = max(r[2] for r in rows)
    return {
        "offered": rate,
        "achieved": len(rows) / ((last_done - first_sched) / 1e9),
        "p50_us": pct([d - s for _, s, d in rows], 0.5) / 1e3,
        "p99_us": pct([d - s for _, s, d in rows], 0.99) / 1e3,
        "sched_p50_us": pct([d - s for s, _, d in rows], 0.5) / 1e3,
        "sched_p99_us": pct([d - s for s, _, d in rows], 0.99) / 1e3,
        "late_p99_us": pct([s - c for c, s, _ in rows], 0.99) / 1e3,
        "orders": len(rows),
        "errors": errors,
    }


def flood(
    stack: Stack, count: int, procs: int, threads: int, wait: bool, tag: str, account: str = ""
) -> dict[str, float]:
    """``count`` orders as fast as the clients go; until every ``accepted`` event is seen."""
    counter = EventCounter(stack.tp_address, "accepted", account or None)
    seqs = list(range(count))
    args = [(stack.url, seqs[p::procs], threads, wait, account, tag) for p in range(procs)]
    start_ns = 0

    def go() -> int:
        nonlocal start_ns
        start_ns = time.monotonic_ns()
        return start_ns

    results = run_workers(flood_worker, args, go)
    # the warm-up orders (one a thread) were accepted before the start, so count past them
    ok = counter.wait_for(count + procs * threads, 120)
    counter.close()
    latencies = [x for lat, *_ in results for x in lat]
    sent_end = max(r[2] for r in results)
    errors = sum(r[3] for r in results)
    elapsed = (counter.last_mono_ns - start_ns) / 1e9
    return {
        "orders": count,
        "accepted": counter.count - procs * threads,
        "complete": float(ok),
        "orders_per_s": count / elapsed,
        "http_per_s": count / ((sent_end - start_ns) / 1e9),
        "p50_us": pct(latencies, 0.5) / 1e3,
        "p99_us": pct(latencies, 0.99) / 1e3,
        "errors": errors,
    }


def kill_switch(stack: Stack, working: int, account: str, tag: str) -> dict[str, float]:
    """``working`` resting orders of ``account``, then ``POST /risk/kill`` for it."""
    procs, threads = 2, 4
    # each client thread's warm-up order rests too: together exactly ``working``
    load = flood(stack, working - procs * threads, procs, threads, False, tag, account)
    if not load["complete"]:
        raise RuntimeError(f"only {load['accepted']} of {working} orders were accepted")
    client = Client(stack.url, timeout_s=120)
    open_before = len(client.orders(account, open_only=True))
    counter = EventCounter(stack.tp_address, "canceled", account)
    wall0 = time.time_ns()
    t0 = time.monotonic_ns()
    reply = client.kill(account=account)
    t1 = time.monotonic_ns()
    ok = counter.wait_for(open_before, 120)
    counter.close()
    open_after = len(client.orders(account, open_only=True))
    client.close()
    return {
        "working": open_before,
        "canceled_reply": float(reply.get("canceled", -1)),
        "canceled_events": counter.count,
        "complete": float(ok),
        "open_after": open_after,
        "response_ms": (t1 - t0) / 1e6,
        "last_event_ms": (counter.last_mono_ns - t0) / 1e6,
        "last_stamp_ms": (counter.last_stamp_ns - wall0) / 1e6,
    }


def pure_benchmarks(quick: bool) -> dict[str, float]:
    """Run bench_risk.py and bench_matching.py; their p50/p99 µs."""
    scripts = ROOT / "scripts"
    n = "20000" if quick else "100000"
    risk = subprocess.run(
        [sys.executable, str(scripts / "bench_risk.py"), "--n", n],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    calls = "5000" if quick else "20000"
    matching = subprocess.run(
        [sys.executable, str(scripts / "bench_matching.py"), "--calls", calls],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    figures: dict[str, float] = {}
    found = re.search(r"p50 ([\d.]+) us\s+p99 ([\d.]+) us", risk)
    if found:
        figures["risk_p50_us"], figures["risk_p99_us"] = map(float, found.groups())
    for line in matching.splitlines():
        row = re.match(r"(match 1|sweep 3|add|cancel|replace)\s+([\d.]+)\s+([\d.]+)", line)
        if row:
            name = row.group(1).replace(" ", "_")
            figures[f"{name}_p50_us"] = float(row.group(2))
            figures[f"{name}_p99_us"] = float(row.group(3))
    return figures


# -- report ------------------------------------------------------------------------------------
def median_of(runs: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def verdict(value: float, target: float, higher_is_better: bool = False) -> str:
    met = value >= target if higher_is_better else value <= target
    return "met" if met else "MISSED"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="fresh stacks, medians printed")
    parser.add_argument("--seconds", type=float, default=4.0, help="length of a paced phase")
    parser.add_argument("--orders", type=int, default=10_000, help="orders of a flood")
    parser.add_argument("--working", type=int, default=10_000, help="orders the kill cancels")
    parser.add_argument("--rates", default="100,1000,5000", help="paced rates, orders/s")
    parser.add_argument("--quick", action="store_true", help="1 repeat, short phases")
    parser.add_argument("--skip", default="", help="comma list: paced,flood,kill,pure")
    args = parser.parse_args()
    if args.quick:
        args.repeat, args.seconds, args.orders = 1, 2.0, 5_000
    skip = set(filter(None, args.skip.split(",")))
    rates = [float(r) for r in args.rates.split(",") if r]

    raw: list[dict[str, float]] = []
    floor: list[dict[str, float]] = []
    paced_runs: dict[float, list[dict[str, float]]] = {r: [] for r in rates}
    floods: dict[bool, list[dict[str, float]]] = {False: [], True: []}
    kills: list[dict[str, float]] = []
    for rep in range(args.repeat):
        raw.append(raw_round_trip(20_000))
        print(f"[{rep}] raw REQ/REP: {raw[-1]}", flush=True)
        with tempfile.TemporaryDirectory(prefix="bench_orders_") as tmp:
            stack = start_stack(Path(tmp), 2)
            try:
                floor.append(http_floor(stack.url, 5_000))
                print(f"[{rep}] GET /health: {floor[-1]}", flush=True)
                if "paced" not in skip:
                    for rate in rates:
                        threads = max(2, int(rate // 250))
                        result = paced(stack.url, rate, args.seconds, 2, threads, f"r{rate:.0f}.")
                        paced_runs[rate].append(result)
                        print(f"[{rep}] paced {rate:.0f}/s: {result}", flush=True)
                if "flood" not in skip:
                    for wait in (False, True):
                        tag = f"f{int(wait)}."
                        result = flood(stack, args.orders, 2, 8, wait, tag)
                        floods[wait].append(result)
                        print(f"[{rep}] flood wait={wait}: {result}", flush=True)
            finally:
                stack.stop()
        if "kill" not in skip:
            with tempfile.TemporaryDirectory(prefix="bench_orders_") as tmp:
                stack = start_stack(Path(tmp), 3)
                try:
                    kills.append(kill_switch(stack, args.working, "K1", "k."))
                    print(f"[{rep}] kill: {kills[-1]}", flush=True)
                finally:
                    stack.stop()
    pure = {} if "pure" in skip else pure_benchmarks(args.quick)

    raw_p50, raw_p99 = median_of(raw, "p50_us"), median_of(raw, "p99_us")
    print()
    print(
        f"medians of {args.repeat} run(s); os.cpu_count()={os.cpu_count()}, load {os.getloadavg()}"
    )
    print(f"{'measure':<52} {'p50 µs':>9} {'p99 µs':>9} {'x raw p50':>9} {'x raw p99':>9}")
    print(f"{'raw pyzmq REQ/REP, 200 B, two processes':<52} {raw_p50:>9.0f} {raw_p99:>9.0f}")
    f50, f99 = median_of(floor, "p50_us"), median_of(floor, "p99_us")
    print(
        f"{'GET /health on the gateway (HTTP floor)':<52} {f50:>9.0f} {f99:>9.0f} "
        f"{f50 / raw_p50:>9.1f} {f99 / raw_p99:>9.1f}"
    )
    for rate, runs in paced_runs.items():
        if not runs:
            continue
        p50, p99 = median_of(runs, "p50_us"), median_of(runs, "p99_us")
        s50, s99 = median_of(runs, "sched_p50_us"), median_of(runs, "sched_p99_us")
        achieved = median_of(runs, "achieved")
        label = f"submit->accepted @ {rate:.0f}/s (achieved {achieved:.0f}/s)"
        print(f"{label:<52} {p50:>9.0f} {p99:>9.0f} {p50 / raw_p50:>9.1f} {p99 / raw_p99:>9.1f}")
        label = "  … from the scheduled send (queueing included)"
        print(f"{label:<52} {s50:>9.0f} {s99:>9.0f}")
        print(
            f"    target p50 <= {TARGETS['p50_us']:.0f} µs: {verdict(p50, TARGETS['p50_us'])}; "
            f"p99 <= {TARGETS['p99_us']:.0f} µs: {verdict(p99, TARGETS['p99_us'])}; "
            f"errors {sum(r['errors'] for r in runs):.0f}"
        )
    for wait, runs in floods.items():
        if not runs:
            continue
        rate = median_of(runs, "orders_per_s")
        http = median_of(runs, "http_per_s")
        print(
            f"sustained, 2 shards, wait={wait}: {rate:,.0f} orders/s accepted end to end "
            f"(HTTP replies {http:,.0f}/s; reply p50 {median_of(runs, 'p50_us'):.0f} µs, "
            f"p99 {median_of(runs, 'p99_us'):.0f} µs); target >= 10,000/s: "
            f"{verdict(rate, TARGETS['orders_per_s'], higher_is_better=True)}; "
            f"complete {all(r['complete'] for r in runs)}"
        )
    if kills:
        response = median_of(kills, "response_ms")
        print(
            f"kill switch, 3 shards, {median_of(kills, 'working'):.0f} working orders: "
            f"response {response:.1f} ms, last canceled event at the subscriber "
            f"{median_of(kills, 'last_event_ms'):.1f} ms, its tickerplant stamp "
            f"{median_of(kills, 'last_stamp_ms'):.1f} ms after the request; "
            f"target <= {TARGETS['kill_ms']:.0f} ms: {verdict(response, TARGETS['kill_ms'])}"
        )
        print(
            "    canceled (reply, events, still open after): "
            + "; ".join(
                f"{k['canceled_reply']:.0f}, {k['canceled_events']:.0f}, {k['open_after']:.0f}"
                for k in kills
            )
        )
    if pure:
        print(
            f"risk check_new (bench_risk.py): p50 {pure.get('risk_p50_us', 0):.1f} µs, "
            f"p99 {pure.get('risk_p99_us', 0):.1f} µs; target p99 <= 25 µs: "
            f"{verdict(pure.get('risk_p99_us', 1e9), TARGETS['risk_p99_us'])}"
        )
        print(
            f"matching, 10k book (bench_matching.py): match 1 p50 "
            f"{pure.get('match_1_p50_us', 0):.1f} µs, p99 {pure.get('match_1_p99_us', 0):.1f} µs;"
            f" sweep 3 levels p99 {pure.get('sweep_3_p99_us', 0):.1f} µs; target p99 <= 50 µs: "
            f"{verdict(pure.get('match_1_p99_us', 1e9), TARGETS['matching_p99_us'])}"
        )


if __name__ == "__main__":
    main()
