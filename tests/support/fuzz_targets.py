"""Every fuzz target by name (``scripts/fuzz.py`` and ``tests/test_fuzz.py`` share them)."""

from __future__ import annotations

from support import fuzz_fix, fuzz_qipc, fuzz_queries, fuzz_tickerplant
from support.fuzz_core import Target

TARGETS: dict[str, Target] = {
    target.name: target
    for target in (
        *fuzz_qipc.TARGETS,
        *fuzz_tickerplant.TARGETS,
        *fuzz_queries.TARGETS,
        *fuzz_fix.TARGETS,
    )
}
