"""A gateway's rebuild applies the replay in runs read together (``_apply_replayed``,
``gateway/replay_rows.py``): the state it rebuilds must equal the state of the same records
applied one by one (``_on_message``, as the live flow applies them), on a real day's journal
(a tickerplant, two venues and a gateway taking orders, limits and a kill)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from support.order_flow import RISK, drive, flow
from support.order_stack import start_order_stack

from gateway import order_stream
from gateway.order_json import order_dict
from gateway.order_router import OrderRouter
from gateway.order_stream import OrderStream
from orders.risk import risk_engine
from tickdb.config import load_config
from tickerplant.publisher import Publisher


def state(stream: OrderStream) -> dict[str, Any]:
    router = stream.router
    risk = router.risk
    return {
        "clordids": {key: order_dict(o) for key, o in router._by_clordid.items()},
        "positions": [p.to_dict() for p in risk.positions.positions()],
        "risk": risk.status(),
        "sequenced": set(stream.peers._sequenced),
        "invalid": router.invalid_transitions,
    }


def test_a_rebuild_in_runs_equals_the_records_applied_one_by_one(
    tmp_path: Path, monkeypatch: Any
) -> None:
    stack = start_order_stack(tmp_path, shards=2, extra_toml=RISK)
    try:
        drive(stack, flow(seed=5, count=600), crash_at=-1, crash=None)
        with stack.client() as client:
            client.set_limits({"max_order_qty": 70}, account="A1")
            client.kill(account="A2")
        cfg = load_config(stack.config)
        address = stack.tp_address
        with Publisher(address) as pub:
            # Runs of 64 records: many runs, and the day's records in several per table.
            monkeypatch.setattr(order_stream, "REPLAY_RUN", 64)
            in_runs = OrderStream(OrderRouter(risk_engine(cfg), pub), address).start()
            one_by_one = OrderStream(OrderRouter(risk_engine(cfg), pub), address)
            try:
                assert in_runs.wait_ready(60)
                flow_ = one_by_one._flow
                applied = last = 0
                # Up to the seq it started at: the replay may still be arriving.
                while last < one_by_one._start_seq:
                    message = flow_.poll(30)
                    assert message is not None, f"the replay stopped at seq {last}"
                    one_by_one._on_message(message)
                    applied += 1
                    last = message.seq
                # Requests, answers, fills, admin rows, batched more or less by load: at
                # least several runs of 64.
                assert applied > 3 * 64
                with in_runs.router.lock:
                    rebuilt = state(in_runs)
                expected = state(one_by_one)
                assert rebuilt["positions"] and rebuilt["risk"]["kills"]
                assert rebuilt == expected
            finally:
                in_runs.close()
                one_by_one.close()
    finally:
        stack.stop()
