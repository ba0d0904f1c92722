"""The CLI's tables are not folded to 80 columns when piped (``tickdb.console_out``)."""

from __future__ import annotations

import pytest
from rich.table import Table

from tickdb.console_out import PIPED_WIDTH, table_console


def test_piped_tables_keep_their_cells(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    console = table_console()
    assert not console.is_terminal  # pytest captures stdout
    assert console.width == PIPED_WIDTH
    table = Table(*[f"column-{i}" for i in range(10)])
    table.add_row(*[f"tickerplant-{i}" for i in range(10)])
    with console.capture() as captured:
        console.print(table)
    assert "tickerplant-9" in captured.get()
    assert "…" not in captured.get()


def test_columns_says_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    assert table_console().width == 100
    assert table_console(stderr=True).width == 100
