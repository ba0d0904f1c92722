"""What ``GET /health`` says about each backend and each of its replicas.

Read only from what the topology thread and the part runner keep, never by asking a
backend: the route answers on the event loop.
"""

from __future__ import annotations

import time
from typing import Any

from gateway.backends import BackendState, Replica


def backend_health(state: BackendState) -> dict[str, Any]:
    """One backend (merged from its replicas when it has them), with ``replicas``."""
    return {
        **_process_health(state),
        "replicas": [replica_health(r) for r in state.members()],
    }


def replica_health(replica: Replica) -> dict[str, Any]:
    """One process serving a backend: health, currency and what the gateway sent it."""
    return {
        **_process_health(replica),
        "current": replica.current,
        "suspect": replica.suspect,
        "incarnation": replica.incarnation,
        "outstanding": replica.outstanding,
        "routed": replica.routed,
        "failovers": replica.failovers,
    }


def _process_health(state: Replica) -> dict[str, Any]:
    info = state.info  # None until it first answers
    now = time.time()
    day = None if info is None or info.date is None else info.date.isoformat()
    seq, tp_seq = (None, None) if info is None else (info.seq, info.tp_seq)
    heartbeat = None if info is None else info.last_heartbeat
    lag = None if seq is None or tp_seq is None else tp_seq - seq
    return {
        "name": state.name,
        "role": state.role,
        "up": state.up,
        "error": state.error,
        "shard": state.shard.to_json() if state.shard else None,
        "date": day,
        "seq": seq,
        "tp_seq": tp_seq,
        "seq_lag": lag,
        "last_heartbeat": heartbeat,
        "heartbeat_age_s": round(now - float(heartbeat), 3) if heartbeat else None,
        "last_seen_s": round(now - state.ok_at, 3) if state.ok_at else None,
    }
