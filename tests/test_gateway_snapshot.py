"""A gateway restarted from an order-state snapshot and the journal after it has exactly the
state of a gateway that replayed the whole journal (``gateway.order_snapshot``).

Real processes on loopback: a tickerplant, two venues and a gateway whose snapshot writer
(``gateway.order_snapshotter``) snapshots every few records. The states compared are
rebuilt in this process by ``OrderStream`` against the stack's tickerplant, once from seq 0
and once from a snapshot, and dumped whole (``order_snapshot.dump``: orders by ClOrdID and
which name one order, the last day's, risk counters and windows, working orders,
positions, states, kills, limits, the requests sequenced first, the venues' answers).
"""

from __future__ import annotations

import dataclasses
import logging
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from support.harness import free_port, wait_until
from support.order_flow import drive, flow, journal_rows
from support.order_stack import OrderStack, start_order_stack

from gateway.order_router import OrderRouter
from gateway.order_snapshot import ALLOWED, dump, snapshots_for
from gateway.order_stream import OrderStream
from orders import snapshot_file
from orders.risk import risk_engine
from orders.snapshot import SnapshotSettings
from tickdb.config import load_config
from tickerplant.publisher import Publisher

# The snapshot writer runs at nice 10: on two busy cores it gets a small share of them, so
# what waits on its output waits long (a healthy run is done in a second or two).
WRITER_S = 120

# Fill windows kept (an hour) and never tripped; the other checks a fast flow trips, off.
RISK = """
[risk.defaults]
max_messages_per_s = 0
duplicate_window_s = 0
max_open_orders = 0
max_open_orders_per_sym = 0
max_fills_per_window = 1000000
fill_window_s = 3600
"""


def start(workdir: Path, every: int, port: int = 0, order_port: int = 0) -> OrderStack:
    return start_order_stack(
        workdir,
        shards=2,
        gateway_port=port,
        order_port=order_port,
        orders={
            "submit_timeout_s": 0.2,
            "gateway_snapshot_every_records": every,
            "gateway_snapshot_every_s": 0,
        },
        extra_toml=RISK,
    )


def gateway_snapshots(directory: Path) -> list[tuple[int, Path]]:
    """The gateway's snapshots in ``directory``, newest first (one key: one set of settings)."""
    keys = {p.name.split(".")[0] for p in directory.glob("gateway-orders-*.snap")}
    assert len(keys) <= 1, keys
    return list(snapshot_file.newest_first(directory, keys.pop())) if keys else []


def snapshots_at_least(directory: Path, count: int) -> bool:
    return len(gateway_snapshots(directory)) >= count


def newest_seq(directory: Path) -> int:
    found = gateway_snapshots(directory)
    return found[0][0] if found else 0


def rebuilt(stack: OrderStack, snapshots: Path | None) -> tuple[dict[str, Any], OrderStream]:
    """The order state an ``OrderStream`` rebuilds in this process (from ``snapshots``'
    newest usable one, or from seq 0), dumped."""
    cfg = load_config(stack.config)
    with Publisher(stack.tp_address) as pub:
        router = OrderRouter(risk_engine(cfg), pub)
        found = None
        if snapshots is not None:
            settings = SnapshotSettings.for_gateway(cfg)
            assert settings is not None
            found = snapshots_for(dataclasses.replace(settings, directory=snapshots), router.risk)
        stream = OrderStream(router, stack.tp_address, timeout_s=30, snapshots=found).start()
        try:
            assert stream.wait_ready(120)
            with router.lock:
                state = dump(stream.applier)
        finally:
            stream.close()
    return state, stream


def roll(stack: OrderStack) -> None:
    subprocess.run(
        [sys.executable, "-m", "tickdb.cli", "tp", "roll", "--address", stack.tp_address],
        check=True,
        capture_output=True,
        timeout=30,
    )


def admin(stack: OrderStack) -> None:
    """Admin decisions the state must keep: a kill, a resume, limits, a trading state."""
    with stack.client() as c:
        c.kill(account="F3", strategy="s1")
        c.kill(account="F2")
        c.resume(account="F2")
        c.set_limits({"max_order_qty": 50_000})
        c.set_limits({"price_collar_pct": 20.0}, account="F1")
        c.set_trading_state("reducing", account="F3")


