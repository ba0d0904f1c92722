"""A venue's restart late in the day: from its snapshot (``orders.snapshot``) against the
full replay of the journal, measured in the same run.

A tickerplant and a venue (shard 0/1, snapshots every ``--every`` inputs) take ``--requests``
order requests, one record each as a gateway publishes them (new orders around one price
on 20 syms and 3 accounts, so they trade and rest, a fifth of them canceled or replaced);
the venue's order and fill rows are journaled as it goes. Once it has answered the last one
it is stopped, and a venue is started again, alternately:

- ``full``: snapshots off, so it replays the whole journal (the raw baseline: what a restart
  cost before snapshots);
- ``snapshot``: from the newest snapshot, then the journal after it;
- ``floor``: a venue on a second, empty tickerplant: the process start alone.

Restart-to-ready is from the launch to its ready file (``catch_up`` done: the journal
replayed and what queued meanwhile applied). Medians over ``--rounds``; ratios to ``full``.

    .venv/bin/python scripts/bench_venue_restart.py [--requests 60000] [--every 10000]
        [--rounds 3]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from waits import wait_for  # noqa: E402

from orders.model import CancelRequest, NewOrder, ReplaceRequest, Side, TimeInForce  # noqa: E402
from orders.rows import request_row  # noqa: E402
from orders.snapshot_file import decode, newest_first  # noqa: E402
from tickdb.launch import Launched, launch  # noqa: E402
from tickerplant.publisher import Publisher  # noqa: E402
from tickerplant.subscriber import Subscriber, Update  # noqa: E402

TP_TOML = """[tickerplant]
address = "tcp://127.0.0.1:0"
publish_address = "tcp://127.0.0.1:0"
replay_address = "tcp://127.0.0.1:0"
kdb_port = 0
"""


def requests(count: int, seed: int = 1) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    sent: list[tuple[str, str, str]] = []
    for i in range(count):
        roll = rng.random()
        if roll < 0.8 or not sent:
            account, sym = f"A{rng.randrange(3)}", f"S{rng.randrange(20):02d}"
            side = rng.choice((Side.BUY, Side.SELL))
            price = round(100 + rng.randint(-8, 8) * 0.01, 2)
            tif = TimeInForce.GTC if rng.random() < 0.7 else TimeInForce.IOC
            req: Any = NewOrder(
                account, sym, f"c{i}", side, rng.choice((1, 5, 10)), price=price, tif=tif
            )
            sent.append((account, sym, f"c{i}"))
        elif roll < 0.9:
            account, sym, clordid = sent.pop(rng.randrange(len(sent)))
            req = CancelRequest(account, sym, f"x{i}", clordid)
        else:
            account, sym, clordid = sent.pop(rng.randrange(len(sent)))
            req = ReplaceRequest(account, sym, f"r{i}", clordid, 20, None)
            sent.append((account, sym, f"r{i}"))
        rows.append(request_row(req))
    return rows


class Bench:
    def __init__(self, workdir: Path, every: int) -> None:
        self.workdir = workdir
        self.snapshots = workdir / "snapshots"
        self.tp = self._tp("tp")
        self.empty_tp = self._tp("tp-empty")
        self.configs = {
            "live": self._config("live", every),
            "snapshot": self._config("snapshot", 10**9),  # reads snapshots, writes none
            "full": self._config("full", 0),
        }
        self.count = 0
        self.venues: list[Launched] = []  # every venue started, stopped at the end however it ends

    def _tp(self, name: str) -> Launched:
        config = self.workdir / f"{name}.toml"
        config.write_text(TP_TOML)
        data = self.workdir / name
        args = ["tp", "--config", str(config), "--data-dir", str(data)]
        return launch(args, name=name, log_path=data / "tp.log", ready_file=data / "ready.json")

    def _config(self, name: str, every: int) -> Path:
        path = self.workdir / f"venue-{name}.toml"
        path.write_text(
            TP_TOML + "[orders]\n"
            f"snapshot_every_inputs = {every}\nsnapshot_every_s = 0\n"
            f'snapshot_dir = "{self.snapshots}"\n'
        )
        return path

    def address(self, tp: Launched) -> str:
        return str(tp.info["address"])

    def venue(self, kind: str, tp: Launched | None = None) -> tuple[Launched, float]:
        self.count += 1
        name = f"venue-{kind}-{self.count}"
        args = ["venue", "--config", str(self.configs["full" if kind == "floor" else kind])]
        args += ["--tp", self.address(tp or self.tp), "--shard", "0/1"]
        started = time.perf_counter()
        proc = launch(
            args,
            name=name,
            log_path=self.workdir / f"{name}.log",
            ready_file=self.workdir / f"{name}.json",
            ready_timeout_s=600,
        )
        self.venues.append(proc)
        return proc, time.perf_counter() - started

    def fill_the_day(self, count: int) -> None:
        live, _ = self.venue("live")
        rows = requests(count)
        with Subscriber(self.address(self.tp), tables=["order"], start="live") as sub:
            with Publisher(self.address(self.tp), timeout_s=60) as pub:
                for row in rows:
                    pub.publish("order_request", row)
                    pub.flush()  # journaled alone, one record, as a gateway's request is
            last = rows[-1]["clordid"]

            def answered() -> bool:
                while (message := sub.poll(0.05)) is not None:
                    if isinstance(message, Update) and last in message.data["clordid"].to_pylist():
                        return True
                return False

            wait_for(answered, 600, "answer to the last request")
        live.stop()

    def stop(self) -> None:
        """Every process this started, whichever are still running."""
        for proc in [*self.venues, self.tp, self.empty_tp]:
            proc.stop()

    def newest_snapshot(self) -> tuple[int, int]:
        """The newest snapshot's seq and the requests it covers."""
        for seq, path in newest_first(self.snapshots, "venue-0-of-1"):
            return seq, int(decode(path.read_bytes())["inputs"])
        return 0, 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=60_000)
    parser.add_argument("--every", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-venue-restart-") as tmp:
        bench = Bench(Path(tmp), opts.every)
        try:
            started = time.perf_counter()
            bench.fill_the_day(opts.requests)
            with Publisher(bench.address(bench.tp)) as pub:
                seq = pub.hello.seq
            at, covered = bench.newest_snapshot()
            print(
                f"day: {opts.requests:,} order requests, journal at seq {seq:,}; newest "
                f"snapshot at seq {at:,}, {opts.requests - covered:,} requests before the end "
                f"({time.perf_counter() - started:.0f} s to fill)"
            )
            times: dict[str, list[float]] = {"full": [], "snapshot": [], "floor": []}
            for _ in range(opts.rounds):
                for kind in times:
                    proc, took = bench.venue(kind, bench.empty_tp if kind == "floor" else None)
                    proc.stop()
                    times[kind].append(took)
            full = statistics.median(times["full"])
            print("restart to ready (s, median of", opts.rounds, "; under load)")
            for kind, values in times.items():
                median = statistics.median(values)
                runs = ", ".join(f"{v:.2f}" for v in values)
                print(f"  {kind:9} {median:7.2f}  ratio to full {median / full:5.2f}  [{runs}]")
        finally:
            bench.stop()


if __name__ == "__main__":
    from stop_on_term import stop_on_term

    stop_on_term()
    main()
