"""CPU a one-row message costs at a paced rate: the tickerplant's threads against a bare relay.

At a latency benchmark's rates (10k/s and below) every message wakes the tickerplant from
sleep, so what a message costs there is not what it costs in a throughput run: caches are
cold and each wake and system call counts. This runs ``bench_tickerplant``'s latency set-up
(a real ``tickdb tp``, journal on, one ``Subscriber`` process, the paced publisher in this
process), then the same paced messages through the bare relay process (PULL in, PUB out,
no work) to a bare SUB process, and reads each process's and thread's CPU time in
nanoseconds from ``/proc/<pid>/task/*/schedstat`` around the sending. Linux only. CPU time
is steadier than latency on a shared machine, so it is the figure to compare changes by.

    .venv/bin/python scripts/tp_cpu_paced.py                 # 2,000/s for 4 s, 3 rounds
    .venv/bin/python scripts/tp_cpu_paced.py --rate 10000 --seconds 3 --repeat 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import zmq

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bench_tickerplant as bench

from tickerplant.publisher import Publisher


def threads(pid: int) -> dict[str, float]:
    """CPU seconds so far per thread name ("python" is the main thread and any Python
    thread; ZeroMQ names its I/O thread ``ZMQbg/IO/0``)."""
    spent: dict[str, float] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        task = Path(f"/proc/{pid}/task/{tid}")
        name = (task / "comm").read_text().strip()
        spent[name] = spent.get(name, 0.0) + int((task / "schedstat").read_text().split()[0]) / 1e9
    return spent


def per_message(before: dict[str, float], after: dict[str, float], count: int) -> dict[str, float]:
    """µs a message per thread name, and ``total``."""
    spent = {name: (after[name] - before.get(name, 0.0)) * 1e6 / count for name in after}
    spent["total"] = sum(spent.values())
    return spent


def tickdb_round(rate: int, seconds: float) -> dict[str, dict[str, float]]:
    count = int(rate * seconds)
    with tempfile.TemporaryDirectory() as tmp:
        tp = bench.start_tp(Path(tmp), "immediate")
        info = tp.info
        try:
            address = info["address"]
            # One message more than is timed, sent after: the subscriber must still be
            # running (with all its threads) when its CPU time is read.
            sub = bench.spawn("--role", "latency_sub", address, str(count + 1))
            # (settle_subscribers' warm-up row is not counted by the subscriber)
            bench.settle_subscribers(address)
            pub = Publisher(address, max_inflight=50_000)
            pids = {"tickerplant": tp.pid, "subscriber": sub.pid, "publisher": os.getpid()}
            before = {name: threads(pid) for name, pid in pids.items()}
            for body in bench.paced_payloads(rate, count):
                pub.publish_ipc("trade", body)
            pub.flush(60)
            time.sleep(0.1)  # the last records through to the subscriber
            after = {name: threads(pid) for name, pid in pids.items()}
            pub.publish_ipc("trade", next(bench.paced_payloads(rate, 1)))
            bench.result(sub)
            pub.close()
        finally:
            tp.stop(grace_s=30)
    return {name: per_message(before[name], after[name], count) for name in pids}


def relay_round(rate: int, seconds: float) -> dict[str, dict[str, float]]:
    count = int(rate * seconds)
    ctx = zmq.Context()
    push = ctx.socket(zmq.PUSH)
    push.setsockopt(zmq.SNDHWM, 0)
    # The relay forwards its count + 50 messages (50 probes wait for the subscription);
    # both children get one message more than is timed, sent once their CPU time is read.
    relay, info = bench.spawn_with_info("--role", "raw_relay", "copy", str(count + 1))
    push.connect(info["in"])
    out = f"tcp://127.0.0.1:{info['out']}"
    sub = bench.spawn("--role", "raw_latency_sub", out, str(count + 1))
    for _ in range(50):
        push.send_multipart([b"probe", b""])
        time.sleep(0.01)
    pids = {"relay": relay.pid, "subscriber": sub.pid, "publisher": os.getpid()}
    before = {name: threads(pid) for name, pid in pids.items()}
    for body in bench.paced_payloads(rate, count):
        push.send_multipart([bench.TOPIC, body])
    time.sleep(0.1)  # the last messages through
    after = {name: threads(pid) for name, pid in pids.items()}
    push.send_multipart([bench.TOPIC, next(bench.paced_payloads(rate, 1))])
    bench.result(sub)
    bench.result(relay)
    push.close(0)
    ctx.term()
    return {name: per_message(before[name], after[name], count) for name in pids}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=2_000, help="One-row messages a second.")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rounds = [
        (tickdb_round(args.rate, args.seconds), relay_round(args.rate, args.seconds))
        for _ in range(args.repeat)
    ]

    def median(side: int, process: str, thread: str) -> float:
        return statistics.median(r[side][process].get(thread, 0.0) for r in rounds)

    print(
        f"# CPU µs a one-row message at {args.rate:,}/s, median of {args.repeat} rounds; "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print("| process | main thread | ZeroMQ I/O thread | total | total / bare relay's |")
    print("|---|---:|---:|---:|---:|")
    relay_total = median(1, "relay", "total")
    for side, process in ((0, "tickerplant"), (1, "relay"), (0, "subscriber"), (1, "subscriber")):
        label = ("tickdb " if side == 0 else "bare ") + process
        total = median(side, process, "total")
        main_thread = median(side, process, "python")
        io_thread = median(side, process, "ZMQbg/IO/0")
        ratio = f"{total / relay_total:.2f}" if process != "subscriber" else ""
        print(f"| {label} | {main_thread:.1f} | {io_thread:.1f} | {total:.1f} | {ratio} |")


if __name__ == "__main__":
    from stop_on_term import stop_on_term

    stop_on_term()
    main()
