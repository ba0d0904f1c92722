"""The DuckDB macros, checked against hand-computed values."""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path

import duckdb
import pytest

from queries.macros import MACRO_NAMES, register_macros


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    c = duckdb.connect()
    register_macros(c)
    return c


def one(con: duckdb.DuckDBPyConnection, sql: str) -> object:
    rows = con.sql(sql).fetchall()
    assert len(rows) == 1 and len(rows[0]) == 1, rows
    return rows[0][0]


def test_every_listed_macro_exists(con: duckdb.DuckDBPyConnection) -> None:
    found = {
        r[0]
        for r in con.sql(
            "SELECT function_name FROM duckdb_functions() WHERE database_name = 'temp'"
        ).fetchall()
    }
    assert set(MACRO_NAMES) <= found


def test_register_is_idempotent_and_per_connection(con: duckdb.DuckDBPyConnection) -> None:
    register_macros(con)
    register_macros(con, force=True)
    assert one(con, "SELECT mid(1, 3)") == 2
    cursor = con.cursor()  # a new connection: TEMP macros are not shared
    with pytest.raises(duckdb.CatalogException):
        cursor.sql("SELECT mid(1, 3)").fetchall()
    register_macros(cursor)
    assert one(cursor, "SELECT mid(1, 3)") == 2


def test_register_inside_an_open_transaction_keeps_it_usable() -> None:
    c = duckdb.connect()
    c.execute("CREATE TABLE t (a INTEGER)")
    c.execute("BEGIN TRANSACTION")
    c.execute("INSERT INTO t VALUES (1)")
    register_macros(c)
    c.execute("COMMIT")
    assert one(c, "SELECT count(*) FROM t") == 1
    assert one(c, "SELECT spread(1, 3)") == 2


def test_register_on_a_read_only_database(tmp_path: Path) -> None:
    path = str(tmp_path / "hdb.duckdb")
    duckdb.connect(path).close()
    ro = duckdb.connect(path, read_only=True)
    register_macros(ro)
    assert one(ro, "SELECT imbalance(3, 1)") == 0.5


# --- bars -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ts", "interval", "expected"),
    [
        # a minute bar at 09:30:00 stays at 09:30:00, not shifted
        ("2024-03-11 09:30:00", "INTERVAL 1 MINUTE", "2024-03-11 09:30:00"),
        ("2024-03-11 09:30:59.999999999", "INTERVAL 1 MINUTE", "2024-03-11 09:30:00"),
        # 7 minutes does not divide an hour: bars count from midnight (09:34 = 82 * 7 min),
        # where time_bucket's 2000-01-03 origin would give 09:27
        ("2024-03-11 09:37:12", "INTERVAL 7 MINUTE", "2024-03-11 09:34:00"),
        # 25 minutes: the last bar of the day is short and the next day starts at 00:00
        ("2024-03-11 23:59:00", "INTERVAL 25 MINUTE", "2024-03-11 23:45:00"),
        ("2024-03-12 00:10:00", "INTERVAL 25 MINUTE", "2024-03-12 00:00:00"),
        # 2024-03-10 02:00 is the US spring-forward gap; UTC has no gap
        ("2024-03-10 02:30:00", "INTERVAL 1 HOUR", "2024-03-10 02:00:00"),
        ("1969-12-31 23:59:30", "INTERVAL 1 MINUTE", "1969-12-31 23:59:00"),
        ("2024-03-11 09:30:00", "INTERVAL 1 DAY", "2024-03-11 00:00:00"),
    ],
)
def test_bar_aligns_to_midnight(
    con: duckdb.DuckDBPyConnection, ts: str, interval: str, expected: str
) -> None:
    got = one(con, f"SELECT bar(TIMESTAMP_NS '{ts}', {interval})::VARCHAR")
    assert got == expected


def test_bar_keeps_nanoseconds_and_type(con: duckdb.DuckDBPyConnection) -> None:
    got = one(con, "SELECT bar_ns(TIMESTAMP_NS '2024-03-11 09:30:00.123456789', 500)::VARCHAR")
    assert got == "2024-03-11 09:30:00.1234565"
    assert one(con, "SELECT typeof(bar(TIMESTAMP_NS '2024-01-01', INTERVAL 1 SECOND))") == (
        "TIMESTAMP_NS"
    )


