"""Chaos soak: a ``tickdb up`` stack under load while its components are killed and frozen.

The stack is ``tickdb up``'s own (``tickdb.stack.Stack``, supervised as ``up`` does):
a tickerplant pair (``--tp-standby``, sync replication), two RDB and two HDB replicas, a
venue with its hot standby, two active-active gateways. The demo feed publishes throughout
(given both tickerplant nodes); one client streams orders (``tickdb.Orders`` given both
gateways), ``--clients`` query without pause (``tickdb.Client`` given both) and a probe
publisher publishes a small batch and waits for its acknowledgement, again and again. Before
the chaos a day is rolled, so the HDB replicas serve a day too.

Every ``--every`` seconds (give or take half), once the stack is whole again (every
component ready, every replica current, each pair primary + standby, the tickerplant
standby attached, every kind of request answered), a random target is hit: SIGKILLed
(``--kill-share`` of the time; the supervisor restarts it) or SIGSTOPped for ``--stop-s``
seconds, then continued. Measured
per hit: from the signal to the first success of a request that started after it, on the
path that replaces the victim (the target's probes: a query for a replica, an order for
the venue, both for a gateway, an acknowledged publish and an order for a tickerplant node).

At the end, with the load stopped and the stack quiet, it checks (``chaos_checks``) and
prints: journal rows equal RDB and HDB rows exactly; every acknowledged order's events
appear exactly once; the venue pair's books are equal; client-visible query errors are 0;
failover times p50/p99/max per target and action. Exit code 1 if a check fails.

Targets are a list (``TARGETS``): each names the components it may hit now and the requests
that tell its failover is over. The nodes of a pair are picked by their role now (their
lease's holder), not the one they started in: ``tp-primary`` is whichever tickerplant node
holds the lease. Targets are hit in rounds, each in a random order, and a round begun before
``--minutes`` is over is finished: every target is hit at least once and as often as the
others.

    .venv/bin/python scripts/chaos.py [--minutes 5] [--every 3] [--seed 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts"), str(ROOT / "tests")]

import zmq  # noqa: E402
from chaos_checks import ROW_TABLES, check_books, check_orders, check_rows, journal  # noqa: E402
from chaos_load import ACCOUNT, Load  # noqa: E402
from chaos_report import report  # noqa: E402
from chaos_targets import TARGETS, Target  # noqa: E402
from failover_probe import FlowProbe, GatewayProbe  # noqa: E402
from support.harness import free_port_pair  # noqa: E402
from waits import wait_for  # noqa: E402

from gateway.client import Client, GatewayError  # noqa: E402
from queries.service_client import QueryClient  # noqa: E402
from tickdb.config import load_config  # noqa: E402
from tickdb.launch import Launched, launch  # noqa: E402
from tickdb.stack import Stack  # noqa: E402
from tickdb.supervise import Supervised  # noqa: E402
from tickerplant.discovery import (  # noqa: E402
    TickerplantRefused,
    TickerplantUnavailable,
    answer,
    request,
)
from tickerplant.failover_client import addresses_of, find_primary  # noqa: E402
from tickerplant.protocol import ROLL, STATS  # noqa: E402

CONFIG = """
[tickerplant]
address = "tcp://127.0.0.1:{tp_port}"
publish_address = "tcp://127.0.0.1:0"
replay_address = "tcp://127.0.0.1:0"
kdb_port = 0
heartbeat_ms = 200

[replication]
address = "tcp://127.0.0.1:0"
lease_ttl_ms = 1000
# A standby starved on a loaded machine is not dropped at once (it stays eligible).
standby_timeout_ms = 2000

[rdb]
address = "tcp://127.0.0.1:0"

[hdb]
address = "tcp://127.0.0.1:0"

[gateway]
port = 0
kdb_port = 0
order_port = "tcp://127.0.0.1:0"
refresh_s = 0.2
client_queries = 8  # the load's query clients and a probe, all from 127.0.0.1

[stack]
restart_backoff_s = {backoff}
restart_backoff_max_s = {backoff_max}
restart_reset_s = 5.0

[risk.defaults]
max_order_qty = 10000
max_open_orders = 0
max_open_orders_per_sym = 0
duplicate_window_s = 0
max_messages_per_s = 0
price_collar_pct = 0
max_fills_per_window = 0

