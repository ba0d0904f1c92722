"""The chaos soak, short: ``scripts/chaos.py`` for a minute against a ``tickdb up`` stack
(a tickerplant pair, RDB and HDB replicas, a venue standby, two gateways) under a feed,
orders, queries and acknowledged publishes, while its components are killed and frozen, the
tickerplant primary and standby included. Slow: ``make test-all`` runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_minute_of_chaos_loses_nothing_doubles_nothing_and_no_query_fails(
    tmp_path: Path,
) -> None:
    out = tmp_path / "chaos.json"
    args = ["--minutes", "1", "--every", "2", "--json", str(out)]
    run = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "chaos.py"), *args],
        capture_output=True,
        text=True,
        timeout=840,
    )
    assert out.exists(), run.stdout[-3000:] + run.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["problems"] == [], run.stdout[-3000:]
    assert run.returncode == 0, run.stdout[-3000:]
    assert result["query_errors"] == [] and result["queries"] > 0
    assert result["orders_acked"] > 0
    hit = {h["kind"] for h in result["hits"]}
    assert hit == {"rdb", "hdb", "venue", "gateway", "tp-primary", "tp-standby"}, result["hits"]
    assert all(h["ms"] < 30_000 for h in result["hits"]), result["hits"]
