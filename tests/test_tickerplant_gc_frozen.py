"""A tickerplant keeps what it built at start out of the cycle collector's full collections.

Without it, the first full collection under load walked the whole start-up heap (imports,
the recovered ledger), ~45 ms of the main thread (``tickdb.gc_pauses``). STATS reports how
many objects are frozen; a tickerplant pair's nodes are checked in ``test_tp_standby.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import zmq
from support.harness import start_tp

from tickerplant.discovery import request
from tickerplant.protocol import STATS
from tickerplant.publisher import Publisher


def test_a_tickerplant_runs_with_its_start_up_heap_frozen(tmp_path: Path) -> None:
    tp = start_tp(tmp_path)
    ctx = zmq.Context()
    try:
        with Publisher(tp.info["address"]) as pub:  # something to serve, first
            pub.publish("trade", {"sym": "IBM", "price": 2.0, "size": 7})
        stats = json.loads(request(ctx, tp.info["address"], [STATS], 5)[1])
        # The imports alone are tens of thousands of objects; without a freeze, none.
        assert stats["gc_frozen"] > 10_000, stats
    finally:
        ctx.term()
        tp.stop()
