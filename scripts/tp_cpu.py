"""Where a tickerplant message's CPU goes: publisher, tickerplant and subscriber, per message.

One run of ``bench_tickerplant``'s setup (a real ``tickdb tp``, journal on, one subscriber
process decoding every record, the publisher in this process), with each process's CPU time
and minor page faults read from ``/proc`` around the publishing. Linux only. The subscriber's
CPU is counted until the publisher's flush returns, so it can be a little short.

    .venv/bin/python scripts/tp_cpu.py                      # 1000-row messages, 30,000
    .venv/bin/python scripts/tp_cpu.py --rows 1 --messages 200000 --mode batched
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bench_tickerplant as bench

from tickerplant.publisher import Publisher

_TICKS = os.sysconf("SC_CLK_TCK")


def usage(pid: int) -> tuple[float, int]:
    """CPU seconds (user + system) and minor page faults of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS, int(fields[7])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1000, help="Rows per message.")
    parser.add_argument("--messages", type=int, default=30_000)
    parser.add_argument("--mode", choices=["immediate", "batched"], default="immediate")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tp = bench.start_tp(Path(tmp), args.mode)
        info = tp.info
        try:
            address = info["address"]
            sub = bench.spawn("--role", "sub", address, str(args.messages * args.rows + 1))
            bench.settle_subscribers(address)
            body = bench.payload(args.rows)
            pub = Publisher(address, max_inflight=50_000)
            tp_before, sub_before = usage(tp.pid), usage(sub.pid)
            pub_before, started = time.process_time(), time.time()
            for _ in range(args.messages):
                pub.publish_ipc("trade", body)
            pub.flush(120)
            pub_cpu = time.process_time() - pub_before
            tp_after, sub_after = usage(tp.pid), usage(sub.pid)
            done = bench.result(sub)["done"]
            pub.close()
        finally:
            tp.stop(grace_s=30)
    n = args.messages
    per = {
        "publisher": (pub_cpu, None),
        "tickerplant": (tp_after[0] - tp_before[0], tp_after[1] - tp_before[1]),
        "subscriber": (sub_after[0] - sub_before[0], sub_after[1] - sub_before[1]),
    }
    print(
        f"{args.rows}-row messages, {n:,}, {args.mode}: {n / (done - started):,.0f} msgs/s end "
        "to end"
    )
    for name, (cpu_s, faults) in per.items():
        extra = "" if faults is None else f", {faults / n:.1f} minor faults"
        print(f"  {name:12s} {cpu_s / n * 1e6:6.1f} µs CPU a message{extra}")


if __name__ == "__main__":
    from stop_on_term import stop_on_term

    stop_on_term()
    main()
