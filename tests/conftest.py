from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from harness import Proc  # noqa: E402


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[list[Proc]]:
    """Collects started processes and stops every one at teardown."""
    started: list[Proc] = []
    yield started
    for proc in reversed(started):
        proc.stop()
