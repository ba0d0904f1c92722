"""A venue's feed: the tickerplant sends the venue of shard k/n only the ``order_request``
records with a row of its syms or of an empty sym (mass cancels, addressed to every venue),
live and in replay alike, byte for byte; a data table's plain shard selection is unchanged
(it cuts records to the shard's rows, and an empty-sym row goes to the one shard
``shard_of("")`` names, not to every shard)."""

from __future__ import annotations

import time
from pathlib import Path

import pyarrow as pa
import pytest
from support.harness import Proc, start_tp

import tickerplant.pubsub as pubsub
from orders.model import MassCancel, NewOrder, Side
from orders.rows import REQUEST_SCHEMA, encode_rows, request_row, to_table
from orders.venue import Venue
from tickdb.schema import default_schemas
from tickdb.types import Shard, shard_of
from tickerplant import payload_columns
from tickerplant.ingest import encode_stream
from tickerplant.protocol import KIND_UPD, Record, parse_topic, topic_for
from tickerplant.publisher import Publisher
from tickerplant.pubsub import ShardMap, select_rows
from tickerplant.rowpack import compiled
from tickerplant.subscriber import Subscriber, Update

TWO = 2
SYMS = [f"S{i}" for i in range(40)]
MINE = [s for s in SYMS if shard_of(s, TWO) == 0][:3]
THEIRS = [s for s in SYMS if shard_of(s, TWO) == 1][:3]
REQUESTS = default_schemas()["order_request"]  # as journaled: with ``time``
READERS = ["c", "one-row", "arrow"] if compiled() is not None else ["one-row", "arrow"]


def new_order(sym: str, n: int) -> NewOrder:
    return NewOrder("A1", sym, f"c-{sym}-{n}", Side.BUY, 1, price=10.0)


def record_of(reqs: list[NewOrder | MassCancel], seq: int = 1) -> Record:
    """A journaled record of ``reqs``: one batch (of one row for one request)."""
    rows = [{**request_row(r), "time": 0} for r in reqs]
    payload = encode_stream(to_table(rows, REQUESTS.arrow), REQUESTS.arrow)
    return Record(KIND_UPD, seq, 0, "order_request", (), payload)


def picked_syms(picked: Record | None) -> list[str]:
    return [] if picked is None else picked.to_table().column("sym").to_pylist()


def test_the_venue_topic_names_its_shard_and_empty_syms() -> None:
    topic = topic_for(["order_request"], shard=Shard(1, 3), empty_syms=True)
    selection = parse_topic(topic)
    assert selection.shard == Shard(1, 3) and selection.empty_syms
    assert not parse_topic(topic_for(["order_request"], shard=Shard(1, 3))).empty_syms
    with pytest.raises(ValueError):
        topic_for(["order_request"], empty_syms=True)


