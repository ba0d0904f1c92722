"""The HTTP client processes of ``bench_orders.py``: orders sent as a user of
``tickdb.Client`` sends them, paced or as fast as replies come, from spawned processes."""

from __future__ import annotations

import multiprocessing as mp
import threading
import time
from collections.abc import Callable
from typing import Any

from orders_bench_lib import order_for

from gateway.client import Client


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
