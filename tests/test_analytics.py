"""The Python analytics API against hand-computed values and plain pandas computations."""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from queries import analytics
from queries.macros import register_macros

DAY = pd.Timestamp("2024-03-10")  # a US DST change day: must not matter, times are UTC


def trades(rows: Sequence[tuple[str, str, float | None, int | None]]) -> pa.Table:
    return pa.table(
        {
            "time": pa.array(
                [pd.Timestamp(f"2024-03-10 {r[0]}") for r in rows], pa.timestamp("ns")
            ),
            "sym": pa.array([r[1] for r in rows], pa.string()),
            "price": pa.array([r[2] for r in rows], pa.float64()),
            "size": pa.array([r[3] for r in rows], pa.int64()),
        }
    )


def quotes(rows: Sequence[tuple[str, str, float, float, int, int]]) -> pa.Table:
    cols = ["time", "sym", "bid", "ask", "bsize", "asize"]
    frame = pd.DataFrame(rows, columns=cols)
    frame["time"] = pd.to_datetime("2024-03-10 " + frame["time"]).astype("datetime64[ns]")
    return pa.Table.from_pandas(frame, preserve_index=False)


def random_trades(seed: int, n: int = 2000, syms: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    start = DAY.value - 3_600_000_000_000  # from 23:00 the day before: bars cross midnight
    return pd.DataFrame(
        {
            "time": pd.to_datetime(np.sort(rng.integers(start, start + 2 * 3_600_000_000_000, n))),
            "sym": rng.choice([f"S{i}" for i in range(syms)], n),
            "price": rng.uniform(90, 110, n).round(2),
            "size": rng.integers(1, 1000, n),
        }
    )


def to_arrow(frame: pd.DataFrame) -> pa.Table:
    return pa.Table.from_pandas(frame, preserve_index=False)


SAMPLE = trades(
    [
        ("09:30:00", "A", 10.0, 100),
        ("09:30:30", "A", 12.0, 200),
        ("09:30:59.999999999", "A", 9.0, 100),
        ("09:31:00", "A", 11.0, 50),
        ("09:30:10", "B", 5.0, 10),
        ("09:30:20", "B", None, 10),  # not a trade
    ]
)


# --- bars -------------------------------------------------------------------------------------


def test_minute_bars_by_hand() -> None:
    bars = analytics.ohlcv(SAMPLE, "1m").to_pylist()
    assert [(b["sym"], b["time"].isoformat()) for b in bars] == [
        ("A", "2024-03-10T09:30:00"),
        ("A", "2024-03-10T09:31:00"),
        ("B", "2024-03-10T09:30:00"),
    ]
    first = bars[0]
    assert (first["open"], first["high"], first["low"], first["close"]) == (10.0, 12.0, 9.0, 9.0)
    assert (first["volume"], first["ticks"]) == (400, 3)
    assert first["vwap"] == pytest.approx((1000 + 2400 + 900) / 400)
    assert (bars[2]["ticks"], bars[2]["volume"]) == (1, 10)  # the null-price row is left out


def test_bars_have_tick_types() -> None:
    schema = analytics.ohlcv(SAMPLE, "1m").schema
    assert schema.field("time").type == pa.timestamp("ns")
    assert schema.field("volume").type == pa.int64()
    assert schema.field("ticks").type == pa.int64()


def test_bars_of_empty_input_are_empty() -> None:
    empty = SAMPLE.slice(0, 0)
    for result in (
        analytics.ohlcv(empty, "1m"),
        analytics.ohlcv(empty, ticks=5),
        analytics.ohlcv(empty, volume=5),
        analytics.vwap(empty),
        analytics.realized_volatility(empty),
    ):
        assert result.num_rows == 0


def test_ohlcv_needs_exactly_one_bar_kind() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        analytics.ohlcv(SAMPLE)
    with pytest.raises(ValueError, match="exactly one"):
        analytics.ohlcv(SAMPLE, "1m", ticks=3)
    with pytest.raises(ValueError, match="positive"):
        analytics.ohlcv(SAMPLE, ticks=0)


@pytest.mark.parametrize("interval", ["1m", "7m", "5s"])
def test_time_bars_match_pandas(interval: str) -> None:
    frame = random_trades(seed=1)
    freq = interval.replace("m", "min")
    # pandas floors from the epoch; for sizes that divide a day that is midnight, and for 7m we
    # floor the time since midnight ourselves.
    since_midnight = frame["time"] - frame["time"].dt.normalize()
    frame["bar"] = frame["time"].dt.normalize() + since_midnight.dt.floor(freq)
    expected = (
        frame.groupby(["sym", "bar"])
        .agg(
            open=("price", "first"),
            high=("price", "max"),
            low=("price", "min"),
            close=("price", "last"),
            volume=("size", "sum"),
            ticks=("price", "size"),
        )
        .reset_index()
    )
    got = analytics.ohlcv(to_arrow(frame.drop(columns="bar")), interval).to_pandas()
    assert got["time"].tolist() == expected["bar"].tolist()
    for col in ["open", "high", "low", "close", "volume", "ticks"]:
        assert got[col].tolist() == expected[col].tolist(), col


def test_tick_bars_match_pandas() -> None:
    frame = random_trades(seed=2, n=500)
    frame["bar"] = frame.groupby("sym").cumcount() // 7
    expected = frame.groupby(["sym", "bar"]).agg(
        open=("price", "first"), close=("price", "last"), volume=("size", "sum"), n=("size", "size")
    )
    got = analytics.ohlcv(to_arrow(frame.drop(columns="bar")), ticks=7).to_pandas()
    assert got["open"].tolist() == expected["open"].tolist()
    assert got["close"].tolist() == expected["close"].tolist()
    assert got["volume"].tolist() == expected["volume"].tolist()
    assert got["ticks"].tolist() == expected["n"].tolist()
    assert set(got["ticks"]) <= set(range(1, 8))


def test_volume_bars_put_a_trade_in_the_bar_where_it_starts() -> None:
    table = trades(
        [
            ("10:00:00", "A", 1.0, 60),
            ("10:00:01", "A", 2.0, 60),  # starts at 60: bar 0, carries the total to 120
            ("10:00:02", "A", 3.0, 250),  # starts at 120: bar 1, to 370
            ("10:00:03", "A", 4.0, 10),  # starts at 370: bar 3 (bar 2 is skipped)
        ]
    )
    got = analytics.ohlcv(table, volume=100).to_pylist()
    assert [(b["bar"], b["ticks"], b["volume"], b["open"]) for b in got] == [
        (0, 2, 120, 1.0),
        (1, 1, 250, 3.0),
        (3, 1, 10, 4.0),
    ]


@settings(max_examples=25, deadline=None)
@given(
    sizes=st.lists(st.integers(min_value=0, max_value=10_000), min_size=1, max_size=40),
    bar=st.sampled_from([("interval", "1s"), ("ticks", 3), ("volume", 5000)]),
)
def test_bars_conserve_volume_and_ticks(sizes: list[int], bar: tuple[str, object]) -> None:
    n = len(sizes)
    table = pa.table(
        {
            "time": pa.array(DAY.value + np.arange(n) * 300_000_000, pa.timestamp("ns")),
            "sym": pa.array(["A", "B"] * (n // 2) + ["A"] * (n % 2)),
            "price": pa.array(np.linspace(1, 2, n)),
            "size": pa.array(sizes, pa.int64()),
        }
    )
    kind, value = bar
    got = analytics.ohlcv(table, **{kind: value}).to_pandas()  # type: ignore[arg-type]
    assert got["volume"].sum() == sum(sizes)
    assert got["ticks"].sum() == n


# --- averages and volatility ------------------------------------------------------------------


def test_vwap_and_twap_match_pandas() -> None:
    frame = random_trades(seed=3)
    got_vwap = analytics.vwap(to_arrow(frame)).to_pandas().set_index("sym")
    got_twap = analytics.twap(to_arrow(frame)).to_pandas().set_index("sym")
    for sym, group in frame.groupby("sym"):
        vwap = (group["price"] * group["size"]).sum() / group["size"].sum()
        assert got_vwap.loc[sym, "vwap"] == pytest.approx(vwap)
        stood = group["time"].diff().shift(-1).dt.total_seconds().fillna(0)
        twap = (group["price"] * stood).sum() / stood.sum()
        assert got_twap.loc[sym, "twap"] == pytest.approx(twap)


def test_vwap_by_bar() -> None:
    got = analytics.vwap(SAMPLE, interval="1m").to_pylist()
    assert [(r["sym"], r["time"].strftime("%H:%M"), r["volume"]) for r in got] == [
        ("A", "09:30", 400),
        ("A", "09:31", 50),
        ("B", "09:30", 10),
    ]


def test_realized_volatility_matches_pandas() -> None:
    frame = random_trades(seed=4, n=3000)
    got = analytics.realized_volatility(to_arrow(frame), "5m").to_pandas()
    frame["date"] = frame["time"].dt.date
    expected = []
    for (sym, date), group in frame.groupby(["sym", "date"]):
        closes = group.set_index("time")["price"].resample("5min").last().dropna()
        returns = np.log(closes).diff().dropna()
        expected.append((sym, date, len(returns), float(np.sqrt((returns**2).sum()))))
    assert [(r.sym, r.date, r.returns) for r in got.itertuples()] == [e[:3] for e in expected]
    assert got["realized_volatility"].tolist() == pytest.approx([e[3] for e in expected])


# --- joins ------------------------------------------------------------------------------------

QUOTES = quotes(
    [
        ("09:29:00", "A", 9.0, 11.0, 100, 300),
        ("09:30:30", "A", 11.0, 13.0, 200, 200),
        ("09:31:30", "A", 12.0, 14.0, 100, 100),
        ("09:30:00", "B", 4.0, 6.0, 10, 10),
    ]
)


def test_asof_join_matches_pandas_merge_asof() -> None:
    for strict in (False, True):
        got = analytics.asof_join(SAMPLE, QUOTES, strict=strict).to_pandas()
        left = SAMPLE.to_pandas().sort_values("time")
        expected = pd.merge_asof(
            left,
            QUOTES.to_pandas().sort_values("time"),
            on="time",
            by="sym",
            allow_exact_matches=not strict,
        ).sort_values(["sym", "time"])
        assert got["bid"].tolist() == pytest.approx(expected["bid"].tolist(), nan_ok=True)
        assert got["price"].tolist() == pytest.approx(expected["price"].tolist(), nan_ok=True)


def test_asof_join_suffixes_clashing_columns() -> None:
    right = QUOTES.append_column("price", pa.array([1.0, 2.0, 3.0, 4.0]))
    got = analytics.asof_join(SAMPLE, right)
    assert got.column_names[-1] == "price_right"
    assert got.column("price").to_pylist()[0] == 10.0


def brute_window(
    left: pd.DataFrame, right: pd.DataFrame, lo: pd.Timedelta, hi: pd.Timedelta, prevailing: bool
) -> list[float | None]:
    out: list[float | None] = []
    for sym, time in zip(left["sym"], left["time"], strict=True):
        start, end = pd.Timestamp(time) + lo, pd.Timestamp(time) + hi
        same = right[right["sym"] == sym]
        inside = same[(same["time"] >= start) & (same["time"] <= end)]
        asks = inside["ask"].tolist()
        before = same[same["time"] < start]
        if prevailing and len(before):
            asks.append(before.sort_values("time")["ask"].iloc[-1])
        out.append(max(asks) if asks else None)
    return out


@pytest.mark.parametrize("prevailing", [False, True])
def test_window_join_matches_brute_force(prevailing: bool) -> None:
    got = analytics.window_join(
        SAMPLE, QUOTES, ("-1m", "0s"), {"max_ask": "max(ask)"}, prevailing=prevailing
    ).to_pandas()
    left = SAMPLE.to_pandas().sort_values(["sym", "time"], kind="stable")
    expected = brute_window(
        left, QUOTES.to_pandas(), pd.Timedelta("-1min"), pd.Timedelta(0), prevailing
    )
    assert got["max_ask"].tolist() == pytest.approx(
        [np.nan if e is None else e for e in expected], nan_ok=True
    )


def test_window_join_rejects_reversed_windows() -> None:
    with pytest.raises(ValueError, match="after its end"):
        analytics.window_join(SAMPLE, QUOTES, ("1s", "0s"), {"n": "count(*)"})


# --- quote and execution metrics --------------------------------------------------------------


def test_quote_metrics_by_hand() -> None:
    got = analytics.quote_metrics(QUOTES).to_pylist()[0]
    assert (got["mid"], got["spread"], got["imbalance"]) == (10.0, 2.0, -0.5)
    assert got["microprice"] == pytest.approx((9 * 300 + 11 * 100) / 400)
    assert got["spread_bps"] == pytest.approx(2000.0)


FILLS = trades([("09:30:00", "A", 10.5, 100), ("09:30:30", "A", 11.5, 100)]).append_column(
    "side", pa.array(["buy", "sell"])
)


def test_slippage_is_signed_by_side_in_bps() -> None:
    got = analytics.slippage(FILLS, QUOTES).to_pylist()
    assert [g["arrival_mid"] for g in got] == [10.0, 12.0]  # 09:30:30 sees its own-stamp quote
    # buy 10.5 vs mid 10: paid 500 bps; sell 11.5 vs mid 12: gave up 50/12*100 bps
    assert [g["slippage_bps"] for g in got] == pytest.approx([500.0, 0.5 / 12 * 1e4])
    strict = analytics.slippage(FILLS, QUOTES, strict=True).to_pylist()
    assert [g["arrival_mid"] for g in strict] == [10.0, 10.0]


def test_markouts_per_horizon() -> None:
    got = analytics.markouts(FILLS, QUOTES, ["30s", "1m"]).to_pylist()
    assert [g["mid_30s"] for g in got] == [12.0, 12.0]
    assert [g["mid_1m"] for g in got] == [12.0, 13.0]
    # buy at 10.5, mid 12 after 30s: +1.5/10.5; sell at 11.5, mid 13 after 1m: -1.5/11.5
    assert got[0]["markout_30s_bps"] == pytest.approx(1.5 / 10.5 * 1e4)
    assert got[1]["markout_1m_bps"] == pytest.approx(-1.5 / 11.5 * 1e4)
    assert got[0]["slippage_bps"] == pytest.approx(500.0)


def test_markouts_reject_repeated_horizons() -> None:
    with pytest.raises(ValueError, match="repeated"):
        analytics.markouts(FILLS, QUOTES, ["1s", "1000ms"])


# --- connections and SQL text -----------------------------------------------------------------


def test_functions_accept_table_names_on_a_connection() -> None:
    con = duckdb.connect()
    con.register("trade", SAMPLE)
    via_name = analytics.ohlcv("trade", "1m", con=con)
    assert via_name.equals(analytics.ohlcv(SAMPLE, "1m"))
    assert "trade" in {r[0] for r in con.sql("SHOW TABLES").fetchall()}  # views cleaned up only


def test_sql_text_runs_on_any_connection_with_the_macros() -> None:
    con = duckdb.connect()
    register_macros(con)
    con.register("trade", SAMPLE)
    sql = analytics.ohlcv_sql("trade", "1m")
    assert con.sql(sql).to_arrow_table().equals(analytics.ohlcv(SAMPLE, "1m"))


def test_non_table_inputs_are_rejected() -> None:
    with pytest.raises(TypeError, match=r"pyarrow\.Table"):
        analytics.vwap(SAMPLE.to_pandas())
