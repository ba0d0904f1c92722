"""Publishing from Python, written as a user writes it, end to end, against the goals and
raw pyzmq in the same run.

Each end-to-end case is a real ``tickdb tp`` (journal on, ``bench_tickerplant``'s set-up),
the publisher in this process and one subscriber process iterating ``Subscriber.batches()``
and counting rows; the time runs from the first publish until the subscriber has every row.

- buffered single rows: ``Publisher(address, batch_ms=20)``, then
  ``pub.publish("trade", sym=..., price=..., size=...)`` per row (goal: 1M rows/s);
- immediate single rows: ``Publisher(address)``, the same call, a message per row (goal:
  100k msgs/s);
- 1000-row tables: ``pub.publish("trade", table)`` with a ``pa.Table`` (goal: half of raw
  pyzmq moving the same payload bytes, the same number of messages, PUB to a SUB process:
  ``bench_tickerplant.run_bare``), with the subscriber iterating ``batches()`` and, second
  line, ``Update``s (``poll()`` and ``.data``). Raw pyzmq and the two take turns, round by
  round, and the ratio printed is the median of the rounds' ratios: on a shared machine
  the load drifts between rounds more than between the runs of one. A third set-up takes
  its turn too, the floor: the same messages through a bare relay process that journals and
  acknowledges them as cheaply as pyzmq allows (no copies, one ``writev`` for what is
  waiting), printed with its ratio to raw pyzmq and tickdb's to it; and libzmq's own proxy
  (C, no journal), what a third process costs without any Python.

Then the client's own cost per row, without a network: a row checked and buffered
(``RowWriter``, and through ``Publisher.publish``), a buffer converted at flush, a row
checked and packed as a one-row message (immediate mode). CPU time of this thread.

    .venv/bin/python scripts/bench_publish.py                # medians of 3
    .venv/bin/python scripts/bench_publish.py --quick        # smaller, 1 repeat
    .venv/bin/python scripts/bench_publish.py --repeat 5 --tables 10000   # finer CPU figures
    .venv/bin/python scripts/bench_publish.py --cases tables --repeat 1   # one case
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bench_tickerplant as bench
from tp_cpu import usage

from tickdb.schema import default_schemas
from tickerplant.publisher import Publisher
from tickerplant.row_message import payload_of
from tickerplant.row_writer import RowWriter

TRADE = default_schemas()["trade"]
SYMS = [f"S{i}" for i in range(50)]


# -- the subscriber process ------------------------------------------------------------------
def role_sub(address: str, expect: str, how: str) -> None:
    """Count rows until ``expect`` arrived: by ``batches()`` or by ``Update``s."""
    from tickerplant.subscriber import Subscriber, Update

    sub = Subscriber(address, tables=["trade"])
    print(json.dumps({"ready": True}), flush=True)
    got, want = 0, int(expect)
    if how == "batches":
        for _table, batch in sub.batches(timeout_s=60):
            got += batch.num_rows
            if got >= want:
                break
    else:
        while got < want and (message := sub.poll(60)) is not None:
            if isinstance(message, Update):
                got += message.data.num_rows
    print(json.dumps({"got": got, "done": time.time()}), flush=True)
    sub.close()


# -- end to end --------------------------------------------------------------------------------
class Run:
    """One end-to-end run: rows per second, and each process's CPU µs per publish call."""

    def __init__(self, rows_s: float, cpu_us: dict[str, float]) -> None:
        self.rows_s = rows_s
        self.cpu_us = cpu_us


def end_to_end(
    publish: Callable[[Publisher], int],
    options: dict[str, object],
    how: str,
    expect: int,
    rows_per_call: int = 1,
) -> Run:
    """From the first publish until the subscriber has every row. CPU is counted from
    ``/proc`` (the publisher: this process, with its ZeroMQ threads) over the same span,
    the subscriber's until the flush returned, so it can be a little short."""
    with tempfile.TemporaryDirectory() as tmp:
        tp = bench.start_tp(Path(tmp), "immediate")
        info = tp.info
        try:
            address = info["address"]
            child = subprocess.Popen(
                [sys.executable, __file__, "--role", "sub", address, str(expect + 1), how],
                stdout=subprocess.PIPE,
                text=True,
            )
            assert child.stdout is not None and json.loads(child.stdout.readline())["ready"]
            bench.settle_subscribers(address)  # one warm-up row
            pub = Publisher(address, max_inflight=50_000, **options)  # type: ignore[arg-type]
            before = {
                "publisher": usage(os.getpid())[0],
                "tickerplant": usage(tp.pid)[0],
                "subscriber": usage(child.pid)[0],
            }
            started = time.time()
            sent = publish(pub)
            pub.flush(300)
            after = {
                "publisher": usage(os.getpid())[0],
                "tickerplant": usage(tp.pid)[0],
                "subscriber": usage(child.pid)[0],
            }
            out = bench.result(child)
            pub.close()
        finally:
            tp.stop(grace_s=30)
    assert out["got"] == expect + 1 == sent + 1, out
    calls = sent // rows_per_call
    cpu = {name: (after[name] - before[name]) / calls * 1e6 for name in before}
    return Run(sent / (out["done"] - started), cpu)


