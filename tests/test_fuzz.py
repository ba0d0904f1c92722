"""A short, deterministic fuzz run of every target of ``scripts/fuzz.py`` (docs/security.md).

Each target (``tests/support/fuzz_*.py``) gets arbitrary bytes, its seeds edited by random
flips, inserts, cuts, repeats and dictionary tokens, and (for the text parsers) strings of
its tokens: it must end in a value or its protocol's typed error, never another exception,
and keep its properties. ``derandomize`` makes every run try the same inputs; the long,
coverage-guided runs are ``scripts/fuzz.py``'s. Inputs that once crashed a parser are kept
in ``tests/test_fuzz_regressions.py``.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.fuzz_core import MUTATION_KINDS, Target, mutate
from support.fuzz_targets import TARGETS

# Examples per target: about a second or two each on a loaded machine (the SQL target runs
# every accepted query on DuckDB, the FIX session writes its store).
EXAMPLES = {
    "sql_sandbox": 100,
    "fix_codec": 120,
    "fix_session": 120,
    "tp_journal": 120,
    "tp_ingest_run": 150,
    "tp_onerow": 150,
}
DEFAULT_EXAMPLES = 200
TEXT_TARGETS = {"q_translate", "sql_sandbox"}


def inputs(target: Target) -> st.SearchStrategy[bytes]:
    edits = st.lists(
        st.tuples(
            st.integers(0, MUTATION_KINDS - 1), st.integers(0, 1 << 16), st.integers(0, 1 << 16)
        ),
        max_size=8,
    )
    seeds = target.seeds()
    mutated = st.builds(mutate, st.sampled_from(seeds), edits, st.just(target.tokens))
    choices = [mutated, st.binary(max_size=256)]
    if target.name in TEXT_TARGETS:
        words = st.lists(st.sampled_from(target.tokens), max_size=12)
        choices += [words.map(b" ".join), words.map(b"".join), st.text(max_size=64).map(str.encode)]
    return st.one_of(choices)


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_fuzz_target(name: str) -> None:
    target = TARGETS[name]

    @settings(
        max_examples=EXAMPLES.get(name, DEFAULT_EXAMPLES),
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(inputs(target))
    def run(data: bytes) -> None:
        target.run(data)

    run()