def test_restore_and_tail_equal_a_full_replay_also_across_an_end_of_day(tmp_path: Path) -> None:
    stack = start(tmp_path, every=4)
    snapshots = tmp_path / "snapshots"
    try:
        steps = flow(seed=11, count=360)
        drive(stack, steps[:180], crash_at=-1, crash=None)
        admin(stack)
        with Publisher(stack.tp_address) as pub:
            admin_seq = pub.hello.seq
        # Something after the admin rows, so that a snapshot covers them too.
        drive(stack, steps[180:240], crash_at=-1, crash=None)
        wait_until(
            lambda: newest_seq(snapshots) > admin_seq, WRITER_S, "a snapshot after the admin"
        )
        kept = tmp_path / "before-eod"
        kept.mkdir()
        seq, path = gateway_snapshots(snapshots)[0]
        shutil.copy(path, kept / path.name)
        roll(stack)
        with Publisher(stack.tp_address) as pub:
            rolled_at = pub.hello.session_start_seq
        assert seq < rolled_at
        drive(stack, steps[240:], crash_at=-1, crash=None)
        with Publisher(stack.tp_address) as pub:
            end = pub.hello.seq
        wait_until(
            lambda: newest_seq(snapshots) > rolled_at, WRITER_S, "a snapshot after the day's end"
        )

        full, replayed = rebuilt(stack, None)
        assert replayed.restored_seq == 0
        # The state is not a trivial one: every part of it is compared below.
        router = replayed.router
        assert router._previous_day and router._by_clordid
        assert router.risk.positions.fills and router.risk._controls.kills
        assert any(a.fills for a in router.risk._accounts.values())  # fill windows
        assert replayed.peers._sequenced and replayed.venues._seen

        across, from_kept = rebuilt(stack, kept)
        assert from_kept.restored_seq == seq  # the day's end was in the replayed tail
        assert across == full
        newest, from_newest = rebuilt(stack, snapshots)
        assert rolled_at < from_newest.restored_seq <= end
        assert newest == full
    finally:
        stack.stop()


def test_kill9_of_the_gateway_with_a_snapshot_loses_and_doubles_nothing(tmp_path: Path) -> None:
    port, order_port = free_port(), free_port()
    stack = start(tmp_path, every=5, port=port, order_port=order_port)
    snapshots = tmp_path / "snapshots"
    try:
        steps = flow(seed=5, count=600)
        restart = threading.Thread(target=stack.start_gateway, args=(port, order_port), daemon=True)

        def crash() -> None:
            wait_until(lambda: newest_seq(snapshots) > 20, WRITER_S, "a gateway snapshot")
            assert stack.gateway is not None
            stack.gateway.kill9()
            restart.start()

        driver = drive(stack, steps, crash_at=400, crash=crash)
        restart.join(60)
        assert driver.reconnects >= 1  # requests were lost with the gateway and resent
        assert stack.gateway is not None
        found = re.findall(
            r"order path ready: .* from the snapshot at seq (\d+)", stack.gateway.log()
        )
        assert found and int(found[-1]) > 20  # the restart used a snapshot
        # Nothing doubled: one order_request row per ClOrdID; nothing lost: every step's.
        requests = journal_rows(stack, "order_request")
        keys = [(r["account"], r["clordid"]) for r in requests]
        assert len(set(keys)) == len(keys)
        submitted = {(a["account"], a["clordid"]) for kind, a in steps if kind == "submit"}
        assert submitted <= set(keys)
        # The restarted gateway's orders and positions are those of a full replay.
        _, replayed = rebuilt(stack, None)
        expected = {
            (o.account, o.clordid): (str(o.status), o.cum_qty) for o in replayed.router.orders()
        }
        with stack.client() as c:
            got = {(o["account"], o["clordid"]): (o["status"], o["cum_qty"]) for o in c.orders()}
            positions = c.positions()
            # ClOrdID idempotency: an early order resent is the original, not a second one.
            kind, first = steps[0]
            assert kind == "submit"
            again = c.submit(
                first["account"],
                first["sym"],
                first["side"],
                first["qty"],
                first["price"],
                tif=first["tif"],
                clordid=first["clordid"],
            )
            original = replayed.router.order(first["account"], first["clordid"])
            assert original is not None and again["order_id"] == original.order_id
        assert got == expected
        assert positions == [p.to_dict() for p in replayed.router.risk.positions.positions()]
        assert len(journal_rows(stack, "order_request")) == len(requests)  # nothing sent
    finally:
        stack.stop()


