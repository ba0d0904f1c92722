"""A venue restarted from its snapshot and the journal after it is the venue that replayed
everything: real processes, compared with a run that never crashed.

The reference runs the recovery tests' order flow on a stack without snapshots; each test
runs it again with venues snapshotting every few inputs, crashes venue 1 part way (kill -9,
a damaged snapshot, kill -9 while a snapshot is half written), and then requires each
venue's order and fill rows (ids, fills in time priority, the outputs of every input after
the restart) to equal the reference's row for row. At the end a mass cancel of every order
lists each venue's book (every live order, its leaves, in id order): equal rows, equal books.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support.harness import wait_until
from support.order_flow import RISK, drive, flow, journal_rows, per_venue
from support.order_stack import OrderStack, start_order_stack

from orders.model import MassCancel, OrdStatus
from orders.rows import REQUEST_SCHEMA, request_row, to_table
from orders.snapshot_file import newest_first
from tickerplant.publisher import Publisher

KEY = "venue-1-of-3"  # the crashed venue's snapshots
LIVE = {OrdStatus.NEW, OrdStatus.PARTIALLY_FILLED, OrdStatus.REPLACED}
CRASH_AT = 600


def start(workdir: Path, every_inputs: int, snapshots: Path | None = None) -> OrderStack:
    return start_order_stack(
        workdir,
        shards=3,
        orders={
            "submit_timeout_s": 0.2,
            "snapshot_every_inputs": every_inputs,
            "snapshot_every_s": 0,
            "snapshot_dir": str(snapshots or workdir / "snapshots"),
        },
        extra_toml=RISK,
    )


def cancel_everything(stack: OrderStack) -> None:
    """A mass cancel of every order at every venue; returns once no order is live."""
    with Publisher(stack.tp_address) as pub:
        pub.publish(
            "order_request", to_table([request_row(MassCancel(clordid="end"))], REQUEST_SCHEMA)
        )
        pub.flush()

    def none_live() -> bool:
        with stack.client() as c:
            return not any(OrdStatus(o["status"]) in LIVE for o in c.orders())

    wait_until(none_live, timeout=60, what="every order canceled")


def run(stack: OrderStack, steps: list[tuple[str, dict[str, Any]]], crash: Any) -> dict[str, Any]:
    drive(stack, steps, crash_at=CRASH_AT if crash else -1, crash=crash)
    cancel_everything(stack)
    return {
        "order": per_venue(journal_rows(stack, "order")),
        "fill": per_venue(journal_rows(stack, "fill")),
    }


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    steps = flow(seed=5, count=1000)
    stack = start(tmp_path_factory.mktemp("reference"), every_inputs=0)
    try:
        return {"steps": steps, **run(stack, steps, crash=None)}
    finally:
        stack.stop()


def assert_same_as(reference: dict[str, Any], got: dict[str, Any]) -> None:
    assert set(got["order"]) == set(reference["order"])
    for venue, rows in reference["order"].items():
        assert got["order"][venue] == rows, f"order rows of venue {venue!r}"
    assert got["fill"] == reference["fill"]
    mass = [r for r in reference["order"]["1/3"] if r["reason"] == "mass_cancel"]
    assert mass  # the final book of venue 1 was not empty: the comparison says something


def started_from(stack: OrderStack) -> int:
    """The seq of the snapshot the restarted venue 1 started from (it must have used one)."""
    found = re.findall(r"starting from snapshot \S+ \(seq (\d+)\)", stack.venues[1].log())
    assert found, "the restarted venue replayed the whole journal"
    return int(found[-1])


def crash_and_restart(stack: OrderStack, before_restart: Callable[[], None]) -> threading.Thread:
    """Kill venue 1 (once a snapshot exists), run ``before_restart``, start it again: on a
    thread, as the flow goes on."""

    def crash() -> None:
        wait_until(lambda: any(newest_first(stack.workdir / "snapshots", KEY)), 30, "a snapshot")
        before_restart()
        stack.start_venue(1)

    return threading.Thread(target=crash, daemon=True)


def test_a_venue_killed_mid_flow_restarts_from_its_snapshot_and_matches_a_full_replay(
    reference: dict[str, Any], tmp_path: Path
) -> None:
    stack = start(tmp_path, every_inputs=40)
    try:
        restart = crash_and_restart(stack, lambda: stack.venues[1].kill9())
        got = run(stack, reference["steps"], crash=restart.start)
        restart.join(60)
        assert started_from(stack) > 0
        assert_same_as(reference, got)
    finally:
        stack.stop()


def test_a_damaged_newest_snapshot_is_ignored_for_the_one_before(
    reference: dict[str, Any], tmp_path: Path
) -> None:
    stack = start(tmp_path, every_inputs=40)
    damaged: list[int] = []

    def damage() -> None:
        stack.venues[1].stop()  # its writer finishes: a whole newest snapshot to damage
        snapshots = list(newest_first(tmp_path / "snapshots", KEY))
        assert len(snapshots) >= 2
        seq, path = snapshots[0]
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
        # And one that claims to be newer still and is not a snapshot at all.
        (tmp_path / "snapshots" / f"{KEY}.{seq + 10:020d}.snap").write_bytes(b"garbage")
        damaged.append(seq)

    try:
        restart = crash_and_restart(stack, damage)
        got = run(stack, reference["steps"], crash=restart.start)
        restart.join(60)
        log = stack.venues[1].log()
        assert "checksum mismatch" in log and "shorter than its header" in log
        assert 0 < started_from(stack) < damaged[0]
        assert_same_as(reference, got)
    finally:
        stack.stop()


def test_kill9_while_a_snapshot_is_half_written_restarts_from_the_one_before(
    reference: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = tmp_path / "release"
    release.touch()  # writers pass until the test removes it
    monkeypatch.setenv("TICKDB_HOLD_VENUE_SNAPSHOT", str(release))
    stack = start(tmp_path, every_inputs=40)
    held: list[int] = []

    def kill_mid_write() -> None:
        release.unlink()  # the next writer stops half way through its temporary file

        def half_written() -> list[Path]:
            return [p for p in (tmp_path / "snapshots").glob(f".{KEY}.*.tmp-*") if p.stat().st_size]

        temporary = wait_until(half_written, 30, "a snapshot half written")[0]
        held.append(int(temporary.name.split(".")[2]))
        stack.venues[1].kill9()  # the venue and its writer, as a crash would
        release.touch()

    try:
        restart = crash_and_restart(stack, kill_mid_write)
        got = run(stack, reference["steps"], crash=restart.start)
        restart.join(60)
        assert 0 < started_from(stack) < held[0]
        assert not (tmp_path / "snapshots" / f"{KEY}.{held[0]:020d}.snap").exists()
        assert_same_as(reference, got)
    finally:
        stack.stop()


def test_a_snapshot_of_another_day_is_not_used(tmp_path: Path) -> None:
    """After an end of day the journal's day is new: yesterday's snapshot is passed over."""
    stack = start(tmp_path, every_inputs=5)
    try:
        drive(stack, flow(seed=7, count=120), crash_at=-1, crash=None)
        wait_until(lambda: any(newest_first(tmp_path / "snapshots", KEY)), 30, "a snapshot")
        stack.venues[1].stop()
        roll = [sys.executable, "-m", "tickdb.cli", "tp", "roll", "--address", stack.tp_address]
        subprocess.run(roll, check=True, capture_output=True, timeout=30)
        stack.start_venue(1)
        log = stack.venues[1].log()
        assert "of another day" in log
        assert "starting from snapshot" not in log
    finally:
        stack.stop()


def test_a_snapshot_of_another_journal_is_not_used(tmp_path: Path) -> None:
    """A tickerplant started over on an empty journal reaches the same seqs with other
    records: the snapshot's stamp of its record tells them apart."""
    shared = tmp_path / "snapshots"
    for name in ("first", "second"):
        (tmp_path / name).mkdir()
    first = start(tmp_path / "first", every_inputs=5, snapshots=shared)
    try:
        drive(first, flow(seed=7, count=120), crash_at=-1, crash=None)
        wait_until(lambda: any(newest_first(shared, KEY)), 30, "a snapshot")
    finally:
        first.stop()
    second = start(tmp_path / "second", every_inputs=10**9, snapshots=shared)
    try:
        drive(second, flow(seed=8, count=200), crash_at=-1, crash=None)
        second.venues[1].stop()
        second.start_venue(1)
        log = second.venues[1].log()
        assert "of another journal" in log
        assert "starting from snapshot" not in log
    finally:
        second.stop()
