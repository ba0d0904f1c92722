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
2. submit -> accepted (``wait=True``) paced open loop at 1k and 5k orders/s (2 shards,
   ``--shards``):
   client threads in 2 processes each send their share at fixed times; p50/p99 of the
   round trip (reply - send), the same from the scheduled time (queueing included), the
   rate achieved, and the ratio to the raw round trip; the same over the order port
   (one connection, pipelined), with the CPU the gateway, the venues and the tickerplant
   spent per order answered (all threads, ``/proc/<pid>/task/*/schedstat``), and beside
   it the same six hops through bare relays paced at the same rate
   (``orders_bench_chain.py``): the floor a paced round trip has on this machine;
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
import multiprocessing as mp
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import zmq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_layout import parse_layout, pinned  # noqa: E402
from bench_wakeups import echo, timed_round_trips  # noqa: E402
from orders_bench_chain import chain_paced  # noqa: E402
from orders_bench_http import flood_worker, paced_worker, run_workers  # noqa: E402
from orders_bench_lib import (  # noqa: E402
    PAYLOAD,
    EventCounter,
    Stack,
    start_stack,
)
from orders_bench_port import port_flood, port_paced  # noqa: E402

from gateway.client import Client  # noqa: E402

TARGETS = {
    "p50_us": 500.0,
    "p99_us": 2000.0,
    "orders_per_s": 10_000.0,
    "risk_p99_us": 25.0,
    "matching_p99_us": 50.0,
    "kill_ms": 100.0,
}


# -- measurements ------------------------------------------------------------------------------
def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, int(len(ordered) * q))])


def raw_round_trip(n: int) -> dict[str, float]:
    """REQ/REP between this process and another on loopback: p50/p99 µs."""
    ctx = mp.get_context("spawn")
    here, there = ctx.Pipe()
    proc = ctx.Process(target=echo, args=(there,), daemon=True)
    proc.start()
    port = here.recv()
    zctx = zmq.Context()
    req = zctx.socket(zmq.REQ)
    req.connect(f"tcp://127.0.0.1:{port}")
    times = timed_round_trips(req, os.urandom(PAYLOAD), n, 1000)
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
    # Working means accepted, as the gateway sees it: wait until its view is current.
    deadline = time.monotonic() + 120
    while any(o["status"] != "new" for o in client.orders(account, open_only=True)):
        if time.monotonic() > deadline:
            raise RuntimeError("the gateway never saw every order accepted")
        time.sleep(0.2)
    open_before = len(client.orders(account, open_only=True))
    counter = EventCounter(stack.tp_address, "canceled", account)
    cpu0 = stack.cpu_ns()
    wall0 = time.time_ns()
    t0 = time.monotonic_ns()
    reply = client.kill(account=account)
    t1 = time.monotonic_ns()
    ok = counter.wait_for(open_before, 120)
    # The CPU the kill cost each component (all threads, idle work included): steadier than
    # the wall times on a loaded machine, where they wait for a core.
    cpu = {k: (v - cpu0[k]) / 1e6 for k, v in stack.cpu_ns().items()}
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
        **{f"cpu_{k}_ms": v for k, v in cpu.items()},
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
    parser.add_argument("--skip", default="", help="comma list: paced,flood,port,kill,pure")
    parser.add_argument(
        "--shards", type=int, default=2, help="venues of the paced, flood and port phases' stack"
    )
    parser.add_argument(
        "--cpus",
        default="",
        help="a CPU layout, e.g. tickerplant=0,venue=0,gateway=1,client=1: the stack's "
        "[cpus] section, and the CPUs of this process and the clients and relays it starts",
    )
    args = parser.parse_args()
    layout = parse_layout(args.cpus)
    if args.quick:
        args.repeat, args.seconds, args.orders = 1, 2.0, 5_000
    skip = set(filter(None, args.skip.split(",")))
    rates = [float(r) for r in args.rates.split(",") if r]

    raw: list[dict[str, float]] = []
    floor: list[dict[str, float]] = []
    paced_runs: dict[float, list[dict[str, float]]] = {r: [] for r in rates}
    floods: dict[bool, list[dict[str, float]]] = {False: [], True: []}
    kills: list[dict[str, float]] = []
    port_runs: dict[float, list[dict[str, float]]] = {r: [] for r in rates}
    port_floods: list[dict[str, Any]] = []
    chains: dict[float, list[dict[str, float]]] = {r: [] for r in rates}
    for rep in range(args.repeat):
        # The benchmark and what it starts besides the stack on the client's CPUs.
        with pinned(layout.get("client")):
            raw.append(raw_round_trip(20_000))
            print(f"[{rep}] raw REQ/REP: {raw[-1]}", flush=True)
            if "port" not in skip:
                for rate in rates:
                    chains[rate].append(chain_paced(rate, args.seconds, layout))
                    print(f"[{rep}] bare chain paced {rate:.0f}/s: {chains[rate][-1]}", flush=True)
            with tempfile.TemporaryDirectory(prefix="bench_orders_") as tmp:
                stack = start_stack(Path(tmp), args.shards, layout)
                try:
                    floor.append(http_floor(stack.url, 5_000))
                    print(f"[{rep}] GET /health: {floor[-1]}", flush=True)
                    if "paced" not in skip:
                        for rate in rates:
                            threads = max(2, int(rate // 250))
                            result = paced(
                                stack.url, rate, args.seconds, 2, threads, f"r{rate:.0f}."
                            )
                            paced_runs[rate].append(result)
                            print(f"[{rep}] paced {rate:.0f}/s: {result}", flush=True)
                    if "port" not in skip:
                        for rate in rates:
                            result = port_paced(stack, rate, args.seconds, f"p{rate:.0f}.")
                            port_runs[rate].append(result)
                            print(f"[{rep}] port paced {rate:.0f}/s: {result}", flush=True)
                        port_floods.append(port_flood(stack, args.orders * 2, "pf."))
                        print(f"[{rep}] port flood: {port_floods[-1]}", flush=True)
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
                    stack = start_stack(Path(tmp), 3, layout)
                    try:
                        kills.append(kill_switch(stack, args.working, "K1", "k."))
                        print(f"[{rep}] kill: {kills[-1]}", flush=True)
                    finally:
                        stack.stop()
    pure = {} if "pure" in skip else pure_benchmarks(args.quick)

    shards = f"{args.shards} shard{'s' if args.shards != 1 else ''}"
    raw_p50, raw_p99 = median_of(raw, "p50_us"), median_of(raw, "p99_us")
    print()
    print(
        f"medians of {args.repeat} run(s); os.cpu_count()={os.cpu_count()}, load "
        f"{os.getloadavg()}; CPU layout: {args.cpus or 'none (where the OS schedules)'}"
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
            f"sustained, {shards}, wait={wait}: {rate:,.0f} orders/s accepted end to end "
            f"(HTTP replies {http:,.0f}/s; reply p50 {median_of(runs, 'p50_us'):.0f} µs, "
            f"p99 {median_of(runs, 'p99_us'):.0f} µs); target >= 10,000/s: "
            f"{verdict(rate, TARGETS['orders_per_s'], higher_is_better=True)}; "
            f"complete {all(r['complete'] for r in runs)}"
        )
    for rate, runs in port_runs.items():
        if not runs:
            continue
        p50, p99 = median_of(runs, "p50_us"), median_of(runs, "p99_us")
        achieved = median_of(runs, "achieved")
        label = f"order port @ {rate:.0f}/s (achieved {achieved:.0f}/s)"
        print(f"{label:<52} {p50:>9.0f} {p99:>9.0f} {p50 / raw_p50:>9.1f} {p99 / raw_p99:>9.1f}")
        c50, c99 = median_of(chains[rate], "p50_us"), median_of(chains[rate], "p99_us")
        label = f"  bare relays on the same six hops @ {rate:.0f}/s"
        ratios = f"order port ÷ it: {p50 / c50:.2f}, {p99 / c99:.2f}"
        print(f"{label:<52} {c50:>9.0f} {c99:>9.0f}    {ratios}")
        print(
            "    CPU per order, µs: "
            + ", ".join(
                f"{name} {median_of(runs, f'cpu_{name}_us'):.0f}"
                for name in ("gateway", "venues", "tp", "client")
            )
            + "; bare relays': "
            + ", ".join(
                f"{name} {median_of(chains[rate], f'cpu_{name}_us'):.0f}"
                for name in ("gateway", "venue", "tp", "client")
            )
        )
        print(
            f"    target p50 <= {TARGETS['p50_us']:.0f} µs: {verdict(p50, TARGETS['p50_us'])}; "
            f"p99 <= {TARGETS['p99_us']:.0f} µs: {verdict(p99, TARGETS['p99_us'])}; "
            f"errors {sum(r['errors'] for r in runs):.0f}"
        )
    if port_floods:
        rate = median_of(port_floods, "orders_per_s")
        print(
            f"sustained, {shards}, order port pipelined: {rate:,.0f} orders/s "
            f"accepted end to end; target >= 10,000/s: "
            f"{verdict(rate, TARGETS['orders_per_s'], higher_is_better=True)}; "
            f"complete {all(r['complete'] for r in port_floods)}"
        )
    if kills:
        # The goal is request to last cancel: the last canceled row's tickerplant stamp (the
        # venue has canceled it, and it is recorded). The HTTP answer comes later: it lists
        # every order canceled, once the gateway has applied all of them.
        last = median_of(kills, "last_stamp_ms")
        print(
            f"kill switch, 3 shards, {median_of(kills, 'working'):.0f} working orders: "
            f"response {median_of(kills, 'response_ms'):.1f} ms, last canceled event at the "
            f"subscriber {median_of(kills, 'last_event_ms'):.1f} ms, its tickerplant stamp "
            f"{last:.1f} ms after the request; "
            f"target <= {TARGETS['kill_ms']:.0f} ms: {verdict(last, TARGETS['kill_ms'])}"
        )
        print(
            "    CPU of the kill, ms: "
            + ", ".join(
                f"{k} {median_of(kills, f'cpu_{k}_ms'):.0f}" for k in ("gateway", "venues", "tp")
            )
            + f"; load {os.getloadavg()[0]:.1f}"
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
    from stop_on_term import stop_on_term

    stop_on_term()
    main()
