"""The lake as docs/hdb.md tells other readers to open it: ``date`` is a date in each."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from hdb.writer import write_partition
from tickdb.schema import default_schemas

DOC = Path(__file__).resolve().parent.parent / "docs" / "hdb.md"


def reader_snippet() -> str:
    text = DOC.read_text()
    start = text.index("Reading the lake without tickdb")
    match = re.compile(r"```python\n(.*?)```", re.S).search(text, start)
    assert match is not None
    return match.group(1)


def test_documented_readers_give_date_as_a_date(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    day = dt.date(2024, 1, 2)
    trade = pa.table(
        {
            "time": pa.array([dt.datetime(2024, 1, 2, 9, 30)], pa.timestamp("ns")),
            "sym": ["AAPL"],
            "price": [1.5],
            "size": pa.array([3], pa.int64()),
        }
    )
    write_partition(tmp_path / "hdb", default_schemas()["trade"], day, trade)
    monkeypatch.chdir(tmp_path)
    names: dict[str, Any] = {}
    exec(reader_snippet(), names)
    rel, lazy, dataset = names["rel"], names["lazy"], names["dataset"]
    assert rel.fetchall()[0][-1] == day
    assert str(lazy.collect_schema()["date"]) == "Date"
    table = dataset.to_table()
    assert table.schema.field("date").type == pa.date32()
    assert table.column("date").to_pylist() == [day]