[risk.accounts.CHAOS]
"""


class Chaos:
    def __init__(self, workdir: Path, rate: int, restart_backoff_s: float = 0.1) -> None:
        self.workdir = workdir
        path = workdir / "chaos.toml"
        backoff_max = max(1.0, restart_backoff_s)
        path.write_text(
            CONFIG.replace("{backoff}", str(restart_backoff_s))
            .replace("{backoff_max}", str(backoff_max))
            .replace("{tp_port}", str(free_port_pair()))
        )
        cfg = load_config(path, workdir / "data")
        self.stack = Stack(
            cfg,
            path,
            1,
            demo=False,
            demo_rate=rate,
            replicas=2,
            venue_standby=True,
            gateways=2,
            tp_standby=True,
        )
        self.run_dir = self.stack.run_dir
        self.rate = rate
        self.load: Load | None = None
        self.probe: GatewayProbe | None = None  # set for the failover benchmark's gateway kills
        self.tp_probe: FlowProbe | None = None  # fired at a tickerplant node's kill
        self.venue_probe: FlowProbe | None = None  # fired at a venue's kill
        self.feed: Launched | None = None
        self.frozen: set[int] = set()  # process groups SIGSTOPped now
        self._stop = threading.Event()
        self._supervising = threading.Thread(target=self._supervise, daemon=True)

    # -- the stack -----------------------------------------------------------------------
    def start(self) -> None:
        self.stack.start()
        self._supervising.start()
        self.feed = launch(
            ["feed", "--demo", "--address", self.tp_address, "--rate", str(self.rate)],
            name="feed",
            log_path=self.stack.log_dir / "feed.log",
        )

    def _supervise(self) -> None:
        while not self._stop.wait(0.05):
            self.stack.supervisor.check()  # it logs each restart

    def components(self) -> list[Supervised]:
        return list(self.stack.supervisor.components)

    def component(self, name: str) -> Supervised:
        return next(c for c in self.components() if c.name == name)

    @property
    def tp_address(self) -> str:
        """Both nodes of the tickerplant pair, comma-separated (clients find the primary)."""
        return self.stack.tp_address

    def tp_roles(self) -> dict[str, str]:
        """Each tickerplant node's role now, as the pair's lease says."""
        return {
            c.name: c.live_role()[0] for c in self.components() if c.name.startswith("tickerplant")
        }

    def tp_attached(self) -> bool:
        """Does the tickerplant primary count its standby in (caught up, eligible)?"""
        ctx = zmq.Context()
        try:
            address, _ = find_primary(ctx, addresses_of(self.tp_address), 5.0)
            reply = answer(request(ctx, address, [STATS], 5.0), address)
            return bool(json.loads(reply).get("standby_attached"))
        except (TickerplantUnavailable, TickerplantRefused):
            return False
        finally:
            ctx.term()

    def addresses(self, prefix: str) -> list[str]:
        """The query addresses of the replicas named ``prefix...``: the ones their first
        run bound, which every restart binds again."""
        return [
            str(c.pinned or c.launched.info["address"])
            for c in self.components()
            if c.name.startswith(prefix)
        ]

    def venue_roles(self) -> dict[str, str]:
        roles = {}
        for c in self.components():
            if c.name.startswith("venue-"):
                try:
                    roles[c.name] = json.loads((self.run_dir / f"{c.name}.role.json").read_text())[
                        "role"
                    ]
                except (OSError, ValueError, KeyError):
                    roles[c.name] = ""
        return roles

    def roll(self) -> None:
        """End the day (the HDB replicas then serve it) and wait for the RDBs' handover."""
        ctx = zmq.Context()
        try:
            primary, _ = find_primary(ctx, addresses_of(self.tp_address), 10.0)
            answer(request(ctx, primary, [ROLL], 10.0), primary)
        finally:
            ctx.term()
        for address in self.addresses("rdb-"):
            with QueryClient(address, timeout_s=10) as client:

                def handed_over(c: QueryClient = client) -> bool:
                    return len(c.info()["dates"]) == 1

                wait_for(handed_over, 120, f"{address} handed over")

    def broken(self, since: float) -> str:
        """What is not whole yet ("" when all is): every component ready, every replica
        current in both gateways' eyes, each pair a primary and a standby (the tickerplant
        standby attached), and every kind of request answered since ``since``."""
        for c in self.components():
            if c.restart_at is not None or not c.launched.alive() or not c.launched.ready():
                return f"{c.name} not ready"
        if sorted(roles := self.venue_roles().values()) != ["primary", "standby"]:
            return f"venue roles {sorted(roles)}"
        if sorted(roles := self.tp_roles().values()) != ["primary", "standby"]:
            return f"tickerplant roles {sorted(roles)}"
        if not self.tp_attached():
            return "the tickerplant standby is not attached"
        for url in self.stack.gateway_urls():
            try:
                with Client(url, timeout_s=5) as client:
                    health = client.health()
            except GatewayError as exc:
                return f"gateway {url}: {exc}"
            replicas = [r for b in health.get("backends", []) for r in b["replicas"]]
            down = [r["name"] for r in replicas if not (r["up"] and r["current"])]
            if not replicas or down:
                return f"gateway {url}: replicas not current: {down}"
        assert self.load is not None
        for kind in ("query", "order", "publish"):
            if self.load.log.first_ok(kind, since) is None:
                last = (self.load.log.errors or self.load.order_failures or [""])[-1]
                return f"no {kind} answered yet (last error: {last})"
        return ""

    def wait_whole(self, timeout_s: float = 180.0) -> None:
        since = time.monotonic()
        deadline = since + timeout_s
        while why := self.broken(since):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the stack is not whole again after {timeout_s} s: {why}")
            time.sleep(0.05)

    def close(self) -> None:
        for pgid in self.frozen:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGCONT)
        self._stop.set()
        self._supervising.join(10)
        if self.feed is not None:
            self.feed.stop()
        self.stack.stop()

    # -- the chaos -----------------------------------------------------------------------
    def hit(
        self, target: Target, rng: random.Random, kill_share: float, stop_s: float
    ) -> dict[str, Any]:
        victim = rng.choice(target.pick(self))
        pgid = self.component(victim).launched.pid
        action = "kill" if rng.random() < kill_share else "stop"
        assert self.load is not None
        probe: GatewayProbe | FlowProbe | None = None
        if action == "kill":
            probe = self.probe if target.kind == "gateway" else None
            probe = self.tp_probe if target.kind.startswith("tp-") else probe
            probe = self.venue_probe if target.kind == "venue" else probe
        if probe is not None:
            probe.arm(victim)
        at, wall = time.monotonic(), time.time()
        probe_ms: dict[str, float] = {}
        if action == "kill":
            os.killpg(pgid, signal.SIGKILL)
            if probe is not None:
                probe_ms = probe.fire(at)
        else:
            os.killpg(pgid, signal.SIGSTOP)
            self.frozen.add(pgid)
            time.sleep(stop_s)  # the point: a process frozen this long, then resumed
            os.killpg(pgid, signal.SIGCONT)
            self.frozen.discard(pgid)
        log = self.load.log
        try:
            wait_for(lambda: all(log.first_ok(p, at) for p in target.probes), 60, "a success")
            each = {p: float(log.first_ok(p, at) or at) - at for p in target.probes}
            took = max(each.values())
        except TimeoutError:
            took = float("inf")
            each = {p: took for p in target.probes}
        back = self.back(victim, pgid, at) if action == "kill" else 0.0
        takeover = self.takeover(victim, wall) if target.kind == "venue" else None
        print(
            f"  {action} {victim}: first success after {took * 1000:.0f} ms"
            + "".join(f", {k} sent at the kill {v:.0f} ms" for k, v in sorted(probe_ms.items()))
            + (f", back (restarted, ready) after {back * 1000:.0f} ms" if back else ""),
            flush=True,
        )
        return {
            "kind": target.kind,
            "action": action,
            "victim": victim,
            "ms": took * 1000,
            "load_ms": {p: t * 1000 for p, t in each.items()},  # per kind of request
            "probe_ms": probe_ms,  # requests sent at the kill (``failover_probe``)
            "back_ms": back * 1000,
            "takeover_ms": takeover,
        }

    def takeover(self, victim: str, wall: float) -> float | None:
        """A venue kill: from it to the new primary's first output (its role file, same
        host clock), the takeover alone, without the order's round trip."""
        for name in self.venue_roles():
            if name == victim:
                continue
            try:
                role = json.loads((self.run_dir / f"{name}.role.json").read_text())
            except (OSError, ValueError):
                return None
            first = role.get("first_output_at")
            return (float(first) - wall) * 1000 if first and first >= wall else None
        return None

    def back(self, name: str, old_pid: int, at: float) -> float:
        """From ``at`` until the supervisor's restart of ``name`` is ready (a venue: its
        journal replayed, waiting as the standby)."""

        def ready() -> bool:
            c = self.component(name)
            launched = c.launched
            return launched.pid != old_pid and c.restart_at is None and launched.ready()

        try:
            wait_for(ready, 120, f"{name} back")
        except TimeoutError:
            return float("inf")
        return time.monotonic() - at

    def run(
        self, seconds: float, every: float, kill_share: float, stop_s: float, seed: int
    ) -> list[dict[str, Any]]:
        rng = random.Random(seed)
        hits: list[dict[str, Any]] = []
        end = time.monotonic() + seconds
        targets: list[Target] = []
        # Whole rounds: a round begun before the end is finished, so every target is hit
        # as often, at least once, however long the restarts take.
        while time.monotonic() < end or targets:
            if not targets:  # rounds in a random order: every target is hit as often
                targets = rng.sample(TARGETS, len(TARGETS))
            self.wait_whole()
            time.sleep(rng.uniform(0.5, 1.5) * every)
            hits.append(self.hit(targets.pop(), rng, kill_share, stop_s))
        self.wait_whole()
        return hits


