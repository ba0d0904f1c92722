"""What the console's operations view shows: every component with its role, lag, heartbeat
and end-of-day state, the tickerplant's counters and journal size, the gateway's own
counters, and recent errors, in one reply (``GET /console/ops``)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import zmq

from gateway.backends import BackendState
from gateway.console.recent import RecentErrors, age_s
from gateway.metrics import GatewayMetrics
from gateway.router import Router
from tickerplant.discovery import TickerplantRefused, TickerplantUnavailable, answer, request

STATS = b"STATS"  # the tickerplant's counters request (tickerplant.server)


def backend_row(state: BackendState, now: float) -> dict[str, Any]:
    info = state.info
    row: dict[str, Any] = {
        "name": state.name,
        "role": state.role,
        "up": state.up,
        "error": state.error,
        "shard": str(state.shard) if state.shard else None,
        "last_seen_s": round(now - state.ok_at, 3) if state.ok_at else None,
    }
    if info is None:
        return row
    lag = None if info.seq is None or info.tp_seq is None else info.tp_seq - info.seq
    row.update(
        {
            "date": info.date.isoformat() if info.date else None,
            "dates": sorted({d.isoformat() for t in info.tables.values() for d in t.dates}),
            # The RDB's end-of-day state per date (live, writing, written, ...).
            "states": {d.isoformat(): s for d, s in (info.states or {}).items()},
            "seq": info.seq,
            "seq_lag": lag,
            "heartbeat_age_s": round(now - info.last_heartbeat, 3) if info.last_heartbeat else None,
            "rows": {name: t.rows for name, t in info.tables.items()},
            "extra": {k: v for k, v in info.extra.items() if _small(v)},
        }
    )
    return row


def _small(value: Any) -> bool:
    return len(json.dumps(value, default=str)) <= 500


_NO_STATS = (TickerplantUnavailable, TickerplantRefused, zmq.ZMQError, IndexError, ValueError)


def tickerplant_stats(ctx: zmq.Context, address: str | None) -> dict[str, Any]:
    """The tickerplant's STATS, or why they are not to be had."""
    if not address:
        return {"address": None, "up": False, "error": "this gateway has no tickerplant (--tp)"}
    started = time.monotonic()
    try:
        # With [curve] on, as the gateway's component identity (curve_links).
        stats = json.loads(answer(request(ctx, address, [STATS], 1.0), address))
    except _NO_STATS as exc:
        return {"address": address, "up": False, "error": str(exc)}
    return {
        "address": address,
        "up": True,
        "rtt_ms": round((time.monotonic() - started) * 1000, 2),
        "stats": stats,
    }


def gateway_counters(metrics: GatewayMetrics) -> list[dict[str, Any]]:
    """The gateway's counters and gauges (histogram buckets left out: the sum and count
    say enough here)."""
    out = []
    for family in metrics.registry.collect():
        for sample in family.samples:
            if sample.name.endswith(("_bucket", "_created")):
                continue
            out.append({"name": sample.name, "labels": sample.labels, "value": sample.value})
    return out


def ops_status(
    router: Router,
    metrics: GatewayMetrics,
    ctx: zmq.Context,
    tp_address: str | None,
    recent: RecentErrors,
    venues: Callable[[float], list[dict[str, Any]]] | None = None,
) -> dict[str, Any]:
    """``venues``: the matching venues' rows (``gateway.venue_activity``) when this gateway
    takes orders."""
    now = time.time()
    backends = [backend_row(s, now) for s in router.topology.states]
    errors = [{**e, "age_s": age_s(e)} for e in recent.recent()]
    return {
        "time": now,
        "gateway": {"up": True, "counters": gateway_counters(metrics)},
        "backends": backends,
        "venues": venues(now) if venues is not None else [],
        "tickerplant": tickerplant_stats(ctx, tp_address),
        "errors": errors,
    }
