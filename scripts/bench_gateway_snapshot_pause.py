"""The order path's latency with the gateway's order-state snapshots on, against off, in the
same run.

The gateway takes no snapshot on its order thread: they are written by a process of its own
(``gateway/order_snapshotter.py``) that applies the order flow a second time, so the pause
a snapshot causes the order thread is nil by construction. What snapshots cost the order
path is that process's CPU (applying every record, a fork per snapshot) on the same cores.
Measured here: per round, a fresh stack (``orders_bench_lib``: a tickerplant, 2 venues, a
gateway) with gateway snapshots off (the raw baseline), and one with a snapshot every
``--every`` order-flow records, which first alternating; a paced open loop over the order
port at ``--rate`` orders/s for ``--seconds`` (``orders_bench_port.port_paced``: submit ->
accepted, one connection), once the writer has started (a second after it says so: its
start-up, imports and catch-up, is a burst of its own); p50/p99 latency, the snapshots the
gateway wrote meanwhile and the writer's pause (capture and fork) from its log. Medians
over ``--rounds``; ratios to ``off``. ``--from-ready``: measured from the gateway's ready
on, the writer's start-up included.

    .venv/bin/python scripts/bench_gateway_snapshot_pause.py [--rate 1000] [--seconds 5]
        [--every 200] [--rounds 3] [--from-ready]
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import orders_bench_lib  # noqa: E402
from orders_bench_port import port_paced  # noqa: E402
from waits import wait_for  # noqa: E402

BASE_CONFIG = orders_bench_lib.CONFIG
FOLLOWING = "gateway order snapshots: following the order flow"


def one(
    workdir: Path, every: int, rate: float, seconds: float, settle: bool = True
) -> dict[str, float]:
    snapshots = workdir / "snapshots"
    orders = f'\n[orders]\nsnapshot_dir = "{snapshots}"\n'
    if every:
        orders += f"gateway_snapshot_every_records = {every}\n"
    orders_bench_lib.CONFIG = BASE_CONFIG + orders
    stack = orders_bench_lib.start_stack(workdir, 2)
    try:
        if every and settle:  # the writer started (imports, catch-up): steady state measured
            wait_for(lambda: FOLLOWING in (workdir / "gateway.log").read_text(), 60, "writer")
            time.sleep(1.0)
        result = port_paced(stack, rate, seconds, f"r{every}")
        assert stack.gateway is not None
        log = (workdir / "gateway.log").read_text()
    finally:
        stack.stop()
    pauses = [float(p) for p in re.findall(r"writer process paused ([\d.]+) ms", log)]
    result["snapshots"] = float(len(pauses))
    result["writer_pause_ms"] = statistics.median(pauses) if pauses else 0.0
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=1000)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--every", type=int, default=200, help="records per snapshot")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--from-ready", action="store_true", help="measure from the gateway's ready on"
    )
    opts = parser.parse_args()
    runs: dict[str, list[dict[str, float]]] = {"off": [], "on": []}
    with tempfile.TemporaryDirectory(prefix="bench-gateway-snapshot-pause-") as tmp:
        for round_ in range(opts.rounds):
            cases = [("off", 0), ("on", opts.every)]
            for kind, every in cases if round_ % 2 == 0 else cases[::-1]:  # alternated
                workdir = Path(tmp) / f"{kind}-{round_}"
                workdir.mkdir()
                runs[kind].append(one(workdir, every, opts.rate, opts.seconds, not opts.from_ready))
    print(
        f"order port, {opts.rate:g} orders/s for {opts.seconds:g} s, snapshots every "
        f"{opts.every} records; median of {opts.rounds}, under load"
    )
    base = {k: statistics.median(r[k] for r in runs["off"]) for k in ("p50_us", "p99_us")}
    for kind, results in runs.items():
        row = {k: statistics.median(r[k] for r in results) for k in results[0]}
        print(
            f"  {kind:4} p50 {row['p50_us']:7.0f} µs ({row['p50_us'] / base['p50_us']:4.2f})"
            f"  p99 {row['p99_us']:7.0f} µs ({row['p99_us'] / base['p99_us']:4.2f})"
            f"  achieved {row['achieved']:6.0f}/s  snapshots {row['snapshots']:3.0f}"
            f"  writer pause {row['writer_pause_ms']:5.1f} ms"
        )


if __name__ == "__main__":
    from stop_on_term import stop_on_term

    stop_on_term()
    main()
