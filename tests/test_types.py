"""The shared vocabulary in ``tickdb.types``: one shard type and its one sym -> shard
function, and the record a backend reports about itself."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from support.harness import Proc
from support.rdb_stack import SYMS as SYMS_PUBLISHED
from support.rdb_stack import Stack, client, publish_trades, wait_rows

from gateway.backends import BackendState
from gateway.predicates import DateSet, Restriction
from hdb.writer import write_partition
from tickdb.schema import default_schemas
from tickdb.types import UNSHARDED, BackendInfo, Shard, TableInfo, shard_of
from tickerplant import protocol
from tickerplant.ingest import encode_stream
from tickerplant.protocol import KIND_UPD, Record, parse_topic, topic_for
from tickerplant.pubsub import ShardMap, select_rows

TRADE = default_schemas()["trade"]
# Syms as they come: tickers, suffixes, odd punctuation, non-ASCII, one very long one.
SYMS = [f"S{i:04d}" for i in range(2000)] + ["AAPL", "BRK.B", "7203.T", "ÄBC", "", "x" * 300]


@pytest.mark.parametrize(
    ("text", "shard"),
    [
        ("0/1", Shard(0, 1)),
        ("1/3", Shard(1, 3)),
        ("2/3", Shard(2, 3)),
        ("15/16", Shard(15, 16)),
        ("0/1000", Shard(0, 1000)),
    ],
)
def test_parse_and_format_round_trip(text: str, shard: Shard) -> None:
    assert Shard.parse(text) == shard
    assert str(shard) == text
    assert Shard.parse(str(shard)) == shard
    assert Shard.of(text) == Shard.of(shard.to_json()) == Shard.of(shard) == shard
    assert shard.to_json() == [shard.index, shard.count]


@pytest.mark.parametrize(
    "text",
    ["", "1", "1/", "/3", "a/b", "1/3/5", "1.0/3", "3/3", "4/3", "-1/3", "0/0", "1/-2", "all"],
)
def test_bad_text_is_a_value_error_that_quotes_it(text: str) -> None:
    with pytest.raises(ValueError, match="shard") as err:
        Shard.parse(text)
    assert repr(text) in str(err.value)


@pytest.mark.parametrize("value", [[3, 3], [0], [0, 1, 2], ["a", "b"], None, 7, [-1, 2]])
def test_bad_json_is_a_value_error(value: object) -> None:
    with pytest.raises(ValueError, match="shard"):
        Shard.of(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(("index", "count"), [(0, 0), (1, 1), (-1, 2), (2, 2)])
def test_a_shard_outside_its_count_cannot_be_made(index: int, count: int) -> None:
    with pytest.raises(ValueError, match="need 0 <= k < n"):
        Shard(index, count)


@pytest.mark.parametrize("count", [1, 2, 3, 7, 16])
def test_owns_agrees_with_the_tickerplants_function_and_each_sym_has_one_owner(
    count: int,
) -> None:
    assert protocol.shard_of is shard_of  # the wire code uses this very function
    routed = ShardMap()  # what the tickerplant's fan-out and replay use
    for sym in SYMS:
        owners = [k for k in range(count) if Shard(k, count).owns(sym)]
        assert owners == [routed.of(sym, count)] == [shard_of(sym, count)]


@pytest.mark.parametrize("count", [2, 3, 5])
def test_owns_picks_the_rows_a_shard_subscription_receives(count: int) -> None:
    """A subscription to shard k/n, through its topic text, gets exactly the rows k/n owns."""
    rows = len(SYMS)
    table = pa.table(
        {
            "time": pa.array(range(rows), pa.timestamp("ns")),
            "sym": SYMS,
            "price": [1.0] * rows,
            "size": list(range(rows)),
        },
        schema=TRADE.arrow,
    )
    record = Record(KIND_UPD, 1, 0, "trade", (), encode_stream(table, TRADE.arrow))
    seen: list[int] = []
    for k in range(count):
        shard = Shard(k, count)
        selection = parse_topic(topic_for(["trade"], shard=shard))
        assert selection.shard == shard
        picked = select_rows(selection, record, ShardMap(), {"trade": TRADE})
        got = [] if picked is None else picked.to_table().column("sym").to_pylist()
        assert got == [s for s in SYMS if shard.owns(s)]
        seen += picked.to_table().column("size").to_pylist() if picked else []
    assert sorted(seen) == list(range(rows))


def test_the_unsharded_shard_owns_everything_and_names_the_single_hdb_file() -> None:
    from hdb.layout import parse_part, part_name

    assert UNSHARDED == Shard() == Shard(0, 1)
    assert all(UNSHARDED.owns(s) for s in SYMS)
    assert part_name(UNSHARDED) == "part-0-of-1.parquet"
    assert parse_part(part_name(Shard(2, 5))) == Shard(2, 5)


def test_shards_are_values() -> None:
    assert len({Shard(1, 3), Shard.parse("1/3"), Shard.of([1, 3])}) == 1
    assert Shard(1, 3) != Shard(1, 4)


# -- the backend record --------------------------------------------------------------------


def test_what_a_real_rdb_and_hdb_write_reads_back_unchanged(
    tmp_path: Path, procs: list[Proc]
) -> None:
    stack = Stack(tmp_path, procs)
    past = dt.date(2024, 1, 3)
    trades = pa.table(
        {
            "time": pa.array(
                [dt.datetime(2024, 1, 3, 10, i) for i in range(20)], pa.timestamp("ns")
            ),
            "sym": [["AAPL", "MSFT", "IBM"][i % 3] for i in range(20)],
            "price": [100.0] * 20,
            "size": list(range(20)),
        }
    )
    write_partition(stack.data / "hdb", TRADE, past, trades)
    publish_trades(stack.address, 0, 500)
    rdb, hdb = client(stack.start_rdb("rdb", "--shard", "1/2")), client(stack.start_hdb())
    wait_rows(rdb, "trade", sum(Shard(1, 2).owns(SYMS_PUBLISHED[i % 5]) for i in range(500)))

    for raw in (rdb.info(), hdb.info()):
        info = BackendInfo.from_json(raw)
        assert info.to_json() == raw
        assert json.loads(json.dumps(info.to_json())) == raw

    got = BackendInfo.from_json(rdb.info())
    assert got.role == "rdb" and got.shard == Shard(1, 2) and got.query_dates is True
    assert got.date is not None and got.dates == (got.date,)
    assert got.states == {got.date: "live"}
    assert got.tables["trade"].columns[:2] == (("time", "timestamp"), ("sym", "symbol"))
    assert got.seq is not None and got.tp_seq is not None and got.seq <= got.tp_seq
    assert "spills" in got.extra and "query_service" in got.extra  # the RDB's own counters
    # What the gateway makes of it: the RDB holds its shard's syms only.
    state = BackendState("rdb", "rdb", rdb, info=got)
    mine, other = (next(s for s in SYMS_PUBLISHED if Shard(k, 2).owns(s)) for k in (1, 0))
    assert state.may_hold("trade", Restriction(syms=frozenset([mine])))
    assert not state.may_hold("trade", Restriction(syms=frozenset([other])))

    got = BackendInfo.from_json(hdb.info())
    assert got.role == "hdb" and got.shard in (None, UNSHARDED)  # every sym
    assert got.date is None and got.dates is None and got.seq is None  # an HDB has no session
    assert got.tables["trade"] == TableInfo(
        columns=tuple((c.name, c.qtype) for c in TRADE.columns), rows=20, dates=(past,), files=1
    )
    # ... and the HDB its partition's date and later ones, not earlier ones.
    state = BackendState("hdb", "hdb", hdb, info=got)
    assert state.may_hold("trade", Restriction(DateSet.of([past])))
    assert not state.may_hold("trade", Restriction(DateSet.of([past - dt.timedelta(days=1)])))


RDB_INFO: dict[str, Any] = {
    "role": "rdb",
    "shard": [0, 3],
    "date": "2024-01-04",
    "dates": ["2024-01-03", "2024-01-04"],
    "query_dates": True,
    "states": {"2024-01-03": "writing", "2024-01-04": "live"},
    "seq": 41,
    "tp_seq": 42,
    "last_heartbeat": 1704326400.5,
    "tables": {"trade": {"columns": [["sym", "symbol"]], "rows": 7, "dates": ["2024-01-04"]}},
    "spills": 0,
}
HDB_INFO: dict[str, Any] = {
    "role": "hdb",
    "shard": None,
    "tables": {
        "trade": {"columns": [], "rows": 0, "dates": [], "files": 0},
        "quote": {"columns": [["bid", "float"]], "rows": 3, "dates": ["2024-01-02"], "files": 1},
    },
    "generation": 4,
}


@pytest.mark.parametrize(
    "raw",
    [
        RDB_INFO,
        HDB_INFO,
        # A newer backend: keys this version does not know, at the top and in a table.
        {**RDB_INFO, "replicas": [{"host": "b"}], "mode": "standby"},
        {**HDB_INFO, "tables": {"trade": {**HDB_INFO["tables"]["trade"], "bloom": True}}},
        # An older or smaller one: no tables, no session fields.
        {"role": "hdb", "shard": [2, 3], "tables": {}},
        {"role": "rdb", "shard": None, "tables": {}, "date": "2024-01-04"},
    ],
)
def test_the_record_round_trips_and_keeps_unknown_keys(raw: dict[str, Any]) -> None:
    info = BackendInfo.from_json(raw)
    assert info.to_json() == raw
    assert BackendInfo.from_json(info.to_json()) == info


def test_the_record_is_typed() -> None:
    rdb = BackendInfo.from_json(RDB_INFO)
    assert rdb.shard == Shard(0, 3)
    assert rdb.dates == (dt.date(2024, 1, 3), dt.date(2024, 1, 4))
    assert rdb.states == {dt.date(2024, 1, 3): "writing", dt.date(2024, 1, 4): "live"}
    assert rdb.tables["trade"] == TableInfo(
        columns=(("sym", "symbol"),), rows=7, dates=(dt.date(2024, 1, 4),)
    )
    assert rdb.extra == {"spills": 0}
    hdb = BackendInfo.from_json(HDB_INFO)
    assert hdb.shard is None and hdb.tables["quote"].files == 1
    assert hdb.extra == {"generation": 4}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({}, "role must be rdb or hdb"),
        ({"role": "tickerplant"}, "role must be rdb or hdb"),
        ({"role": "rdb", "shard": [3, 3]}, "shard"),
        ({"role": "rdb", "shard": "all"}, "shard"),
        ({"role": "rdb", "date": "yesterday"}, "yesterday"),
        ({"role": "rdb", "seq": "many"}, "many"),
        ({"role": "hdb", "tables": {"trade": {"rows": "lots"}}}, "lots"),
        ({"role": "hdb", "tables": ["trade"]}, "backend info"),
    ],
)
def test_a_record_that_is_not_one_is_a_value_error(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BackendInfo.from_json(raw)
