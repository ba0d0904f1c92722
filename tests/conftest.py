from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.harness import Proc
from support.rdb_engine import DAY, SCHEMAS
from support.row_values import use_rowpack

from rdb.query import QueryEngine
from rdb.store import Store

# Fixtures shared by several test files.
pytest_plugins = ["support.silent_server"]


@pytest.fixture(params=["c", "python"])
def rowpack_impl(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs a test with the C extension ``tickerplant._rowpack`` and with its pure-Python
    fallback (forced by the environment, which processes started by the test inherit)."""
    use_rowpack(request.param == "python", monkeypatch)
    return str(request.param)


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[list[Proc]]:
    """Collects started processes and stops every one at teardown."""
    started: list[Proc] = []
    yield started
    for proc in reversed(started):
        proc.stop()


@pytest.fixture
def rdb(tmp_path: Path) -> Iterator[tuple[Store, QueryEngine]]:
    """A store for ``support.rdb_engine.DAY`` and an engine over it with one cursor
    (intraday files: tmp_path), for the RDB's in-process tests."""
    store = Store(SCHEMAS, DAY)
    engine = QueryEngine(store, intraday_dir=tmp_path, cursors=1)
    yield store, engine
    engine.close()


@pytest.fixture(autouse=True)
def no_installed_component_keys() -> Iterator[None]:
    """A test that runs a command in this process (its config installs the stack's CURVE
    keys, ``tickdb.curve_links.install``) must not leave later tests' clients speaking
    CURVE to plaintext servers: every test starts and ends with none installed."""
    from tickdb import curve_links

    curve_links._installed = None
    yield
    curve_links._installed = None
