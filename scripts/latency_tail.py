"""Where the tail of the one-row latency lies: every message's three stamps, then the tail's
shape.

``bench_tickerplant.py --rows ""`` gives percentiles; this says what makes the slowest
percent slow. It runs the same set-up (a real ``tickdb tp``, journal on, immediate mode,
one ``Subscriber`` process, ``Publisher.publish_ipc`` paced in this process) and keeps, for
each message, when it was sent (the stamp in its row), when the tickerplant received it
(the record's ``ts_recv``) and when the subscriber's ``poll`` returned it. Then:

- percentiles of the whole trip and of its two halves (to the tickerplant's receive, and
  from there to the subscriber);
- the slowest percent: which half holds its delay;
- whether it comes in stalls (long runs of consecutive slow messages: a pause somewhere,
  a garbage collection, a slow ``writev``) or spread out (queueing behind work).

    .venv/bin/python scripts/latency_tail.py                      # 10,000/s for 5 s
    .venv/bin/python scripts/latency_tail.py --rate 2000 --seconds 10
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bench_tickerplant as bench

# One message: sent (its row's time), received by the tickerplant, returned by poll (ns).
Stamps = tuple[int, int, int]


def role_sub(address: str, expect: str) -> None:
    """Stamp each message as ``poll`` returns it; print every message's stamps."""
    from tickerplant.subscriber import Subscriber

    sub = Subscriber(address, tables=["trade"])
    print(json.dumps({"ready": True}), flush=True)
    # Three lists of ints, not a tuple a message: the collector tracks tuples, and a list of
    # them growing through the run would make this process's own pauses part of the tail.
    sent: list[int] = []
    received: list[int] = []
    polled: list[int] = []
    while len(sent) < int(expect) and (message := sub.poll(30)) is not None:
        now = time.time_ns()
        times = ipc.open_stream(message.payload).read_all().column("time")
        # The warm-up row (settle_subscribers) has time 0: not one of the paced messages.
        for t in times.cast(pa.int64()).to_pylist():
            if t:
                sent.append(t)
                received.append(message.ts_recv)
                polled.append(now)
    sub.close()
    print(json.dumps({"stamps": [sent, received, polled]}), flush=True)


def start_sub(address: str, count: int) -> subprocess.Popen:
    child = subprocess.Popen(
        [sys.executable, __file__, "--role", "sub", address, str(count)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and json.loads(child.stdout.readline())["ready"]
    return child


def run(rate: int, seconds: float) -> list[Stamps]:
    """``bench_tickerplant``'s latency run, with this subscriber."""
    sent, received, polled = bench.run_latency(rate, seconds, start_sub)["stamps"]
    stamps: list[Stamps] = list(zip(sent, received, polled, strict=True))
    return sorted(stamps)


def percentiles(values: list[int]) -> str:
    ordered = sorted(values)
    return " / ".join(f"{ordered[int(len(ordered) * q)] / 1000:.0f}" for q in (0.5, 0.9, 0.99))


def stalls(slow: list[int]) -> list[list[int]]:
    """Runs of slow messages, by index: two slow ones at most two messages apart are one."""
    runs: list[list[int]] = []
    for i in slow:
        if runs and i - runs[-1][-1] <= 2:
            runs[-1].append(i)
        else:
            runs.append([i])
    return runs


def report(stamps: list[Stamps], rate: int) -> None:
    trip = [got - sent for sent, _, got in stamps]
    first = [tp - sent for sent, tp, _ in stamps]
    second = [got - tp for _, tp, got in stamps]
    print(f"# {len(stamps):,} one-row messages at {rate:,}/s; p50 / p90 / p99, µs")
    print(f"whole trip:                     {percentiles(trip)}")
    print(f"publisher -> tickerplant stamp: {percentiles(first)}")
    print(f"tickerplant stamp -> subscriber: {percentiles(second)}")
    p99 = sorted(trip)[int(len(trip) * 0.99)]
    slow = [i for i, t in enumerate(trip) if t >= p99]
    print(
        f"the slowest 1% ({len(slow)}): median µs to the tickerplant "
        f"{statistics.median(first[i] for i in slow) / 1000:.0f}, after it "
        f"{statistics.median(second[i] for i in slow) / 1000:.0f}"
    )
    runs = stalls(slow)
    lengths = sorted(len(r) for r in runs)
    longest = max(runs, key=len)
    its_first = statistics.median(first[i] for i in longest) / 1000
    print(
        f"in {len(runs)} runs of consecutive slow messages: median length "
        f"{lengths[len(lengths) // 2]}, longest {len(longest)} ({len(longest) * 1e3 / rate:.1f} "
        f"ms of sending, {(stamps[longest[0]][0] - stamps[0][0]) / 1e6:.0f} ms into the run; "
        f"its median µs to the tickerplant {its_first:.0f}"
        f", after it {statistics.median(second[i] for i in longest) / 1000:.0f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--role")
    parser.add_argument("args", nargs="*")
    parser.add_argument("--rate", type=int, default=10_000, help="One-row messages a second.")
    parser.add_argument("--seconds", type=float, default=5.0)
    opts = parser.parse_args()
    if opts.role:
        role_sub(*opts.args)
        return
    report(run(opts.rate, opts.seconds), opts.rate)


if __name__ == "__main__":
    from stop_on_term import stop_on_term

    stop_on_term()
    main()
