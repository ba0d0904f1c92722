"""Arrow rows for the one-row and batch checks (``tickerplant.rowpack``, ``rows_check``):
generated values per column type, and the choice between the C extension and pure Python."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest
from hypothesis import strategies as st

from tickerplant.rowpack import PURE_PYTHON_ENV, compiled


def value_of(kind: pa.DataType) -> st.SearchStrategy[Any]:
    """Values of a column of ``kind``: short text (non-ASCII too), finite floats, any int."""
    if pa.types.is_string(kind):
        return st.text(max_size=6)
    if pa.types.is_floating(kind):
        return st.floats(allow_nan=False)
    if pa.types.is_timestamp(kind):
        return st.integers(0, 2**62)
    return st.integers(-(2**63), 2**63 - 1)


def use_rowpack(pure: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Components made from here on (and processes started from here, which inherit the
    environment) check rows in pure Python, or with the C extension (skipping the test when
    it is not built)."""
    if pure:
        monkeypatch.setenv(PURE_PYTHON_ENV, "1")
        return
    if compiled() is None:
        pytest.skip("tickerplant._rowpack is not built (pip install -e .)")
    monkeypatch.delenv(PURE_PYTHON_ENV, raising=False)
