"""Rows to publish through a tickerplant, and a subscriber read back to a row count: the
delivery tests check the rows arrive once, in order, with nothing after them; a
tickerplant that can be crashed and restarted on its address, and its counters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from support.harness import Proc, free_port, start_tp, wait_until
from tickerplant.discovery import request
from tickerplant.protocol import STATS
from tickerplant.subscriber import Subscriber, Update


def trades(start: int, count: int, syms: tuple[str, ...] = ("AAPL", "MSFT", "IBM")) -> pa.Table:
    return pa.table(
        {
            "sym": [syms[i % len(syms)] for i in range(start, start + count)],
            "price": [float(i) for i in range(start, start + count)],
            "size": list(range(start, start + count)),
        }
    )


def drain(sub: Subscriber, expected_rows: int, timeout: float = 20.0) -> list[Update]:
    got: list[Update] = []

    def enough() -> bool:
        while (message := sub.poll(0.05)) is not None:
            if isinstance(message, Update):
                got.append(message)
        return sum(u.data.num_rows for u in got) >= expected_rows

    try:
        wait_until(enough, timeout, f"{expected_rows} rows")
    except AssertionError:
        got_rows = sum(u.data.num_rows for u in got)
        raise AssertionError(
            f"got {got_rows} of {expected_rows} rows: {sizes(got)[-5:]}, "
            f"gaps {sub.gaps_repaired} last {sub.last_seq}"
        ) from None
    # Anything further would be a duplicate.
    extra = sub.poll(0.3)
    assert extra is None, f"unexpected extra message {extra}"
    return got


def sizes(updates: list[Update]) -> list[int]:
    return [s for u in updates for s in u.data.column("size").to_pylist()]


class Restartable:
    """A tickerplant on a fixed address that can be crashed and started again."""

    def __init__(self, tmp_path: Path, procs: list[Proc]) -> None:
        self.port = free_port()
        self.settings = {"tickerplant": {"address": f"tcp://127.0.0.1:{self.port}"}}
        self.tmp_path, self.procs = tmp_path, procs
        self.proc = self.start()
        self.address = str(self.proc.info["address"])

    def start(self) -> Proc:
        proc = start_tp(self.tmp_path, **self.settings)
        self.procs.append(proc)
        return proc

    def crash_and_restart(self) -> None:
        self.proc.kill9()
        self.proc = self.start()


def tp_stats(address: str) -> dict[str, Any]:
    import json

    import zmq

    ctx = zmq.Context()
    try:
        reply = request(ctx, address, [STATS], 10)
        return dict(json.loads(reply[1]))
    finally:
        ctx.term()
