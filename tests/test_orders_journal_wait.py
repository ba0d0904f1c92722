"""An order answered once journaled (``wait=False``) waits for the journal without holding
the gateway: while one request waits for its acknowledgement, other requests and reads go
on, and the requests waiting share the acknowledgement that comes."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Any

from support.harness import wait_until
from support.order_stack import start_order_stack

from tickerplant.subscriber import Subscriber, Update

RISK = "[risk.accounts.A1]\n[risk.accounts.A2]\n"


def journaled_clordids(tp_address: str) -> set[str]:
    with Subscriber(tp_address, tables=["order_request"], start="journal") as sub:
        found: set[str] = set()
        while (message := sub.poll(0)) is not None:
            if isinstance(message, Update):
                found.update(message.data.column("clordid").to_pylist())
        return found


def test_a_request_waiting_for_the_journal_holds_up_no_other(tmp_path: Path) -> None:
    stack = start_order_stack(tmp_path, shards=1, orders={"syms": ["AAPL"]}, extra_toml=RISK)
    tp_pid = stack.tp.popen.pid
    answers: dict[str, Any] = {}

    def submit(account: str, clordid: str) -> None:
        with stack.client() as client:
            answers[clordid] = client.submit(account, "AAPL", "buy", 5, 10.0, clordid=clordid,
                                             wait=False)  # fmt: skip

    waiting = [threading.Thread(target=submit, args=(a, f"held-{a}")) for a in ("A1", "A2")]
    try:
        with stack.client() as client:
            client.submit("A1", "AAPL", "buy", 1, 10.0, clordid="warm", wait=False)
            os.kill(tp_pid, signal.SIGSTOP)  # nothing is journaled, or acknowledged, now
            for thread in waiting:
                thread.start()
            # Both requests are taken and sent, and wait for the journal: the gateway still
            # lists orders meanwhile (its order book's lock is not held by the waiting).
            wait_until(
                lambda: {"held-A1", "held-A2"} <= {o["clordid"] for o in client.orders()},
                20,
                "both waiting requests listed while they wait",
            )
            assert all(thread.is_alive() for thread in waiting), answers
            assert answers == {}
        os.kill(tp_pid, signal.SIGCONT)
        for thread in waiting:
            thread.join(30)
        # Answered at their sending (the venue's answer may be in by then), once journaled.
        assert set(answers) == {"held-A1", "held-A2"}
        assert all(a["status"] in ("pending_new", "new") for a in answers.values()), answers
        assert {"held-A1", "held-A2"} <= journaled_clordids(stack.tp_address)
    finally:
        os.kill(tp_pid, signal.SIGCONT)
        stack.stop()
