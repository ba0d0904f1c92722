"""What a sleeping thread costs a round trip on this machine: a raw pyzmq REQ/REP round trip
between two processes, back to back (the baseline) and with gaps between round trips, each
process left to the scheduler, both pinned to one core, or pinned to different cores.

Every hop of a paced flow (the order path at 1,000 orders/s, a tick at 10k msgs/s) wakes a
thread that was asleep; on a virtual machine waking a thread on an idle core costs far more
than on the core already running (``docs/benchmarks.md``, Orders).

    .venv/bin/python scripts/bench_wakeups.py [--round-trips 2000] [--gaps-ms 0,0.2,1,3]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import time
from typing import Any

import zmq

PAYLOAD = 4096  # bytes, about one order record on the order path


def echo(conn: Any, cpu: int | None = None) -> None:
    """A REP socket on a free loopback port (sent over ``conn``) echoing until ``stop``."""
    if cpu is not None:  # before the context: its I/O thread inherits the affinity
        os.sched_setaffinity(0, {cpu})
    ctx = zmq.Context()
    rep = ctx.socket(zmq.REP)
    conn.send(rep.bind_to_random_port("tcp://127.0.0.1"))
    while (message := rep.recv()) != b"stop":
        rep.send(message)
    rep.send(b"")


def timed_round_trips(
    req: zmq.Socket, payload: bytes, n: int, warm_up: int, gap_s: float = 0.0
) -> list[int]:
    """ns of each of ``n`` round trips of ``payload`` to an ``echo``, ``gap_s`` apart,
    after ``warm_up`` untimed ones; then the echo is told to stop."""
    for _ in range(warm_up):
        req.send(payload)
        req.recv()
    times = []
    for _ in range(n):
        started = time.perf_counter_ns()
        req.send(payload)
        req.recv()
        times.append(time.perf_counter_ns() - started)
        if gap_s:
            time.sleep(gap_s)
    req.send(b"stop")
    req.recv()
    return times


def round_trips(n: int, gap_s: float, server_cpu: int | None, client_cpu: int | None) -> float:
    """p50 µs of ``n`` round trips, ``gap_s`` apart, in a fresh client process."""
    ctx = mp.get_context("spawn")
    here, there = ctx.Pipe()
    server = ctx.Process(target=echo, args=(there, server_cpu), daemon=True)
    server.start()
    port = here.recv()
    result = ctx.Queue()
    client = ctx.Process(target=_client, args=(port, n, gap_s, client_cpu, result))
    client.start()
    p50 = float(result.get())
    client.join(10)
    server.join(10)
    return p50


def _client(port: int, n: int, gap_s: float, cpu: int | None, result: Any) -> None:
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    ctx = zmq.Context()
    req = ctx.socket(zmq.REQ)
    req.connect(f"tcp://127.0.0.1:{port}")
    times = timed_round_trips(req, os.urandom(PAYLOAD), n, 200, gap_s)
    req.close(0)
    ctx.term()
    result.put(sorted(times)[n // 2] / 1e3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--round-trips", type=int, default=2000)
    parser.add_argument("--gaps-ms", default="0,0.2,1,3", help="gaps between round trips")
    args = parser.parse_args()
    cores = sorted(os.sched_getaffinity(0))
    placements: list[tuple[str, int | None, int | None]] = [("scheduler", None, None)]
    placements.append(("one core", cores[0], cores[0]))
    if len(cores) > 1:
        placements.append(("two cores", cores[0], cores[1]))
    baseline = round_trips(args.round_trips, 0.0, None, None)
    print(f"raw REQ/REP, {PAYLOAD} B, back to back, left to the scheduler: p50 {baseline:.0f} µs")
    print(f"{'gap ms':>7} " + " ".join(f"{name:>18}" for name, _, _ in placements))
    for gap in (float(g) for g in args.gaps_ms.split(",") if g):
        cells = []
        for _, server_cpu, client_cpu in placements:
            p50 = round_trips(args.round_trips, gap / 1000, server_cpu, client_cpu)
            cells.append(f"{p50:>9.0f} µs {p50 / baseline:>4.1f}x")
        print(f"{gap:>7g} " + " ".join(cells))


if __name__ == "__main__":
    from stop_on_term import stop_on_term

    stop_on_term()
    main()