def use_reader(reader: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Which reader gives a selection a record's columns: C (``payload_columns``), else the
    one-row byte reader, else Arrow."""
    if reader != "c":
        monkeypatch.setattr(payload_columns, "_compiled", lambda: None)
    if reader == "arrow":
        monkeypatch.setattr(pubsub, "SMALL_RECORD_BYTES", 0)


@pytest.mark.parametrize("reader", READERS)
def test_a_shard_with_empty_syms_gets_records_with_its_rows_and_every_mass_cancel(
    reader: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Records are chosen by C, by the one-row byte reader or by Arrow: the same choice."""
    use_reader(reader, monkeypatch)
    venue0 = parse_topic(topic_for(["order_request"], shard=Shard(0, TWO), empty_syms=True))
    venue1 = parse_topic(topic_for(["order_request"], shard=Shard(1, TWO), empty_syms=True))
    schemas = {"order_request": REQUESTS}
    shards = ShardMap()
    for sym in MINE:
        record = record_of([new_order(sym, 0)])
        assert select_rows(venue0, record, shards, schemas) is record
        assert select_rows(venue1, record, shards, schemas) is None
    for sym in THEIRS:
        record = record_of([new_order(sym, 0)])
        assert select_rows(venue0, record, shards, schemas) is None
        assert select_rows(venue1, record, shards, schemas) is record
    mass = record_of([MassCancel(account="A1")])
    assert select_rows(venue0, mass, shards, schemas) is mass
    assert select_rows(venue1, mass, shards, schemas) is mass
    # Several rows: whole to each venue with a row in it (each keeps its own rows).
    mixed = record_of([new_order(MINE[0], 1), new_order(THEIRS[0], 1)])
    assert select_rows(venue0, mixed, shards, schemas) is mixed
    assert select_rows(venue1, mixed, shards, schemas) is mixed
    theirs = record_of([new_order(THEIRS[0], 2), new_order(THEIRS[1], 2)])
    assert select_rows(venue0, theirs, shards, schemas) is None
    assert select_rows(venue1, theirs, shards, schemas) is theirs
    # A data table's shard selection still cuts a record to its rows.
    plain = parse_topic(topic_for(["order_request"], shard=Shard(0, TWO)))
    assert picked_syms(select_rows(plain, mixed, shards, schemas)) == [MINE[0]]


@pytest.mark.parametrize("reader", READERS)
def test_a_plain_shard_selection_still_places_an_empty_sym_in_one_shard(
    reader: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_reader(reader, monkeypatch)
    record = record_of([MassCancel(account="A1")])
    owners = [
        k
        for k in range(TWO)
        if select_rows(
            parse_topic(topic_for(["order_request"], shard=Shard(k, TWO))),
            record,
            ShardMap(),
            {"order_request": REQUESTS},
        )
        is not None
    ]
    assert owners == [shard_of("", TWO)]


def wait_for_seq(sub: Subscriber, seq: int) -> list[Update]:
    got: list[Update] = []
    deadline = time.monotonic() + 10
    while sub.last_seq < seq:
        assert time.monotonic() < deadline, f"subscriber at {sub.last_seq}, waiting for {seq}"
        message = sub.poll(0.05)
        if isinstance(message, Update):
            got.append(message)
    while (message := sub.poll(0)) is not None:
        if isinstance(message, Update):
            got.append(message)
    return got


def test_live_and_replayed_feeds_are_the_same_bytes(tmp_path: Path, procs: list[Proc]) -> None:
    tp = start_tp(tmp_path)
    procs.append(tp)
    address = str(tp.info["address"])
    live = Subscriber(address, tables=["order_request"], shard=Shard(0, TWO), empty_syms=True)
    try:
        with Publisher(address) as pub:
            for n, sym in enumerate(THEIRS + MINE + THEIRS):
                pub.publish_ipc(
                    "order_request", encode_rows([request_row(new_order(sym, n))], REQUEST_SCHEMA)
                )
                pub.flush()  # a record each
            pub.publish_ipc(
                "order_request", encode_rows([request_row(MassCancel("A1"))], REQUEST_SCHEMA)
            )
            pub.flush()
            mixed = [new_order(THEIRS[1], 99), new_order(MINE[1], 99)]
            pub.publish("order_request", to_table([request_row(r) for r in mixed], REQUEST_SCHEMA))
            pub.flush()
        top = live.tickerplant_seq()
        got = wait_for_seq(live, top)
        syms = [s for u in got for s in pa.ipc.open_stream(u.payload).read_all()["sym"].to_pylist()]
        assert set(syms) & set(THEIRS) <= {THEIRS[1]}  # only in a record with a row of ours
        assert [s for s in syms if s not in THEIRS] == [*MINE, "", MINE[1]]
        with Subscriber(
            address,
            tables=["order_request"],
            shard=Shard(0, TWO),
            empty_syms=True,
            start="journal",
        ) as replayed:
            again = wait_for_seq(replayed, top)
        assert [(u.seq, u.payload) for u in again] == [(u.seq, u.payload) for u in got]
    finally:
        live.close()


def test_a_venue_never_receives_another_shards_orders(tmp_path: Path, procs: list[Proc]) -> None:
    tp = start_tp(tmp_path)
    procs.append(tp)
    address = str(tp.info["address"])
    venue = Venue(address, Shard(0, TWO))
    seen: list[str] = []
    apply = venue.apply

    def recording(message: object) -> object:
        if isinstance(message, Update):
            seen.extend(pa.ipc.open_stream(message.payload).read_all().column("sym").to_pylist())
        return apply(message)  # type: ignore[arg-type]

    venue.apply = recording  # type: ignore[assignment,method-assign]
    try:
        venue.catch_up()
        with Publisher(address) as pub:
            for n, sym in enumerate(THEIRS + MINE):  # a record each, as orders come one by one
                pub.publish_ipc(
                    "order_request", encode_rows([request_row(new_order(sym, n))], REQUEST_SCHEMA)
                )
                pub.flush()
        target = venue._sub.tickerplant_seq()
        deadline = time.monotonic() + 10
        while len(venue.engine.open_orders()) < len(MINE):
            assert time.monotonic() < deadline
            venue.step(0.05)
        with Publisher(address) as pub:
            pub.publish_ipc(
                "order_request", encode_rows([request_row(MassCancel("A1"))], REQUEST_SCHEMA)
            )
            pub.flush()
        while venue.engine.open_orders():
            assert time.monotonic() < deadline, "the mass cancel never reached the venue"
            venue.step(0.05)
        assert seen == [*MINE, ""]  # the other shard's orders never woke it
        assert venue.processed_seq > target
    finally:
        venue.close()
