"""The order path's hops with no work in them, paced as the order port's phases are: the
floor under ``bench_orders.py``'s submit -> accepted at a given rate on this machine.

An order crosses six hops between four processes: client -> gateway -> tickerplant ->
venue -> tickerplant -> gateway -> client. Here bare Python relays stand where the gateway
and the tickerplant do (ROUTER in, DEALER on, each message forwarded as it comes, replies
forwarded back) and an echo stands where the venue does. Paced, not back to back: between
orders every thread sleeps, and on a virtual machine a sleeping core wakes slowly, which a
back-to-back round trip never shows (``bench_wakeups.py`` measures it: here a 4 KiB
REQ/REP round trip took ~50 µs back to back and ~160-270 µs with 1 ms between round trips).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from typing import Any

import zmq
from proc_cpu import cpu_ns
from waits import readable_within

PAYLOAD = 200  # bytes a request carries, about one order's JSON


def _relay(conn: Any, onward: str | None, cpus: frozenset[int] | None) -> None:
    """ROUTER bound here; each message forwarded to ``onward`` (a DEALER) and each reply
    back to whoever sent it. Without ``onward``: echo (the venue's place). On ``cpus``
    when given, as ``[cpus]`` would pin the component in its place."""
    if cpus:
        os.sched_setaffinity(0, cpus)  # before ZeroMQ's I/O thread, which inherits it
    ctx = zmq.Context()
    front = ctx.socket(zmq.ROUTER)
    conn.send(front.bind_to_random_port("tcp://127.0.0.1"))
    if onward is None:
        while (frames := front.recv_multipart())[-1] != b"stop":
            front.send_multipart(frames)
        front.send_multipart(frames)
        return
    back = ctx.socket(zmq.DEALER)
    back.connect(onward)
    poller = zmq.Poller()
    poller.register(front, zmq.POLLIN)
    poller.register(back, zmq.POLLIN)
    while True:
        for sock, _ in poller.poll():
            frames = sock.recv_multipart()
            (back if sock is front else front).send_multipart(frames)
            if sock is back and frames[-1] == b"stop":
                return


def chain_paced(
    rate: float, seconds: float, layout: dict[str, frozenset[int]] | None = None
) -> dict[str, float]:
    """p50/p99 µs of a request through the six hops, sent open loop at ``rate`` a second,
    and the CPU (all threads) each relay and the client spent per round trip, µs
    (``cpu_gateway_us``, ``cpu_tp_us``, ``cpu_venue_us``, ``cpu_client_us``): the cost of
    the hops alone, beside which ``bench_orders.py`` prints the stack's; with ``layout``
    (``orders_bench_lib.parse_layout``), each relay on its component's CPUs (the client:
    the caller's own, which it chooses)."""
    ctx = mp.get_context("spawn")
    procs, pids, onward = [], [], None
    names = ("venue", "tp", "gateway")  # built from the far end back
    for name in names:
        here, there = ctx.Pipe()
        cpus = (layout or {}).get("tickerplant" if name == "tp" else name)
        proc = ctx.Process(target=_relay, args=(there, onward, cpus), daemon=True)
        proc.start()
        assert proc.pid is not None  # started
        procs.append(proc)
        pids.append(proc.pid)
        onward = f"tcp://127.0.0.1:{here.recv()}"
    zctx = zmq.Context()
    sock = zctx.socket(zmq.DEALER)
    sock.connect(str(onward))
    body = os.urandom(PAYLOAD - 8)
    for i in range(200):  # warm up, untimed
        sock.send(i.to_bytes(8, "little") + body)
        sock.recv()
    n = int(rate * seconds)
    cpu_before = [cpu_ns(pid) for pid in (*pids, os.getpid())]
    sent: list[float] = [0.0] * n
    latency: list[float] = []
    start = time.perf_counter() + 0.01
    i = 0
    while len(latency) < n:
        now = time.perf_counter()
        while i < n and now >= start + i / rate:
            sent[i] = time.perf_counter()
            sock.send(i.to_bytes(8, "little") + body)
            i += 1
            now = time.perf_counter()
        due_s = start + i / rate - now if i < n else 5.0
        if not readable_within(sock, max(0.0, due_s)):
            if i >= n:
                break
            continue
        while True:
            try:
                answer = sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            latency.append(time.perf_counter() - sent[int.from_bytes(answer[:8], "little")])
    cpu_after = [cpu_ns(pid) for pid in (*pids, os.getpid())]
    trips = max(1, len(latency))
    per_trip = [(b - a) / trips / 1e3 for a, b in zip(cpu_before, cpu_after, strict=True)]
    sock.send(b"stop")
    sock.poll(5000)
    sock.close(0)
    zctx.term()
    for proc in procs:
        proc.join(5)
        if proc.is_alive():
            proc.kill()
    ordered = sorted(latency)
    return {
        "p50_us": ordered[len(ordered) // 2] * 1e6,
        "p99_us": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1e6,
        **{f"cpu_{name}_us": cpu for name, cpu in zip((*names, "client"), per_trip, strict=True)},
    }


if __name__ == "__main__":
    for r in (1000.0, 5000.0):
        print(r, chain_paced(r, 3.0))
