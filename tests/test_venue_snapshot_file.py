"""A venue snapshot's file: the engine comes back exactly (books, ids, the outputs of what
comes next), and a file that is not exactly what was written is refused, never trusted."""

from __future__ import annotations

import pickle
import random
import struct
from pathlib import Path

import pytest

from orders import snapshot_file
from orders.book import MatchingEngine
from orders.model import (
    CancelRequest,
    Event,
    Fill,
    MassCancel,
    NewOrder,
    ReplaceRequest,
    Side,
    TimeInForce,
)
from orders.snapshot import SnapshotSettings, VenueSnapshots

Request = NewOrder | CancelRequest | ReplaceRequest | MassCancel


def random_flow(seed: int, count: int) -> list[Request]:
    """New orders around one price (so they trade, rest, get replaced and canceled), on
    two syms and three accounts, with a mass cancel now and then."""
    rng = random.Random(seed)
    flow: list[Request] = []
    sent: list[tuple[str, str, str]] = []  # account, sym, clordid
    for i in range(count):
        roll = rng.random()
        if roll < 0.6 or not sent:
            account, sym = rng.choice("abc"), rng.choice(("AAA", "BBB"))
            side = rng.choice((Side.BUY, Side.SELL))
            price = round(10 + rng.randint(-5, 5) * 0.01, 2)
            tif = rng.choice((TimeInForce.DAY, TimeInForce.GTC, TimeInForce.IOC))
            clordid = f"c{i}"
            qty = rng.randint(1, 9)
            flow.append(NewOrder(account, sym, clordid, side, qty, price=price, tif=tif))
            sent.append((account, sym, clordid))
        elif roll < 0.8:
            account, sym, clordid = rng.choice(sent)
            flow.append(CancelRequest(account, sym, f"x{i}", clordid))
        elif roll < 0.99:
            account, sym, clordid = rng.choice(sent)
            price = round(10 + rng.randint(-5, 5) * 0.01, 2)
            flow.append(ReplaceRequest(account, sym, f"r{i}", clordid, rng.randint(1, 12), price))
            sent.append((account, sym, f"r{i}"))
        else:
            flow.append(MassCancel(account=rng.choice("abc"), clordid=f"m{i}"))
    return flow


def apply(engine: MatchingEngine, requests: list[Request]) -> list[Event | Fill]:
    out: list[Event | Fill] = []
    for req in requests:
        if isinstance(req, NewOrder):
            out += engine.new(req)
        elif isinstance(req, CancelRequest):
            out += engine.cancel(req)
        elif isinstance(req, ReplaceRequest):
            out += engine.replace(req)
        else:
            out += engine.mass_cancel(req)
    return out


def test_a_restored_engine_is_the_engine_it_was_written_from() -> None:
    flow = random_flow(seed=11, count=6000)
    engine = MatchingEngine(id_prefix="V0-", tick_sizes={"BBB": 0.01})
    apply(engine, flow[:4000])
    restored = snapshot_file.decode(snapshot_file.encode({"engine": engine}))["engine"]
    assert restored.snapshot() == engine.snapshot()
    assert (restored.order_seq, restored.exec_seq) == (engine.order_seq, engine.exec_seq)
    # The next inputs give the same outputs, row for row, and the same books after.
    assert apply(restored, flow[4000:]) == apply(engine, flow[4000:])
    assert restored.snapshot() == engine.snapshot()
    everything: list[Request] = [MassCancel(clordid="end")]
    assert apply(restored, everything) == apply(engine, everything)


def test_a_file_not_exactly_as_written_is_refused(tmp_path: Path) -> None:
    data = snapshot_file.encode({"engine": MatchingEngine(id_prefix="V0-")})
    body = data[snapshot_file.HEADER.size :]
    flipped = bytearray(data)
    flipped[-3] ^= 0x01
    other_version = bytearray(data)
    struct.pack_into("<I", other_version, 8, snapshot_file.VERSION + 1)
    cases = {
        "checksum mismatch": bytes(flipped),
        "format version": bytes(other_version),
        "header says": data[:-10],
        "shorter than its header": data[:20],
        "bad magic": b"X" * len(data),
    }
    for reason, bad in cases.items():
        with pytest.raises(snapshot_file.SnapshotInvalid, match=reason):
            snapshot_file.decode(bad)
    assert body  # the good one reads
    assert "engine" in snapshot_file.decode(data)


def test_a_snapshot_builds_only_the_order_models_classes() -> None:
    # A body with a valid header and checksum that would call os.system when unpickled.
    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            import os

            return (os.system, ("true",))

    body = pickle.dumps({"engine": Evil()})
    import hashlib

    header = snapshot_file.HEADER.pack(
        snapshot_file.MAGIC, snapshot_file.VERSION, len(body), hashlib.sha256(body).digest()
    )
    with pytest.raises(snapshot_file.SnapshotInvalid, match="not a class of the order model"):
        snapshot_file.decode(header + body)


def test_newest_first_and_prune_keep_the_newest(tmp_path: Path) -> None:
    data = snapshot_file.encode({"x": 1})
    for seq in (5, 120, 40):
        snapshot_file.write(tmp_path, "venue-0-of-1", seq, data)
    snapshot_file.write(tmp_path, "venue-0-of-1-pair", 999, data)
    (tmp_path / ".venue-0-of-1.00000000000000000200.snap.tmp-999999999").write_bytes(b"half")
    seqs = [seq for seq, _ in snapshot_file.newest_first(tmp_path, "venue-0-of-1")]
    assert seqs == [120, 40, 5]
    snapshot_file.prune(tmp_path, "venue-0-of-1", keep=2)
    assert [s for s, _ in snapshot_file.newest_first(tmp_path, "venue-0-of-1")] == [120, 40]
    assert not list(tmp_path.glob(".*.tmp-*"))  # its writer (no such pid) is gone
    assert [s for s, _ in snapshot_file.newest_first(tmp_path, "venue-0-of-1-pair")] == [999]


def test_snapshots_are_due_by_count_by_time_and_at_once_after_a_start_without_one(
    tmp_path: Path,
) -> None:
    timed = VenueSnapshots(SnapshotSettings(tmp_path, every_inputs=0, every_s=3600), "v")
    assert not timed.due(inputs=0, seq=0)  # nothing applied yet
    assert timed.due(inputs=7, seq=40)  # started without one: due at once
    timed.postpone(seq=40, inputs=7)
    assert not timed.due(inputs=9, seq=50)  # the hour has not passed
    counted = VenueSnapshots(SnapshotSettings(tmp_path, every_inputs=10, every_s=0), "v")
    counted.postpone(seq=40, inputs=7)
    assert not counted.due(inputs=16, seq=60)
    assert counted.due(inputs=17, seq=61)