def single_rows(count: int) -> Callable[[Publisher], int]:
    def publish(pub: Publisher) -> int:
        for i in range(count):
            pub.publish("trade", sym=SYMS[i % 50], price=100.0 + i, size=i)
        return count

    return publish


def table_of(rows: int) -> pa.Table:
    """The same rows as ``bench_tickerplant.payload(rows)`` holds, as a table."""
    return pa.ipc.open_stream(bench.payload(rows)).read_all()


def tables(count: int, rows: int) -> Callable[[Publisher], int]:
    table = table_of(rows)

    def publish(pub: Publisher) -> int:
        for _ in range(count):
            pub.publish("trade", table)
        return count * rows

    return publish


# -- the client alone -----------------------------------------------------------------------
def per_row_us(step: Callable[[int], object], count: int) -> float:
    """CPU µs of this thread per call of ``step(i)``."""
    started = time.thread_time()
    for i in range(count):
        step(i)
    return (time.thread_time() - started) / count * 1e6


def client_costs(address: str, count: int) -> list[tuple[str, float]]:
    rows = [(SYMS[i % 50], 100.0 + i, i) for i in range(count)]
    dicts = [{"sym": s, "price": p, "size": z} for s, p, z in rows]
    writer = RowWriter(TRADE, limit=10**9, on_full=lambda: None)
    row, tup = writer.row, writer.tup
    prefix = TRADE.arrow_without_time.serialize().to_pybytes()
    for i in range(1000):  # pyarrow's first conversions set things up: not per row
        row(dicts[i % count])
    payload_of(writer.take()[0], prefix)
    out = [("RowWriter.row({dict})", per_row_us(lambda i: row(dicts[i]), count))]
    started = time.thread_time()
    for batch in writer.take():
        payload_of(batch, prefix)
    at_flush = (time.thread_time() - started) / count * 1e6
    out.append(("... at flush: the buffer to one Arrow payload", at_flush))
    out.append(("RowWriter.tup((sym, price, size))", per_row_us(lambda i: tup(rows[i]), count)))
    # Buffered without a limit, and closed without a flush: no network in the figures.
    pub = Publisher(address, batch_rows=10**9)
    publish = pub.publish
    for label, step in (
        ("sym=, price=, size=", lambda i: publish("trade", sym=SYMS[i % 50], price=1.5, size=i)),
        ("{dict}", lambda i: publish("trade", dicts[i])),
        ("(tuple)", lambda i: publish("trade", rows[i])),
    ):
        out.append((f"Publisher.publish('trade', {label})", per_row_us(step, count)))
    pub.close(flush=False)
    packed: list[bytes] = []
    immediate = RowWriter(TRADE, send=packed.append)
    out.append(
        (
            "immediate: RowWriter.row checked and packed as a one-row message",
            per_row_us(lambda i: immediate.row(dicts[i]), count),
        )
    )
    return out


CASES = ("buffered", "immediate", "tables", "client")


def median(runs: list[float]) -> float:
    return statistics.median(runs)


