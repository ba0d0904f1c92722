"""fix.codec's encoder writes the bytes simplefix's does, field for field; its timestamps
are the same whether the second's text was cached or not."""

from __future__ import annotations

import calendar
import random
import time
from typing import Any

import pytest
from support.simplefix_ref import simplefix_encode

from fix import codec
from fix.codec import Field, decode, encode, fix_time, parse_fix_time

VALUES: list[Any] = ["abc", "é ü", 0, 17, -3, 1.5, 100.25, b"raw\x02", True, None, "x" * 300]


def test_encode_matches_simplefix_byte_for_byte() -> None:
    rnd = random.Random(7)
    for _ in range(5000):
        header = [(rnd.choice([49, 56, 34, 52, 35, 9, 10]), rnd.choice(VALUES)) for _ in range(4)]
        body = [
            (rnd.choice([11, 55, 38, 44, 58, 35, 8, 10, 9999999]), rnd.choice(VALUES))
            for _ in range(rnd.randint(0, 12))
        ]
        msg_type = rnd.choice(["8", "D", "AE", "0"])
        assert encode(msg_type, header, body) == simplefix_encode(msg_type, header, body)


def test_an_execution_report_round_trips() -> None:
    header: list[Field] = [(49, "TICKDB"), (56, "C1"), (34, 12), (52, "20260101-10:00:00.123")]
    body: list[Field] = [(37, "O1"), (11, "c1"), (150, "0"), (38, 100), (44, "189.5"), (58, "ok")]
    msg = decode(encode("8", header, body))
    assert msg.msg_type == "8" and msg.seq == 12
    assert [(t, v.decode()) for t, v in msg.fields[7:-1]] == [(t, str(v)) for t, v in body]


@pytest.mark.parametrize("ns", [0, 1_767_225_600_123_456_789, 1_767_225_601_999_000_000])
def test_fix_time_with_and_without_the_cached_second(ns: int) -> None:
    secs, rem = divmod(ns, 1_000_000_000)
    want = time.strftime("%Y%m%d-%H:%M:%S", time.gmtime(secs)) + f".{rem // 1_000_000:03d}"
    codec._formatted = (-1, "")
    assert fix_time(ns) == want  # formatted
    assert fix_time(ns) == want  # from the cache
    codec._formatted = (secs, "20000101-00:00:00")  # a stale entry for this second is used
    assert fix_time(ns).startswith("20000101")  # (shows the cache is keyed by the second)
    codec._formatted = (-1, "")
    assert fix_time(ns + 1_000_000_000) != want  # the next second is formatted anew


def test_parse_fix_time_with_and_without_the_cached_second() -> None:
    whole = "20260101-10:00:00"
    secs = calendar.timegm(time.strptime(whole, "%Y%m%d-%H:%M:%S"))
    for text, ns in [
        (whole, secs * 10**9),
        (whole + ".5", secs * 10**9 + 500_000_000),
        (whole + ".123456", secs * 10**9 + 123_456_000),
        ("20260101-10:00:01.001", (secs + 1) * 10**9 + 1_000_000),
        (whole + ".123456789", secs * 10**9 + 123_456_789),
    ]:
        assert parse_fix_time(text) == ns
    with pytest.raises(ValueError):
        parse_fix_time("20260101-25:00:00.000")
    with pytest.raises(ValueError):
        parse_fix_time(whole + ".12x")
