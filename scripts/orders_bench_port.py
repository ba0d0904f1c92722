"""The order port's phases of ``bench_orders.py``: what a program using ``tickdb.Orders``
(one ZeroMQ connection, requests pipelined) gets, against the same stack as HTTP."""

from __future__ import annotations

import os
import statistics
import time
from typing import Any

import orjson
import zmq
from orders_bench_lib import EventCounter, Stack, order_for
from proc_cpu import cpu_ns
from waits import readable_within


def _request(seq: int, tag: str, wait: bool) -> bytes:
    account, sym, side, qty, price = order_for(seq)
    return orjson.dumps(
        {
            "op": "new",
            "id": seq,
            "wait": wait,
            "account": account,
            "sym": sym,
            "side": side,
            "qty": qty,
            "price": price,
            "clordid": f"{tag}{seq}",
        }
    )


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def port_paced(stack: Stack, rate: float, seconds: float, tag: str) -> dict[str, float]:
    """Open loop at ``rate`` orders/s on one connection, each waiting for its venue's
    answer (submit -> accepted); the sender never waits for an answer to send the next."""
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVHWM, 0)
    sock.connect(str(stack.port_address))
    for w in range(50):  # warm up, untimed
        sock.send(_request(10_000_000 + w, f"{tag}w", True))
        sock.recv()
    n = int(rate * seconds)
    cpu_before = stack.cpu_ns()
    client_before = cpu_ns(os.getpid())  # this process: the client's
    sent: dict[int, tuple[float, float]] = {}
    latency: list[float] = []
    from_schedule: list[float] = []
    errors = 0
    start = time.perf_counter() + 0.01
    i = 0
    while len(latency) < n:
        now = time.perf_counter()
        while i < n and now >= start + i / rate:
            sock.send(_request(i, tag, True))
            sent[i] = (time.perf_counter(), start + i / rate)
            i += 1
            now = time.perf_counter()
        due_ms = (start + i / rate - now) * 1000 if i < n else 1000.0
        if readable_within(sock, max(0.0, due_ms / 1000)):
            while True:
                try:
                    raw = sock.recv(zmq.NOBLOCK)
                except zmq.Again:
                    break
                done = time.perf_counter()
                body = orjson.loads(raw)
                t_sent, t_sched = sent[body["id"]]
                latency.append((done - t_sent) * 1e6)
                from_schedule.append((done - t_sched) * 1e6)
                errors += not body.get("ok")
        elif i >= n:
            break  # answers stopped coming: report what arrived
    elapsed = time.perf_counter() - start
    cpu = {k: (v - cpu_before[k]) / max(1, len(latency)) / 1e3 for k, v in stack.cpu_ns().items()}
    cpu["client"] = (cpu_ns(os.getpid()) - client_before) / max(1, len(latency)) / 1e3
    sock.close(0)
    ctx.term()
    return {
        **{f"cpu_{k}_us": v for k, v in cpu.items()},  # CPU per order answered, µs
        "p50_us": _pct(latency, 0.5),
        "p99_us": _pct(latency, 0.99),
        "sched_p50_us": _pct(from_schedule, 0.5),
        "sched_p99_us": _pct(from_schedule, 0.99),
        "achieved": len(latency) / elapsed,
        "errors": float(errors),
    }


def port_flood(stack: Stack, orders: int, tag: str) -> dict[str, Any]:
    """``orders`` pipelined on one connection (``wait=False``: answered once journaled);
    timed until a subscriber to ``order`` has every ``accepted`` event."""
    counter = EventCounter(stack.tp_address, "accepted")
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVHWM, 0)
    sock.connect(str(stack.port_address))
    before = counter.count
    start = time.perf_counter()
    for seq in range(orders):
        sock.send(_request(seq, tag, False))
    complete = counter.wait_for(before + orders, 120)
    elapsed = time.perf_counter() - start
    answers = 0
    while answers < orders and sock.poll(10_000):
        while True:
            try:
                sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            answers += 1
    sock.close(0)
    ctx.term()
    counter.close()
    return {"orders_per_s": orders / elapsed, "complete": complete and answers == orders}


def median(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(float(r[key]) for r in runs)
