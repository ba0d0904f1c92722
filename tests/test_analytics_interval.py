from __future__ import annotations

from datetime import timedelta

import pytest

from queries.analytics_interval import format_interval, parse_bar_size, parse_interval

SECOND = 1_000_000_000


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("500ms", 500_000_000),
        ("5s", 5 * SECOND),
        ("1m", 60 * SECOND),  # q's m is minutes, not months or metres
        ("1min", 60 * SECOND),
        ("1h", 3600 * SECOND),
        ("1d", 86_400 * SECOND),
        ("250us", 250_000),
        ("7ns", 7),
        ("1.5s", 1_500_000_000),
        ("-1s", -SECOND),
        (" 2 M ", 120 * SECOND),
        ("0D00:01:00", 60 * SECOND),
        ("0D00:00:00.000000500", 500),
        ("00:05", 300 * SECOND),
        ("-00:00:01", -SECOND),
    ],
)
def test_parse_interval_strings(text: str, ns: int) -> None:
    assert parse_interval(text) == ns


def test_parse_interval_accepts_timedelta_and_int_nanoseconds() -> None:
    assert parse_interval(timedelta(minutes=1, microseconds=3)) == 60 * SECOND + 3_000
    assert parse_interval(1234) == 1234


@pytest.mark.parametrize("bad", ["", "1", "1x", "m", "1 month", "1mo", True, 1.5])
def test_parse_interval_rejects_garbage(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_interval(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["0s", "-1m", "25h", "2d"])
def test_bar_size_must_fit_in_a_day(bad: str) -> None:
    with pytest.raises(ValueError, match="at most one day"):
        parse_bar_size(bad)


def test_format_interval_picks_the_coarsest_exact_unit() -> None:
    assert [format_interval(parse_interval(t)) for t in ["60s", "1500ms", "2h", "1d", "7ns"]] == [
        "1m",
        "1500ms",
        "2h",
        "1d",
        "7ns",
    ]
    assert format_interval(-SECOND) == "neg1s"
