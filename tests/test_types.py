"""The shared vocabulary in ``tickdb.types``: one shard type and its one sym -> shard function."""

from __future__ import annotations

import pyarrow as pa
import pytest

from tickdb.schema import default_schemas
from tickdb.types import UNSHARDED, Shard, shard_of
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
