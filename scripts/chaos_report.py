"""What ``scripts/chaos.py`` prints and writes at the end: failover times per target and
action (p50/p99/max), the load's counts and client-visible errors, the checks' verdict."""

from __future__ import annotations

import statistics
from typing import Any

from chaos_load import Load


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q * (len(ordered) - 1))))]


def report(hits: list[dict[str, Any]], problems: list[str], load: Load) -> dict[str, Any]:
    times: dict[str, list[float]] = {}
    for h in hits:
        times.setdefault(f"{h['kind']} ({h['action']})", []).append(h["ms"])
        if h.get("probe_ms"):  # fresh requests sent at the kill: the later of them
            times.setdefault(f"{h['kind']} (at kill)", []).append(max(h["probe_ms"].values()))
    print(
        f"{len(hits)} hits; failover: kill or freeze to the first success on the new path"
        " (at kill: requests sent right after the kill, failover_probe)"
    )
    summary = {}
    for key in sorted(times):
        v = times[key]
        summary[key] = {
            "n": len(v),
            "p50": statistics.median(v),
            "p99": pct(v, 0.99),
            "max": max(v),
        }
        print(
            f"  {key:20s} n {len(v):3d}  p50 {summary[key]['p50']:7.1f} ms  p99 "
            f"{summary[key]['p99']:7.1f} ms  max {summary[key]['max']:7.1f} ms"
        )
    query_errors = [e for e in load.log.errors if e.startswith("query")]
    print(f"queries: {load.log.count('query')}, client-visible errors: {len(query_errors)}")
    for e in query_errors[:10]:
        print(f"  {e}")
    print(f"orders: {len(load.acked)} acknowledged, {len(load.order_failures)} not")
    for e in load.order_failures[:5]:
        print(f"  {e}")
    if query_errors:
        problems.append(f"{len(query_errors)} client-visible query errors")
    print("checks: " + ("all passed" if not problems else f"{len(problems)} FAILED"))
    for p in problems:
        print(f"  FAILED: {p}")
    return {
        "hits": hits,
        "failover_ms": summary,
        "queries": load.log.count("query"),
        "query_errors": query_errors,
        "orders_acked": len(load.acked),
        "orders_not_acked": len(load.order_failures),
        "problems": problems,
    }
