"""Where one order's round trip goes: the order port's submit -> accepted, cut into hops by
the tickerplant's receive stamps, with each thread's CPU and run-queue wait per order.

A stack as ``bench_orders.py`` starts it (tickerplant, venues, gateway; real processes on
loopback). Orders go out one connection, paced (open loop), each waiting for its venue's
answer. Afterwards the journal gives, per order, the tickerplant's stamp (``time``) of its
``order_request`` row and of its ``accepted`` row, so each round trip splits into:

1. client -> tickerplant: the order port, parse, risk, the request's encoding and publish,
   the tickerplant receiving it;
2. venue leg: the tickerplant journals and publishes it, the venue receives, applies,
   encodes and publishes its answer, the tickerplant receives that;
3. tickerplant -> client: the tickerplant journals and publishes the answer, the gateway's
   order thread applies it and replies, the client receives it.

The stamps are wall clock (``time.time_ns`` in every process of one machine). Per thread,
from ``/proc/<pid>/task/<tid>/schedstat`` and ``status``: CPU time, time waiting for a CPU
while runnable (run queue), voluntary and involuntary switches, per order. Baseline in the
same run: a raw pyzmq REQ/REP round trip between two processes.

    .venv/bin/python scripts/bench_order_hops.py [--rate 100] [--orders 600] [--shards 2]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path

import orjson
import zmq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_orders import pct, raw_round_trip  # noqa: E402
from orders_bench_lib import Stack, order_for, start_stack  # noqa: E402
from waits import readable_within  # noqa: E402

from tickerplant.subscriber import Subscriber, Update  # noqa: E402

TAG = "hop"
ThreadStats = dict[str, tuple[int, int, int, int]]  # name:tid -> cpu ns, wait ns, vol, invol


def thread_stats(pid: int) -> ThreadStats:
    out: ThreadStats = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError, ValueError, IndexError):  # a thread that ended
            sched = (task / "schedstat").read_text().split()
            status = (task / "status").read_text()
            vol = int(status.split("\nvoluntary_ctxt_switches:")[1].split()[0])
            invol = int(status.split("nonvoluntary_ctxt_switches:")[1].split()[0])
            name = f"{(task / 'comm').read_text().strip()}:{task.name}"
            out[name] = (int(sched[0]), int(sched[1]), vol, invol)
    return out


def processes(stack: Stack) -> dict[str, int]:
    assert stack.gateway is not None
    found = {"gateway": stack.gateway.pid, "tickerplant": stack.tp.pid}
    for k, venue in enumerate(stack.venues):
        found[f"venue {k}"] = venue.pid
    return found


def request(seq: int) -> bytes:
    account, sym, side, qty, price = order_for(seq)
    body = {"op": "new", "id": seq, "wait": True, "account": account, "sym": sym}
    body |= {"side": side, "qty": qty, "price": price, "clordid": f"{TAG}{seq}"}
    return orjson.dumps(body)


def send_paced(stack: Stack, rate: float, n: int) -> tuple[dict[int, int], dict[int, int]]:
    """Send ``n`` orders at ``rate``/s; wall-clock ns of each send and each answer."""
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(stack.port_address)
    for w in range(50):  # warm up, untimed (other ClOrdIDs)
        sock.send(request(10_000_000 + w))
        sock.recv()
    sent: dict[int, int] = {}
    answered: dict[int, int] = {}

    def receive(timeout_ms: float) -> None:
        if readable_within(sock, max(0.0, timeout_ms / 1000)):
            while True:
                try:
                    raw = sock.recv(zmq.NOBLOCK)
                except zmq.Again:
                    return
                answered[int(orjson.loads(raw)["id"])] = time.time_ns()

    start = time.perf_counter()
    for i in range(n):
        while (left := start + i / rate - time.perf_counter()) > 0:
            receive(left * 1000)
        sent[i] = time.time_ns()
        sock.send(request(i))
    deadline = time.monotonic() + 10
    while len(answered) < n and time.monotonic() < deadline:
        receive(100)
    sock.close(0)
    ctx.term()
    return sent, answered


def journal_stamps(stack: Stack) -> tuple[dict[int, int], dict[int, int]]:
    """The tickerplant's stamp of each order's ``order_request`` row and ``accepted`` row."""
    requested: dict[int, int] = {}
    accepted: dict[int, int] = {}
    tables = ["order_request", "order"]
    with Subscriber(stack.tp_address, tables=tables, start="journal") as sub:
        while (message := sub.poll(0.5)) is not None:
            if not isinstance(message, Update):
                continue
            data = message.data
            events = data.column("event").to_pylist() if message.table == "order" else None
            stamps = data.column("time").cast("int64").to_pylist()
            for k, clordid in enumerate(data.column("clordid").to_pylist()):
                if not clordid.startswith(TAG):
                    continue
                if events is None:
                    requested[int(clordid[len(TAG) :])] = stamps[k]
                elif events[k] == "accepted":
                    accepted[int(clordid[len(TAG) :])] = stamps[k]
    return requested, accepted


def report_threads(before: dict[str, ThreadStats], after: dict[str, ThreadStats], n: int) -> None:
    print("per order, each thread using over 5 µs of CPU an order:")
    print("  process      thread              CPU µs  run-queue µs  voluntary  involuntary")
    for proc, stats in after.items():
        for name, now in stats.items():
            was = before[proc].get(name, (0, 0, 0, 0))
            cpu, wait, vol, invol = ((a - b) / n for a, b in zip(now, was, strict=True))
            if cpu > 5_000:
                print(
                    f"  {proc:12s} {name:18s} {cpu / 1e3:8.0f} {wait / 1e3:12.0f}"
                    f" {vol:10.2f} {invol:11.2f}"
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=100.0, help="orders/s, paced")
    parser.add_argument("--orders", type=int, default=600)
    parser.add_argument("--shards", type=int, default=2)
    args = parser.parse_args()
    raw = raw_round_trip(2000)
    with tempfile.TemporaryDirectory(prefix="order_hops_") as workdir:
        stack = start_stack(Path(workdir), args.shards)
        try:
            procs = processes(stack)
            before = {name: thread_stats(pid) for name, pid in procs.items()}
            sent, answered = send_paced(stack, args.rate, args.orders)
            after = {name: thread_stats(pid) for name, pid in procs.items()}
            requested, accepted = journal_stamps(stack)
        finally:
            stack.stop()
    done = [i for i in sent if i in answered and i in requested and i in accepted]
    hops = {
        "client -> tickerplant (order_request)": [(requested[i] - sent[i]) / 1e3 for i in done],
        "venue leg (tickerplant -> tickerplant)": [
            (accepted[i] - requested[i]) / 1e3 for i in done
        ],
        "tickerplant (accepted) -> client": [(answered[i] - accepted[i]) / 1e3 for i in done],
        "round trip": [(answered[i] - sent[i]) / 1e3 for i in done],
    }
    load = os.getloadavg()
    print(
        f"{len(done)} of {args.orders} orders at {args.rate:g}/s, {args.shards} shards, "
        f"load average {load[0]:.1f} {load[1]:.1f}"
    )
    print(f"raw pyzmq REQ/REP, 200 B: p50 {raw['p50_us']:.0f} µs, p99 {raw['p99_us']:.0f} µs")
    print("hop                                       p50 µs   p90 µs   p99 µs  p50 x raw")
    for name, values in hops.items():
        p50 = pct(values, 0.5)
        print(
            f"  {name:38s} {p50:8.0f} {pct(values, 0.9):8.0f} {pct(values, 0.99):8.0f}"
            f" {p50 / raw['p50_us']:9.1f}"
        )
    report_threads(before, after, max(1, len(done)))


if __name__ == "__main__":
    from stop_on_term import stop_on_term

    stop_on_term()
    main()
