"""translate(): the public contract, and errors that name the construct and its position."""

from __future__ import annotations

import dataclasses

import pytest
import sqlglot

from queries.q import QTranslation, TranslationError, translate
from tickdb.schema import default_schemas

SCHEMAS = default_schemas()


def test_translation_is_one_read_only_select() -> None:
    tr = translate("select max price by sym from trade where date=2024.01.02", SCHEMAS)
    assert isinstance(tr, QTranslation)
    statements = sqlglot.parse(tr.sql, read="duckdb")
    assert len(statements) == 1
    assert isinstance(statements[0], sqlglot.exp.Select)
    with pytest.raises(dataclasses.FrozenInstanceError):
        tr.sql = "DROP TABLE trade"  # type: ignore[misc]


def test_columns_and_keys_describe_the_result() -> None:
    tr = translate("select vwap:size wavg price by sym from trade", SCHEMAS)
    assert tr.columns == (("sym", "symbol"), ("vwap", "float"))
    assert tr.keys == ("sym",)
    plain = translate("select from trade", SCHEMAS)
    assert [c for c, _ in plain.columns] == ["date", "time", "sym", "price", "size"]
    assert plain.keys == ()


def test_sql_names_tables_by_their_logical_names() -> None:
    sql = translate("aj[`sym`time; select from trade; quote]", SCHEMAS).sql
    assert '"trade"' in sql and '"quote"' in sql


def test_where_on_literal_stays_a_plain_pushable_comparison() -> None:
    sql = translate("select from trade where price>100, sym=`AAPL", SCHEMAS).sql
    assert '("price" > CAST(100 AS BIGINT))' in sql
    assert "(\"sym\" = 'AAPL')" in sql


@pytest.mark.parametrize(
    ("q", "pos", "fragment"),
    [
        ("select foo from trade", 7, "unknown column 'foo'"),
        ("select from nosuch", 12, "unknown table 'nosuch'"),
        ("select from trade where time within 09:30 16:00", 29, "timestamp with minute"),
        ('select from trade where sym="AAPL"', 27, "symbols with strings"),
        ("exec price by sym from trade", 0, "exec ... by"),
        ("select max sym from trade", 7, "'max' of symbols"),
        ("select price from trade lj quote", 27, "keyed table"),
        ("select from trade where i<5", 24, "'i'"),
        ("select ema[0.5;price] from trade", 7, "'ema' is not supported"),
        (
            "select d:max price - avg deltas price by sym from trade",
            25,
            "'avg' of a uniform function",
        ),
        ("update x:price from trade where price>avg price", 37, "update where"),
        ("select string price from trade", 7, "'string'"),
        ("select 7 xbar time from trade", 7, "timespan"),
        ("1+2", 1, "not supported as a table"),
        ("select distinct price by sym from trade", 7, "distinct"),
        ("delete price from trade where size>1", 0, "not both"),
        ("select x:1 2 from trade", 0, "literals only"),
        ("select from trade where price within 1", 37, "two-item list"),
        ("select from trade where sym like `a", 33, "string pattern"),
    ],
)
def test_unsupported_q_fails_naming_construct_and_position(q: str, pos: int, fragment: str) -> None:
    with pytest.raises(TranslationError) as info:
        translate(q, SCHEMAS)
    assert fragment in info.value.message, info.value.message
    assert info.value.position == pos, info.value.message
    assert isinstance(info.value, ValueError)