def test_a_damaged_or_mismatched_snapshot_falls_back_to_an_older_one_or_the_journal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stack = start(tmp_path, every=6)
    try:
        steps = flow(seed=7, count=150)
        for part, count in ((steps[:75], 1), (steps[75:], 2)):
            drive(stack, part, crash_at=-1, crash=None)
            wait_until(lambda: snapshots_at_least(tmp_path / "snapshots", count), WRITER_S)  # noqa: B023
        assert stack.gateway is not None
        stack.gateway.stop()  # its writer finishes: whole snapshots to damage
        full, _ = rebuilt(stack, None)
        work = tmp_path / "work"
        shutil.copytree(tmp_path / "snapshots", work)
        (newest_at, newest), (older_at, _) = gateway_snapshots(work)[:2]
        assert newest_at - older_at > 4
        key = newest.name.split(".")[0]
        data = newest.read_bytes()
        state = snapshot_file.decode(data, ALLOWED)

        def plant(seq: int, **changes: Any) -> None:
            made = snapshot_file.encode({**state, **changes, "seq": seq})
            (work / snapshot_file.file_name(key, seq)).write_bytes(made)

        (work / snapshot_file.file_name(key, newest_at + 1)).write_bytes(b"garbage")
        newest.write_bytes(data[:-100])  # truncated
        plant(newest_at - 1, settings=state["settings"].replace("max_order_qty", "max_qty"))
        plant(newest_at - 2, session_start_seq=newest_at - 10)  # of another day
        plant(newest_at - 3)  # its record at that seq is another one: another journal
        caplog.set_level(logging.WARNING, logger="orders.snapshot")
        restored, stream = rebuilt(stack, work)
        assert stream.restored_seq == older_at
        assert restored == full
        for reason in (
            "shorter than its header",
            "the header says",
            "made under other settings",
            "of another day",
            "of another journal",
        ):
            assert reason in caplog.text
        # None usable: the whole journal.
        for _, path in gateway_snapshots(work):
            path.write_bytes(path.read_bytes()[:-1])
        again, stream = rebuilt(stack, work)
        assert stream.restored_seq == 0
        assert again == full
    finally:
        stack.stop()


def writer_pids(gateway_pid: int) -> list[int]:
    """The gateway's snapshot writer processes (its children running the writer). A thread
    or a child may end between the listing and the read: it is not a writer then."""
    found = []
    for task in Path(f"/proc/{gateway_pid}/task").iterdir():
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in children:
            try:
                cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            except OSError:
                continue
            if b"gateway.order_snapshotter" in cmdline:
                found.append(int(child))
    return found


def test_a_killed_snapshot_writer_is_started_again(tmp_path: Path) -> None:
    stack = start(tmp_path, every=5)
    snapshots = tmp_path / "snapshots"
    try:
        assert stack.gateway is not None
        gateway_pid = stack.gateway.popen.pid
        (writer,) = wait_until(lambda: writer_pids(gateway_pid), 30, "the writer")
        steps = flow(seed=7, count=60)
        drive(stack, steps[:30], -1, None)
        wait_until(lambda: newest_seq(snapshots) > 0, WRITER_S, "a first snapshot")
        subprocess.run(["kill", "-9", str(writer)], check=True)
        (again,) = wait_until(
            lambda: [p for p in writer_pids(gateway_pid) if p != writer], 30, "a new writer"
        )
        assert again != writer
        before = newest_seq(snapshots)
        drive(stack, steps[30:], -1, None)
        wait_until(lambda: newest_seq(snapshots) > before, WRITER_S, "a snapshot by the new writer")
        assert f"gateway snapshot writer (pid {writer}) exited" in stack.gateway.log()
    finally:
        stack.stop()
