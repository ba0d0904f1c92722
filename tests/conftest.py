from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import Proc


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[list[Proc]]:
    """Collects started processes and stops every one at teardown."""
    started: list[Proc] = []
    yield started
    for proc in reversed(started):
        proc.stop()