def test_bar_ignores_the_session_time_zone(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("SET TimeZone = 'America/New_York'")
    got = one(con, "SELECT bar(TIMESTAMP_NS '2024-03-10 07:10:00', INTERVAL 1 HOUR)::VARCHAR")
    assert got == "2024-03-10 07:00:00"


def test_bar_rejects_sizes_over_a_day(con: duckdb.DuckDBPyConnection) -> None:
    with pytest.raises(duckdb.InvalidInputException, match="at most one day"):
        con.sql("SELECT bar(TIMESTAMP_NS '2024-01-01', INTERVAL 2 DAY)").fetchall()


def test_bar_chart_builtin_still_works(con: duckdb.DuckDBPyConnection) -> None:
    assert one(con, "SELECT bar(5, 0, 10, 4)") == "██  "


def test_xbar_rounds_numbers_down(con: duckdb.DuckDBPyConnection) -> None:
    assert one(con, "SELECT xbar(0.5, 10.7)") == 10.5
    assert one(con, "SELECT xbar(5, -3)") == -5


# --- aggregates -------------------------------------------------------------------------------

TICKS = """(VALUES
    (TIMESTAMP_NS '2024-01-02 10:00:00', 10.0, 100),
    (TIMESTAMP_NS '2024-01-02 10:00:30', 11.0, 300),
    (TIMESTAMP_NS '2024-01-02 10:00:40', 12.0, 100),
    (TIMESTAMP_NS '2024-01-02 10:00:45', NULL, 500),
    (TIMESTAMP_NS '2024-01-02 10:00:50', 13.0, NULL)
) t(time, price, size)"""


def test_vwap_leaves_out_pairs_with_nulls(con: duckdb.DuckDBPyConnection) -> None:
    expected = (10 * 100 + 11 * 300 + 12 * 100) / 500
    assert one(con, f"SELECT vwap(price, size) FROM {TICKS}") == pytest.approx(expected)


def test_vwap_of_zero_volume_is_null(con: duckdb.DuckDBPyConnection) -> None:
    assert one(con, "SELECT vwap(price, size) FROM (VALUES (10.0, 0)) t(price, size)") is None


def test_twap_weights_each_price_until_the_next_tick(con: duckdb.DuckDBPyConnection) -> None:
    # 10 stands 30s, 11 stands 10s, 12 stands 10s (the null price is not a tick), 13 is last.
    expected = (10 * 30 + 11 * 10 + 12 * 10) / 50
    assert one(con, f"SELECT twap(price, time) FROM {TICKS}") == pytest.approx(expected)


def test_twap_is_order_independent_and_null_without_elapsed_time(
    con: duckdb.DuckDBPyConnection,
) -> None:
    shuffled = f"SELECT * FROM {TICKS} ORDER BY price DESC"
    assert one(con, f"SELECT twap(price, time) FROM ({shuffled})") == pytest.approx(530 / 50)
    single = "(VALUES (TIMESTAMP_NS '2024-01-02', 10.0)) t(time, price)"
    assert one(con, f"SELECT twap(price, time) FROM {single}") is None


def test_twap_and_vwap_group_by_sym(con: duckdb.DuckDBPyConnection) -> None:
    rows = con.sql(
        """SELECT sym, vwap(price, size), twap(price, time) FROM (VALUES
            ('A', TIMESTAMP_NS '2024-01-02 10:00:00', 1.0, 1),
            ('A', TIMESTAMP_NS '2024-01-02 10:00:03', 2.0, 3),
            ('B', TIMESTAMP_NS '2024-01-02 10:00:01', 5.0, 2),
            ('A', TIMESTAMP_NS '2024-01-02 10:00:04', 9.0, 1)) t(sym, time, price, size)
        GROUP BY sym ORDER BY sym"""
    ).fetchall()
    assert rows[0] == ("A", pytest.approx(16 / 5), pytest.approx((1 * 3 + 2 * 1) / 4))
    assert rows[1] == ("B", 5.0, None)


def test_realized_vol_sums_squared_log_returns(con: duckdb.DuckDBPyConnection) -> None:
    expected = math.sqrt(math.log(11 / 10) ** 2 + math.log(12 / 11) ** 2 + math.log(13 / 12) ** 2)
    assert one(con, f"SELECT realized_vol(price, time) FROM {TICKS}") == pytest.approx(expected)


# --- quote and execution metrics --------------------------------------------------------------


def test_quote_metrics_by_hand(con: duckdb.DuckDBPyConnection) -> None:
    row = con.sql(
        "SELECT mid(99.0, 101.0), spread(99.0, 101.0), spread_bps(99.0, 101.0), "
        "microprice(99.0, 101.0, 300, 100), imbalance(300, 100), imbalance(0, 0)"
    ).fetchall()[0]
    # microprice leans toward the ask when the ask is thin: (99*100 + 101*300) / 400
    assert row == (100.0, 2.0, pytest.approx(200.0), pytest.approx(100.5), 0.5, None)


@pytest.mark.parametrize(
    ("side", "sign"), [("buy", 1), ("B", 1), ("SELL", -1), ("s", -1), ("cross", None)]
)
def test_side_sign(con: duckdb.DuckDBPyConnection, side: str, sign: int | None) -> None:
    assert one(con, f"SELECT side_sign('{side}')") == sign


def test_slippage_and_markout_signs(con: duckdb.DuckDBPyConnection) -> None:
    # A buy at 100.1 against a 100 mid cost 10 bps; a sell at 99.9 also cost 10 bps.
    assert one(con, "SELECT slippage_bps(100.1, 100.0, 'buy')") == pytest.approx(10.0)
    assert one(con, "SELECT slippage_bps(99.9, 100.0, 'sell')") == pytest.approx(10.0)
    # A buy at 100 marked to a 101 mid gained 100 bps; a sell lost 100 bps.
    assert one(con, "SELECT markout_bps(100.0, 101.0, 'buy')") == pytest.approx(100.0)
    assert one(con, "SELECT markout_bps(100.0, 101.0, 'sell')") == pytest.approx(-100.0)


# --- table macros -----------------------------------------------------------------------------


def test_table_macros_take_tables_and_ctes(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        """CREATE TABLE trade AS SELECT * FROM (VALUES
            (TIMESTAMP_NS '2024-01-02 09:30:00', 'A', 10.0, 100::BIGINT),
            (TIMESTAMP_NS '2024-01-02 09:30:20', 'A', 12.0, 100::BIGINT),
            (TIMESTAMP_NS '2024-01-02 09:31:00', 'A', 11.0, 50::BIGINT)
        ) t(time, sym, price, size)"""
    )
    con.execute(
        """CREATE TABLE quote AS SELECT * FROM (VALUES
            (TIMESTAMP_NS '2024-01-02 09:29:00', 'A', 9.0, 11.0, 1::BIGINT, 1::BIGINT),
            (TIMESTAMP_NS '2024-01-02 09:30:20', 'A', 11.0, 13.0, 1::BIGINT, 1::BIGINT)
        ) t(time, sym, bid, ask, bsize, asize)"""
    )
    bars = con.sql("SELECT * FROM ohlcv('trade', INTERVAL 1 MINUTE)").fetchall()
    assert [b[1].isoformat() for b in bars] == ["2024-01-02T09:30:00", "2024-01-02T09:31:00"]
    assert bars[0][2:8] == (10.0, 12.0, 10.0, 12.0, 200, 2)
    ticks = con.sql("SELECT bar, volume FROM ohlcv_ticks('trade', 2)").fetchall()
    assert ticks == [(0, 200), (1, 50)]
    volume = con.sql("SELECT bar, ticks FROM ohlcv_volume('trade', 150)").fetchall()
    assert volume == [(0, 2), (1, 1)]
    joined = con.sql("SELECT bid, quote_time FROM asof_quotes('trade', 'quote')").fetchall()
    assert [j[0] for j in joined] == [9.0, 11.0, 11.0]  # 09:30:20 sees its own-stamp quote
    assert joined[1][1] == datetime(2024, 1, 2, 9, 30, 20)
    fills = con.sql(
        """WITH fills AS (SELECT *, 'buy' AS side FROM trade)
        SELECT arrival_mid, slippage_bps FROM slippage('fills', 'quote')"""
    ).fetchall()
    assert fills[0] == (10.0, 0.0)
    assert fills[1] == (12.0, 0.0)
    marks = con.sql(
        """WITH fills AS (SELECT *, 'sell' AS side FROM trade)
        SELECT mid, markout_bps FROM markout('fills', 'quote', INTERVAL 30 SECOND)"""
    ).fetchall()
    assert marks[0] == (12.0, pytest.approx(-2000.0))  # sold at 10, mid went to 12
