"""A gateway's order-path rebuild late in the day, against reading the same journal raw,
measured in the same run.

A tickerplant and a venue (shard 0/1) take ``--requests`` order requests, one record each as
a gateway publishes them (``bench_venue_restart.requests``: new orders on 20 syms and 3
accounts that trade and rest, a fifth canceled or replaced); the venue's ``order`` and
``fill`` rows are journaled as it goes. Then, alternately:

- ``raw``: a subscriber reads ``order_request``, ``order``, ``fill`` and ``risk_admin`` from
  the start of the journal and drops them (the floor: fetching and receiving alone);
- ``rebuild``: an ``OrderStream`` rebuilds an ``OrderRouter`` from the same flow until it is
  ready to take requests (``gateway/order_setup.py``'s wait);
- ``snapshot``: the same, from the newest order-state snapshot (``gateway.order_snapshot``)
  and the journal after it. The snapshots are written first, once, by the gateway's
  snapshot writer (``gateway.order_snapshotter.run``, here on this thread) every
  ``--every`` order-flow records over the day and ``--tail`` records before its end: the
  restart replays those, as one some time after the last snapshot would (half of
  ``--every`` on average).

Wall seconds to ready and this process's CPU seconds (all its threads: what the load of
other processes changes least), medians over ``--rounds``; ratios to ``raw``. The first
round checks that the state restored from the snapshot equals the full rebuild's
(``order_snapshot.dump``). ``--profile FILE`` writes a cProfile of one more rebuild (run on
this thread) to FILE.

    .venv/bin/python scripts/bench_gateway_restart.py [--requests 20000] [--every 20000]
        [--tail 10000] [--rounds 3] [--profile rebuild.prof]
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_venue_restart import Bench  # noqa: E402

from gateway import order_snapshotter  # noqa: E402
from gateway.order_router import OrderRouter  # noqa: E402
from gateway.order_snapshot import dump, snapshots_for  # noqa: E402
from gateway.order_stream import ORDER_FLOW, OrderStream  # noqa: E402
from orders.risk import risk_engine  # noqa: E402
from orders.snapshot import SnapshotSettings  # noqa: E402
from orders.snapshot_file import newest_first  # noqa: E402
from tickdb.config import Config, load_config  # noqa: E402
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


def snapshot_config(directory: Path, every: int) -> Config:
    cfg = load_config(None)
    orders = dataclasses.replace(
        cfg.orders,
        snapshot_dir=str(directory),
        gateway_snapshot_every_records=every,
        gateway_snapshot_every_s=0,
    )
    return dataclasses.replace(cfg, orders=orders)


def write_snapshots(address: str, cfg: Config, tail: int) -> None:
    """The gateway's snapshot writer over the day but its last ``tail`` seqs (on this
    thread)."""
    with Publisher(address) as pub:
        end = max(1, pub.hello.seq - tail)
    started, cpu = time.perf_counter(), time.process_time()
    snapshots = order_snapshotter.run(cfg, address, threading.Event(), 60, until_seq=end)
    took, used = time.perf_counter() - started, time.process_time() - cpu
    assert snapshots is not None
    seq, path = next(newest_first(snapshots.settings.directory, snapshots.key))
    print(
        f"snapshot writer: {snapshots.written} snapshots over the day in {took:.1f} s "
        f"({used:.1f} CPU s); the newest at seq {seq:,}, {path.stat().st_size / 1e6:.1f} MB; "
        f"its writer paused {snapshots.paused_ms:.1f} ms for it (capture and fork)"
    )


def rebuild(
    address: str,
    profile: Path | None = None,
    snapshots: Config | None = None,
    check: dict[str, Any] | None = None,
) -> tuple[float, float, int]:
    """Wall and CPU seconds to ready, and the orders the rebuilt router knows; from the
    newest snapshot with ``snapshots`` (the config naming them). ``check``: the dump of
    the state is put there under the case's name."""
    started, cpu = time.perf_counter(), time.process_time()
    with Publisher(address) as pub:
        cfg = load_config(None) if snapshots is None else snapshots
        router = OrderRouter(risk_engine(cfg), pub)
        settings = SnapshotSettings.for_gateway(cfg)
        found = None if settings is None else snapshots_for(settings, router.risk)
        stream = OrderStream(router, address, timeout_s=60, snapshots=found)
        if found is not None and not stream.restored_seq:
            raise RuntimeError("no snapshot restored")
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
        if check is not None:
            check["snapshot" if found else "rebuild"] = dump(stream.applier)
    return took, used, orders


def _stop_when_ready(stream: OrderStream) -> None:
    stream.wait_ready(600)
    stream._stop.set()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--every", type=int, default=20_000, help="records per snapshot")
    parser.add_argument("--tail", type=int, default=10_000, help="seqs after the last one")
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
            cfg = snapshot_config(Path(tmp) / "gateway-snapshots", opts.every)
            write_snapshots(address, cfg, opts.tail)
            times: dict[str, list[tuple[float, float]]] = {"raw": [], "rebuild": [], "snapshot": []}
            orders = 0
            check: dict[str, Any] = {}
            for round_ in range(opts.rounds):
                times["raw"].append(raw(address))
                took, used, orders = rebuild(address, check=check if not round_ else None)
                times["rebuild"].append((took, used))
                took, used, _ = rebuild(address, snapshots=cfg, check=check if not round_ else None)
                times["snapshot"].append((took, used))
            if check["snapshot"] != check["rebuild"]:
                raise SystemExit("the state restored from the snapshot is not the rebuilt one")
            print(f"rebuilt {orders:,} orders (from the snapshot: the same state); ", end="")
            print(f"median of {opts.rounds}, under load")
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
            bench.stop()


if __name__ == "__main__":
    from stop_on_term import stop_on_term

    stop_on_term()
    main()
