"""q text literals as the kdb+ ports read them (``tickerplant.kdb_text``): each form gives
the value the IPC decoder would give for the same q value, and a form q refuses is refused."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from qipc.types import Symbol
from tickerplant.kdb_text import QTextError, parse_value

NS = 10**9
WANT: list[tuple[str, Any]] = [
    # temporal atoms
    ("2026.01.02", np.datetime64("2026-01-02", "D")),
    ("2026.01.02D09:30:00.000000001", np.datetime64("2026-01-02T09:30:00.000000001", "ns")),
    ("0D00:00:01.5", np.timedelta64(3 * NS // 2, "ns")),
    ("1D02:00:00", np.timedelta64(26 * 3600 * NS, "ns")),
    ("-0D00:00:01", np.timedelta64(-NS, "ns")),
    ("09:30:00.123", np.timedelta64(34_200_123, "ms")),  # a time
    ("09:30:00", np.timedelta64(34_200, "s")),  # a second
    ("09:30", np.timedelta64(570, "m")),  # a minute
    ("09:30:00.000000001", np.timedelta64(34_200 * NS + 1, "ns")),  # a timespan
    # nulls and infinities
    ("0N", np.int64(np.iinfo(np.int64).min)),
    ("0Ni", np.int32(np.iinfo(np.int32).min)),
    ("0Nh", np.int16(np.iinfo(np.int16).min)),
    ("0W", np.int64(np.iinfo(np.int64).max)),
    ("-0W", np.int64(-np.iinfo(np.int64).max)),
    ("0Wh", np.int16(np.iinfo(np.int16).max)),
    ("0w", np.float64(np.inf)),
    ("-0w", np.float64(-np.inf)),
    ("0we", np.float32(np.inf)),
    # typed atoms
    ("3h", np.int16(3)),
    ("1e", np.float32(1.0)),
    (".5", np.float64(0.5)),
    ("1b", np.bool_(True)),
    ("`a", Symbol("a")),
    # vectors: a suffix on the last item types them all, floats win over integers
    ("1 2 3h", np.array([1, 2, 3], dtype=np.int16)),
    ("1 0N 3i", np.array([1, np.iinfo(np.int32).min, 3], dtype=np.int32)),
    ("1.5 2 3e", np.array([1.5, 2, 3], dtype=np.float32)),
    ("1 2 3.5", np.array([1, 2, 3.5])),
    ("1 2 3", np.array([1, 2, 3])),
    ("101b", np.array([True, False, True])),
    ("`a`b", np.array(["a", "b"], dtype=object)),
    ("2026.01.02 2026.01.03", np.array(["2026-01-02", "2026-01-03"], dtype="datetime64[D]")),
    ("enlist 1", np.array([1])),
]


@pytest.mark.parametrize(("text", "want"), WANT, ids=[t for t, _ in WANT])
def test_a_literal_reads_as_q_has_it(text: str, want: Any) -> None:
    got = parse_value(text)
    if isinstance(want, np.ndarray):
        assert isinstance(got, np.ndarray) and got.dtype == want.dtype
        assert got.tolist() == want.tolist()
    else:
        assert type(got) is type(want) and got == want


@pytest.mark.parametrize("text", ["0n", "0Ne", "0Nf"])
def test_float_nulls(text: str) -> None:
    got = parse_value(text)
    assert isinstance(got, np.floating) and np.isnan(got)
    assert got.dtype == (np.float32 if text.endswith("e") else np.float64)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("1.5h", "not a whole number"),
        ("1.5 2 3h", "not a whole number"),
        ("1h 2", "mixed types"),
        ("1 `a", "not a literal"),
        ("0x01", "not a literal"),
        ('"open', "unterminated string"),
    ],
)
def test_what_q_refuses_is_refused(text: str, why: str) -> None:
    with pytest.raises(QTextError, match=why):
        parse_value(text)
