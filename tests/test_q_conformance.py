"""Each conformance case: translate the q, run it in DuckDB, compare with kdb+'s result."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import pytest
from q_conformance.cases import CASES
from q_conformance.data import Case
from q_conformance.duck import run_q


def _same(got: Any, want: Any) -> bool:
    if isinstance(want, float) and isinstance(got, (int, float)) and got is not None:
        if math.isinf(want) or math.isnan(want):
            return want == got or (math.isnan(want) and math.isnan(got))
        return math.isclose(got, want, rel_tol=1e-7, abs_tol=1e-9)
    if isinstance(want, list) and isinstance(got, list):
        return len(got) == len(want) and all(_same(g, w) for g, w in zip(got, want, strict=True))
    if isinstance(want, dt.time) and isinstance(got, dt.time):
        return got == want
    if isinstance(want, int) and not isinstance(want, bool) and isinstance(got, float):
        return got == want
    return (type(got) is type(want) and got == want) or (got is None and want is None)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_q_matches_kdb(case: Case) -> None:
    names, got = run_q(case.q, case.tables)
    assert names == case.columns, case.q
    assert len(got) == len(case.rows), (case.q, got)
    for got_row, want_row in zip(got, case.rows, strict=True):
        assert len(got_row) == len(want_row)
        assert all(_same(g, w) for g, w in zip(got_row, want_row, strict=True)), (
            case.q,
            got_row,
            want_row,
        )


def test_case_ids_are_unique() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))