def settle(chaos: Chaos, seen_today: dict[str, int]) -> None:
    """Until every RDB replica holds the journal's rows of today (they are live again)."""
    from chaos_checks import count

    def caught_up() -> bool:
        return all(
            count(a, t) == seen_today[t] for a in chaos.addresses("rdb-") for t in ROW_TABLES
        )

    with contextlib.suppress(TimeoutError):
        wait_for(caught_up, 60, "the RDB replicas caught up")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--every", type=float, default=3.0, help="seconds between hits")
    parser.add_argument("--kill-share", type=float, default=0.7, help="kills among hits")
    parser.add_argument("--stop-s", type=float, default=2.0, help="how long a freeze lasts")
    parser.add_argument("--clients", type=int, default=2, help="query clients")
    parser.add_argument("--rate", type=int, default=500, help="demo feed rows/s")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="chaos-") as tmp:
        chaos = Chaos(Path(tmp), args.rate)
        try:
            chaos.start()
            print(f"stack up: gateways {', '.join(chaos.stack.gateway_urls())}", flush=True)
            wait_for(lambda: count_rows(chaos) > 0, 60, "the demo feed's first rows")
            chaos.roll()
            ports = [
                str(chaos.component(n).launched.info["order_port"])
                for n in ("gateway", "gateway-1")
            ]
            load = chaos.load = Load(
                chaos.stack.gateway_urls(), ports, args.clients, chaos.tp_address
            )
            chaos.tp_probe = FlowProbe(chaos.tp_address, ports)
            chaos.venue_probe = FlowProbe(chaos.tp_address, ports, ("order",))
            load.start()
            try:
                hits = chaos.run(
                    args.minutes * 60, args.every, args.kill_share, args.stop_s, args.seed
                )
            finally:
                load.stop()
                chaos.tp_probe.close()
                chaos.venue_probe.close()
                if chaos.feed is not None:
                    chaos.feed.stop()
            seen = journal(chaos.tp_address, [*ROW_TABLES, "order", "fill"])
            settle(chaos, seen["today"])
            problems = check_rows(
                seen, chaos.addresses("rdb-"), chaos.addresses("hdb-"), chaos.stack.gateway_urls()
            )
            problems += check_orders(
                seen, ACCOUNT, load.acked + chaos.tp_probe.acked + chaos.venue_probe.acked
            )
            pair = {
                c.name: c.launched.pid for c in chaos.components() if c.name.startswith("venue-")
            }
            problems += check_books(chaos.run_dir, pair)
            result = report(hits, problems, load)
        finally:
            chaos.close()
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 1 if result["problems"] else 0


def count_rows(chaos: Chaos) -> int:
    with Client(chaos.stack.gateway_urls(), timeout_s=10) as client:
        return int(client.query("SELECT count(*) AS n FROM trade").column(0)[0].as_py())


if __name__ == "__main__":
    from stop_on_term import stop_on_term

    stop_on_term()
    sys.exit(main())