def print_floor(
    raws: list[float], floors: list[float], proxies: list[float], runs: list[Run]
) -> None:
    """The floor under the tables goal: the same messages through a bare relay process that
    journals and acknowledges them the cheapest way (``bench_bare_roles``' ``journal_batch``:
    no copies, one ``writev`` for what is waiting), to one bare SUB. Any tickerplant is that
    relay plus its own work, and the goal's raw pyzmq has no third process at all. Beside
    it, libzmq's proxy (C, no journal): what relaying alone costs, without Python."""
    print(
        "\n| floors, 1000-row messages, a third process between | rows/s | ratio to raw |"
        " tickdb (batches) ÷ it |"
    )
    print("|---|---:|---:|---:|")
    for label, rates in (
        ("PUB -> relay journaling (no copies, one writev, acks) -> SUB", floors),
        ("PUSH -> libzmq proxy (C, no journal) -> SUB", proxies),
    ):
        to_raw = median([f / r for f, r in zip(rates, raws, strict=True)])
        tickdb = median([run.rows_s / f for run, f in zip(runs, rates, strict=True)])
        print(f"| {label} | {median(rates):,.0f} | {to_raw:.2f} | {tickdb:.2f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--role")
    parser.add_argument("args", nargs="*")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--tables", type=int, default=3_000, help="1000-row tables per run (CPU is in 10 ms ticks)"
    )
    parser.add_argument(
        "--cases",
        default=",".join(CASES),
        help=f"Which to run, of {','.join(CASES)} (one case alone: to alternate versions)",
    )
    opts = parser.parse_args()
    if opts.role:
        role_sub(*opts.args)
        return
    repeat = 1 if opts.quick else opts.repeat
    scale = 0.25 if opts.quick else 1.0
    buffered_rows, immediate_rows = int(2_000_000 * scale), int(200_000 * scale)
    messages = int(opts.tables * scale)
    load = os.getloadavg()[0]
    print(
        f"# publishing from Python, end to end, journal on, median of {repeat}; "
        f"{os.cpu_count()} cores, load average {load:.1f}, Python {sys.version.split()[0]}"
    )
    print(
        "| case | rows/s | msgs/s | goal | ratio to goal | raw pyzmq rows/s | ratio to raw "
        "| CPU µs per publish call: publisher, tickerplant, subscriber |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---|")

    def line(
        label: str, runs: list[Run], rows: int, goal: str, goal_ratio: float, raws: list[float]
    ) -> None:
        rate = median([r.rows_s for r in runs])
        cpu = ", ".join(f"{median([r.cpu_us[n] for r in runs]):.2f}" for n in runs[0].cpu_us)
        raw_cells = " | "
        if raws:  # the median of each round's ratio: the load drifts between rounds
            ratio = median([r.rows_s / b for r, b in zip(runs, raws, strict=True)])
            raw_cells = f"{median(raws):,.0f} | {ratio:.2f}"
        print(
            f"| {label} | {rate:,.0f} | {rate / rows:,.0f} | {goal} | {rate * goal_ratio:.2f} "
            f"| {raw_cells} | {cpu} |",
            flush=True,
        )

    cases = set(opts.cases.split(","))
    if unknown := cases - set(CASES):
        parser.error(f"unknown cases {sorted(unknown)} (known: {', '.join(CASES)})")
    if "buffered" in cases:
        runs = [
            end_to_end(single_rows(buffered_rows), {"batch_ms": 20}, "batches", buffered_rows)
            for _ in range(repeat)
        ]
        line("buffered single rows (batch_ms=20)", runs, 1, "1M rows/s", 1e-6, [])
    if "immediate" in cases:
        runs = [
            end_to_end(single_rows(immediate_rows), {}, "batches", immediate_rows)
            for _ in range(repeat)
        ]
        line("immediate single rows", runs, 1, "100k msgs/s", 1e-5, [])
    if "tables" in cases:
        # Raw pyzmq and tickdb take turns, round by round: each ratio is of one round's pair.
        raws: list[float] = []
        floors: list[float] = []
        proxies: list[float] = []
        table_runs: dict[str, list[Run]] = {"batches": [], "updates": []}
        for _ in range(repeat):
            raws.append(bench.run_bare(1000, messages, 1, relay=False)["rows_s"])
            floors.append(bench.run_bare(1000, messages, 1, True, "journal_batch")["rows_s"])
            proxies.append(bench.run_bare(1000, messages, 1, True, "proxy")["rows_s"])
            for how, done in table_runs.items():
                done.append(end_to_end(tables(messages, 1000), {}, how, messages * 1000, 1000))
        for how, done in table_runs.items():
            label = f"1000-row pa.Table, subscriber iterating {how}"
            line(label, done, 1000, "0.5 x raw", 2 / median(raws), raws)
        print_floor(raws, floors, proxies, table_runs["batches"])
    if "client" not in cases:
        return
    with tempfile.TemporaryDirectory() as tmp:
        tp = bench.start_tp(Path(tmp), "immediate")
        info = tp.info
        try:
            costs = [client_costs(info["address"], int(300_000 * scale)) for _ in range(repeat)]
        finally:
            tp.stop(grace_s=30)
    print("\n| client alone, per row (CPU of this thread) | µs |")
    print("|---|---:|")
    for i, (label, _) in enumerate(costs[0]):
        print(f"| {label} | {median([c[i][1] for c in costs]):.2f} |")


if __name__ == "__main__":
    from stop_on_term import stop_on_term

    stop_on_term()
    main()
