"""Delivery semantics through real tickerplant processes: no gap, no duplicate."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.harness import free_port, start_tp, wait_until
from support.tp_delivery import drain, sizes, trades

from tickerplant.publisher import Publisher
from tickerplant.subscriber import EndOfDay, Subscriber, Update


def test_late_subscriber_gets_no_gap_and_no_duplicate(tmp_path: Path, procs: list) -> None:
    tp = start_tp(tmp_path)
    procs.append(tp)
    address = tp.info["address"]
    with Publisher(address) as pub:
        early = Subscriber(address, tables=["trade"], start="live")
        for i in range(0, 500, 10):
            pub.publish("trade", trades(i, 10))
        # Joins in the middle of the stream, asking for the whole session.
        late = Subscriber(address, tables=["trade"], start="session")
        for i in range(500, 1000, 10):
            pub.publish("trade", trades(i, 10))
        pub.flush()
    assert sizes(drain(late, 1000)) == list(range(1000))
    assert sizes(drain(early, 1000)) == list(range(1000))
    seqs = [u.seq for u in drain(Subscriber(address, start="journal"), 1000)]
    assert seqs == sorted(set(seqs))
    late.close()
    early.close()


def test_sym_and_shard_subscriptions_are_filtered_on_the_tickerplant(
    tmp_path: Path, procs: list
) -> None:
    from tickerplant.protocol import shard_of

    tp = start_tp(tmp_path)
    procs.append(tp)
    address = tp.info["address"]
    syms = tuple(f"S{i}" for i in range(20))
    by_sym = Subscriber(address, tables=["trade"], syms=["S3", "S7"])
    shards = [Subscriber(address, tables=["trade"], shard=(k, 3)) for k in range(3)]
    with Publisher(address) as pub:
        for i in range(0, 2000, 100):
            pub.publish("trade", trades(i, 100, syms))
    all_rows = trades(0, 2000, syms).to_pylist()
    want = [r["size"] for r in all_rows if r["sym"] in ("S3", "S7")]
    assert sizes(drain(by_sym, len(want))) == want
    seen: list[int] = []
    for k, sub in enumerate(shards):
        want_k = [r["size"] for r in all_rows if shard_of(r["sym"], 3) == k]
        got = drain(sub, len(want_k))
        assert sizes(got) == want_k
        assert all(shard_of(s, 3) == k for u in got for s in u.data.column("sym").to_pylist())
        seen.extend(want_k)
        sub.close()
    assert sorted(seen) == list(range(2000))
    by_sym.close()


@pytest.mark.parametrize(
    ("mode", "coalesce"), [("immediate", False), ("immediate", True), ("batched", True)]
)
def test_both_publish_modes_deliver_every_row_once(
    tmp_path: Path, procs: list, mode: str, coalesce: bool, rowpack_impl: str
) -> None:
    settings = {"mode": mode, "batch_interval_ms": 50, "coalesce_queued": coalesce}
    tp = start_tp(tmp_path, tickerplant=settings)
    procs.append(tp)
    address = tp.info["address"]
    sub = Subscriber(address, tables=["trade"])
    with Publisher(address) as pub:
        for i in range(300):
            pub.publish("trade", {"sym": "AAPL", "price": 1.5, "size": i})
    updates = drain(sub, 300)
    assert sizes(updates) == list(range(300))
    if mode == "batched":
        # Rows are coalesced per table on the timer: far fewer records than batches.
        assert len(updates) < 100
    elif not coalesce:
        assert len(updates) == 300  # one record per publisher batch, as kdb+tick does
    else:
        # Whatever had queued up together went out together; nothing waited for a timer.
        assert 1 <= len(updates) <= 300
    sub.close()


def test_kill_9_and_restart_loses_nothing_and_doubles_nothing(tmp_path: Path, procs: list) -> None:
    port = free_port()
    settings = {"tickerplant": {"address": f"tcp://127.0.0.1:{port}"}}
    tp = start_tp(tmp_path, **settings)
    procs.append(tp)
    address = tp.info["address"]
    pub = Publisher(address, resend_after_s=0.3)
    for i in range(0, 3000, 10):
        pub.publish("trade", trades(i, 10))
        if i == 1500:
            tp.kill9()
            tp = start_tp(tmp_path, **settings)
            procs.append(tp)
    pub.flush(timeout_s=30)
    pub.close()
    # One batch per publish: the restarted tickerplant, its ledger rebuilt from the journal,
    # acknowledges up to the 300th and last batch sent, not beyond.
    assert pub.acked == 300
    replayed = Subscriber(address, tables=["trade"], start="journal")
    assert sizes(drain(replayed, 3000)) == list(range(3000))
    replayed.close()


def test_slow_subscriber_is_bounded_and_repairs_gaps_by_replay(tmp_path: Path, procs: list) -> None:
    tp = start_tp(tmp_path, tickerplant={"subscriber_buffer": 5})
    procs.append(tp)
    address = tp.info["address"]
    slow = Subscriber(address, tables=["trade"], receive_buffer=5)
    batch, total = 25_000, 1_000_000
    with Publisher(address) as pub:
        for i in range(0, total, batch):
            pub.publish("trade", trades(i, batch))
    # Nothing was read while ~30 MB went by: far more than the 5-message buffers and the
    # kernel socket buffers hold, so most was dropped for this subscriber.
    got = drain(slow, total)
    assert sizes(got) == list(range(total))
    assert slow.gaps_repaired >= 1
    assert slow.replayed_records > 0
    slow.close()


def test_roll_is_announced_and_replay_crosses_it(tmp_path: Path, procs: list) -> None:
    import zmq

    from tickerplant.discovery import request

    tp = start_tp(tmp_path)
    procs.append(tp)
    address = tp.info["address"]
    sub = Subscriber(address)
    with Publisher(address) as pub:
        pub.publish("trade", trades(0, 5))
        pub.flush()
        ctx = zmq.Context()
        request(ctx, address, [b"ROLL"], 5)
        ctx.term()
        pub.publish("trade", trades(5, 5))
    messages: list[Update | EndOfDay] = []

    def three_messages() -> bool:
        # A poll that finds nothing yet is not the end: the wait is for three messages
        # (it ended at the first empty poll, so a slow machine saw fewer).
        message = sub.poll(0.05)
        if message is not None:
            messages.append(message)
        return len(messages) >= 3

    wait_until(three_messages, 10, "three messages")
    assert [type(m) for m in messages] == [Update, EndOfDay, Update]
    assert isinstance(messages[1], EndOfDay)
    journal_files = sorted((tmp_path / "data" / "journal").glob("*.tpj"))
    assert len(journal_files) == 2
    replayed = Subscriber(address, start="journal")
    again = [replayed.poll(5) for _ in range(3)]
    assert [m.seq for m in again if m] == [m.seq for m in messages]
    sub.close()
    replayed.close()
