"""A subscriber keeps its process's large receive buffers mapped (``tickdb.malloc``), once."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.harness import start_tp

from tickerplant import subscriber
from tickerplant.subscriber import Subscriber


def test_the_first_subscriber_of_a_process_keeps_large_buffers(
    tmp_path: Path, procs: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    tp = start_tp(tmp_path)
    procs.append(tp)
    calls: list[None] = []

    def keep() -> bool:
        calls.append(None)
        return True

    monkeypatch.setattr(subscriber, "keep_large_buffers", keep)
    monkeypatch.setattr(subscriber, "_buffers_kept", False)
    with Subscriber(tp.info["address"], tables=["trade"]):
        assert len(calls) == 1
    with Subscriber(tp.info["address"], tables=["quote"]):
        assert len(calls) == 1  # process-wide: set once
