"""The venue and gateway scenarios of ``bench_failover.py``, on a ``tickdb up`` stack.

The stack and the load are the chaos soak's (``scripts/chaos.py``): a tickerplant, two RDB
and two HDB replicas, a venue with its hot standby, two active-active gateways, the demo
feed, one client streaming orders (``tickdb.Orders`` given both gateways) and ``clients``
querying (``tickdb.Client`` given both, each starting on one of them in turn, as an
active-active deployment spreads its clients). Each kill SIGKILLs the scenario's victim
once the stack is whole again (every component ready, the pair primary + standby, both kinds
of request answered): for ``venue`` the primary of the pair, for ``gateway`` the gateway the
first query client uses; a probe also sends a query and an order at that moment from
clients that were using it (``failover_probe``).

Measured per kill, from the SIGKILL: *first ok*, until the first request started after it
succeeds on the new path (an order answered for a venue; a query and an order for a
gateway, the later of the two); *back*, until the supervisor's restart of the victim is
ready again (a venue: its journal replayed, waiting as the standby), with the journal's
length then (its sequence number), since that replay grows with the day.

Baseline, in the same run before the kills: the same load's order round trip and query
latency.
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import zmq
from chaos import TARGETS, Chaos, wait_for
from chaos_load import Load
from chaos_report import pct
from failover_probe import FlowProbe, GatewayProbe

from tickerplant.failover_client import addresses_of, find_primary


def journal_seq(chaos: Chaos) -> int:
    ctx = zmq.Context()
    try:
        # The tickerplant is a pair: the primary's seq.
        return int(find_primary(ctx, addresses_of(chaos.tp_address), 10.0)[1].seq)
    finally:
        ctx.term()


def bare_replay(chaos: Chaos) -> dict[str, float]:
    """The raw part of a restarted venue's start: a bare subscriber replaying the tables a
    venue of a pair takes from the start of the journal, applying nothing."""
    from tickerplant.subscriber import Subscriber, Update

    started = time.monotonic()
    records = rows = 0
    tables = ["order_request", "order", "fill"]
    with Subscriber(chaos.tp_address, tables=tables, start="journal") as sub:
        while (message := sub.poll(0)) is not None:
            records += 1
            rows += message.data.num_rows if isinstance(message, Update) else 0
    return {"s": time.monotonic() - started, "records": records, "rows": rows}


def baseline(load: Load, ops: int) -> dict[str, dict[str, float]]:
    start = time.monotonic()
    goal = {k: load.log.count(k) + ops for k in ("query", "order")}
    wait_for(lambda: all(load.log.count(k) >= n for k, n in goal.items()), 300, "baseline")
    result = {}
    for kind in ("query", "order"):
        ms = [(o.ended - o.started) * 1000 for o in load.log.since(start) if o.kind == kind]
        result[kind] = {"p50": statistics.median(ms), "p99": pct(ms, 0.99), "n": len(ms)}
    return result


def run_stack_scenarios(
    kinds: list[str],
    kills: int,
    clients: int,
    rate: int,
    seed: int = 1,
    restart_backoff_s: float = 0.1,
    query_rate: float = 0.0,
) -> dict[str, Any]:
    targets = {t.kind: t for t in TARGETS}
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="failover-") as tmp:
        chaos = Chaos(Path(tmp), rate, restart_backoff_s)
        try:
            chaos.start()
            ports = [
                str(chaos.component(n).launched.info["order_port"])
                for n in ("gateway", "gateway-1")
            ]
            urls = chaos.stack.gateway_urls()
            load = chaos.load = Load(urls, ports, clients, chaos.tp_address, query_rate)
            if "gateway" in kinds:
                names = ("gateway", "gateway-1")
                info = {n: chaos.component(n).launched.info for n in names}
                chaos.probe = GatewayProbe(
                    {n: str(info[n]["url"]) for n in names},
                    {n: str(info[n]["order_port"]) for n in names},
                )
            if "venue" in kinds:
                chaos.venue_probe = FlowProbe(chaos.tp_address, ports, ("order",))
            load.start()
            try:
                chaos.wait_whole()
                base = baseline(load, 300)
                runs: dict[str, list[dict[str, Any]]] = {}
                for kind in kinds:
                    runs[kind] = []
                    for _ in range(kills):
                        chaos.wait_whole()
                        seq = journal_seq(chaos)
                        hit = chaos.hit(targets[kind], rng, kill_share=1.0, stop_s=0.0)
                        runs[kind].append({**hit, "journal_seq": seq})
                replay = bare_replay(chaos) if "venue" in kinds else None
            finally:
                load.stop()
                if chaos.probe is not None:
                    chaos.probe.close()
                if chaos.venue_probe is not None:
                    chaos.venue_probe.close()
            errors = [e for e in load.log.errors if e.startswith("query")]
            return {
                "replay": replay,
                "base": base,
                "runs": runs,
                "query_errors": errors,
                "orders_not_acked": len(load.order_failures),
            }
        finally:
            chaos.close()


def report_stack(result: dict[str, Any]) -> None:
    base = result["base"]
    for kind in ("order", "query"):
        b = base[kind]
        print(f"stack baseline {kind}: p50 {b['p50']:.1f} ms, p99 {b['p99']:.1f} ms ({b['n']:.0f})")
    print(
        f"client-visible query errors: {len(result['query_errors'])}; orders not acknowledged: "
        f"{result['orders_not_acked']}"
    )
    for kind, runs in result["runs"].items():
        first = [r["ms"] for r in runs]
        back = [r["back_ms"] for r in runs]
        probe = base["order"] if kind == "venue" else base["query"]
        print(f"{kind} killed {len(runs)} times")
        takeovers = [r["takeover_ms"] for r in runs if r.get("takeover_ms") is not None]
        measured = [("first ok", first)]
        if kind == "gateway":
            # The load's clients: each kind alone (a query includes a whole earlier one).
            for probe_kind in ("order", "query"):
                measured.append((f"  {probe_kind}", [r["load_ms"][probe_kind] for r in runs]))
        if any(r.get("probe_ms") for r in runs):
            # Requests sent at the kill by clients that were using the victim
            # (``failover_probe``): the failover itself, a missing answer as infinite.
            sent = [r["probe_ms"] for r in runs]
            inf = float("inf")
            asked = ("order", "query") if kind == "gateway" else ("order",)
            measured.append(("at kill", [max(p.get(k, inf) for k in asked) for p in sent]))
            for probe_kind in (*asked, "refused") if kind == "gateway" else ():
                measured.append((f"  {probe_kind}", [p.get(probe_kind, inf) for p in sent]))
        measured.append(("back", back))
        if takeovers:
            measured.append(("takeover", takeovers))
        for label, values in measured:
            p50, p99, top = statistics.median(values), pct(values, 0.99), max(values)
            print(
                f"  {label:9s} p50 {p50:7.1f} ms  p99 {p99:7.1f} ms  max {top:7.1f} ms"
                + (f"  (p99 {p99 / probe['p99']:.1f}x baseline p99)" if label == "first ok" else "")
            )
        seqs = [r["journal_seq"] for r in runs]
        print(f"  journal at the kills: seq {min(seqs)} .. {max(seqs)}")
        replay = result.get("replay")
        if kind == "venue" and replay:
            print(
                f"  a bare subscriber replaying the venue's tables at the end: "
                f"{replay['s'] * 1000:.0f} ms for {replay['records']:.0f} records "
                f"({replay['rows']:.0f} rows)"
            )
        if len(runs) >= 4:
            early, late = back[: len(runs) // 2], back[len(runs) // 2 :]
            print(
                f"  back, first half of the kills p50 {statistics.median(early):.0f} ms, "
                f"second half {statistics.median(late):.0f} ms"
            )
