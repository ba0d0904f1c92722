"""A gateway's order-path rebuild late in the day, against reading the same journal raw,
measured in the same run.

A tickerplant and a venue (shard 0/1) take ``--requests`` order requests, one record each as
a gateway publishes them (``bench_venue_restart.requests``: new orders on 20 syms and 3
accounts that trade and rest, a fifth canceled or replaced); the venue's ``order`` and
``fill`` rows are journaled as it goes. Then, alternately:

- ``raw``: a subscriber reads ``order_request``, ``order``, ``fill`` and ``risk_admin`` from
  the start of the journal and drops them (the floor: fetching and receiving alone);
- ``rebuild``: an ``OrderStream`` rebuilds an ``OrderRouter`` from the same flow until it is
  ready to take requests (``gateway/order_setup.py``'s wait).

Wall seconds to ready and this process's CPU seconds (all its threads: what the load of
other processes changes least), medians over ``--rounds``; ratios to ``raw``. ``--profile
FILE`` writes a cProfile of one more rebuild (run on this thread) to FILE.

    .venv/bin/python scripts/bench_gateway_restart.py [--requests 20000] [--rounds 3]
        [--profile rebuild.prof]
"""

from __future__ import annotations

import argparse
import cProfile
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_venue_restart import Bench  # noqa: E402

from gateway.order_router import OrderRouter  # noqa: E402
from gateway.order_setup import risk_engine  # noqa: E402
from gateway.order_stream import ORDER_FLOW, OrderStream  # noqa: E402
from tickdb.config import load_config  # noqa: E402
from tickerplant.publisher import Publisher  # noqa: E402
from tickerplant.subscriber import Subscriber  # noqa: E402


def raw(address: str) -> tuple[float, float]:
    """Wall and CPU seconds to read the order flow."""
    started, cpu = time.perf_counter(), time.process_time()
    with Subscriber(address, tables=ORDER_FLOW, start="journal", timeout_s=60) as sub:
        target = sub.hello.seq
        while sub.poll(0.05) is not None or sub.last_seq < target or not sub.live:
            pass
    return time.perf_counter() - started, time.process_time() - cpu


def rebuild(address: str, profile: Path | None = None) -> tuple[float, float, int]:
    """Wall and CPU seconds to ready, and the orders the rebuilt router knows."""
    started, cpu = time.perf_counter(), time.process_time()
    with Publisher(address) as pub:
        router = OrderRouter(risk_engine(load_config(None)), pub)
        stream = OrderStream(router, address, timeout_s=60)
        if profile is None:
            stream.start()
            stream.wait_ready(600)
        else:
            # On this thread, so that cProfile sees it; stopped once ready.
            threading.Thread(target=_stop_when_ready, args=(stream,), daemon=True).start()
            profiler = cProfile.Profile()
            profiler.runcall(stream._run_flow)
            profiler.dump_stats(profile)
        took, used = time.perf_counter() - started, time.process_time() - cpu
        orders = len(router.orders())
        stream.close()
    return took, used, orders


def _stop_when_ready(stream: OrderStream) -> None:
    stream.wait_ready(600)
    stream._stop.set()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", type=Path)
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-gateway-restart-") as tmp:
        bench = Bench(Path(tmp), 0)
        try:
            started = time.perf_counter()
            bench.fill_the_day(opts.requests)
            address = bench.address(bench.tp)
            with Publisher(address) as pub:
                seq = pub.hello.seq
            print(
                f"day: {opts.requests:,} order requests, journal at seq {seq:,} "
                f"({time.perf_counter() - started:.0f} s to fill)"
            )
            times: dict[str, list[tuple[float, float]]] = {"raw": [], "rebuild": []}
            orders = 0
            for _ in range(opts.rounds):
                times["raw"].append(raw(address))
                took, used, orders = rebuild(address)
                times["rebuild"].append((took, used))
            print(f"rebuilt {orders:,} orders; median of {opts.rounds}, under load")
            base = [statistics.median(v[i] for v in times["raw"]) for i in (0, 1)]
            for kind, values in times.items():
                for i, what in enumerate(("wall s", "CPU s ")):
                    median = statistics.median(v[i] for v in values)
                    runs = ", ".join(f"{v[i]:.2f}" for v in values)
                    print(
                        f"  {kind:8} {what} {median:7.2f}  ratio to raw {median / base[i]:5.2f}"
                        f"  [{runs}]"
                    )
            if opts.profile is not None:
                took, _, _ = rebuild(address, opts.profile)
                print(f"profiled rebuild: {took:.2f} s -> {opts.profile}")
        finally:
            bench.tp.stop()
            bench.empty_tp.stop()


if __name__ == "__main__":
    main()
