"""The Arrow merge answers exactly as DuckDB's merge of the same parts, or declines.

Merge queries have the shapes ``decompose`` writes (group keys ``_g*``, partials ``_a*``);
the parts are generated with nulls, NaN, infinities, zero divisors, huge integers and empty
parts. ``ArrowMerge.run`` must give DuckDB's types and rows, or raise ``Unsupported`` (and
only for data it cannot treat exactly: NaN where DuckDB orders it, sums that may overflow).
"""

from __future__ import annotations

import itertools
import math
from decimal import Decimal
from typing import Any

import duckdb
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.gateway_data import TODAY, build, make_data

from gateway.arrow_merge import Unsupported, compile_merge
from gateway.backends import BackendState, Topology
from gateway.local import local_topology
from gateway.router import Router

SUM = "SUM(_a0)"
COUNT = "CAST(COALESCE(SUM(_a1), 0) AS BIGINT)"
AVG = "SUM(_a0) / NULLIF(SUM(_a1), 0)"
SELECTS = [
    f"CAST({SUM} AS DOUBLE) AS s",
    f"CAST({COUNT} AS BIGINT) AS n",
    f"CAST({AVG} AS DOUBLE) AS avg",
    "CAST(SUM(_a0) / SUM(_a2) AS DOUBLE) AS vwap",
    "CAST(SUM(_a2) AS HUGEINT) AS volume",
    "CAST(MIN(_a0) AS DOUBLE) AS lo",
    "CAST(MAX(_a3) AS VARCHAR) AS last_sym",
    "CAST(BOOL_OR(CAST(_a4 AS BOOLEAN)) AS BOOLEAN) AS any_big",
    "CAST(BOOL_AND(_a4) AS BOOLEAN) AS all_big",
    "CAST(CAST(SUM(_a2) AS BIGINT) AS HUGEINT) AS c",
]
HAVING = " HAVING CAST(COALESCE(SUM(_a1), 0) AS BIGINT) > 2"
GLOBAL_TAILS = ["", HAVING, " ORDER BY 1", " LIMIT 0", " OFFSET 1"]
# With groups, OFFSET and LIMIT only with an ORDER BY that fixes which rows they cut.
GROUP_TAILS = [
    "",
    HAVING,
    " ORDER BY 1",
    " LIMIT 0",
    " ORDER BY k DESC NULLS FIRST LIMIT 3 OFFSET 1",
    " HAVING SUM(_a0) > 0 AND MAX(_a1) >= 1 ORDER BY 2 DESC, k LIMIT 4",
]

floats = st.one_of(
    st.none(),
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6),
    st.sampled_from([0.0, math.inf, -math.inf, math.nan]),
)
ints = st.one_of(st.none(), st.integers(-5, 5), st.sampled_from([2**62, -(2**62)]))


@st.composite
def parts(draw: st.DrawFn) -> list[pa.Table]:
    n = draw(st.integers(0, 12))
    rows: dict[str, list[Any]] = {
        "_g0": draw(st.lists(st.sampled_from(["A", "B", "C", None]), min_size=n, max_size=n)),
        "_a0": draw(st.lists(floats, min_size=n, max_size=n)),
        "_a1": draw(st.lists(ints, min_size=n, max_size=n)),
        "_a2": draw(st.lists(ints, min_size=n, max_size=n)),
        "_a3": draw(st.lists(st.sampled_from(["x", "yy", "", None]), min_size=n, max_size=n)),
        "_a4": draw(st.lists(st.sampled_from([True, False, None]), min_size=n, max_size=n)),
    }
    table = pa.table(
        {
            "_g0": pa.array(rows["_g0"], pa.string()),
            "_a0": pa.array(rows["_a0"], pa.float64()),
            "_a1": pa.array(rows["_a1"], pa.int64()),
            "_a2": pa.array(
                [None if v is None else Decimal(v) for v in rows["_a2"]], pa.decimal128(38, 0)
            ),
            "_a3": pa.array(rows["_a3"], pa.string()),
            "_a4": pa.array(rows["_a4"], pa.bool_()),
        }
    )
    cut = sorted(draw(st.lists(st.integers(0, n), max_size=2)))
    bounds = [0, *cut, n]
    return [table.slice(a, b - a) for a, b in itertools.pairwise(bounds)]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-12)
    return bool(a == b)


def _special(table: pa.Table) -> bool:
    """Data the Arrow merge may decline: NaN (given, or made by summing opposite infinities)
    or sums near the integer limits."""
    floats_ = table.column("_a0").to_pylist()
    ints_ = table.column("_a1").to_pylist() + table.column("_a2").to_pylist()
    return any(v is not None and not math.isfinite(v) for v in floats_) or any(
        v is not None and abs(v) >= 2**62 for v in ints_
    )


@settings(max_examples=150, deadline=None)
@given(
    got=parts(),
    selects=st.lists(st.sampled_from(SELECTS), min_size=1, max_size=4, unique=True),
    grouped=st.booleans(),
    data=st.data(),
)
def test_arrow_merge_equals_duckdb_merge(
    got: list[pa.Table], selects: list[str], grouped: bool, data: st.DataObject
) -> None:
    tail = data.draw(st.sampled_from(GROUP_TAILS if grouped else GLOBAL_TAILS))
    keys = "CAST(_g0 AS VARCHAR) AS k, " if grouped else ""
    group = " GROUP BY _g0" if grouped else ""
    sql = f"SELECT {keys}{', '.join(selects)} FROM _parts{group}{tail}"
    program = compile_merge(sql)
    assert program is not None, sql
    stacked = pa.concat_tables(got)
    con = duckdb.connect()
    con.register("_parts", stacked.slice(0, 0))
    schema = con.sql(sql).to_arrow_table().schema  # as the executor learns it
    con.register("_parts", stacked)
    try:
        want = con.sql(sql).to_arrow_table()
    except duckdb.Error:  # an overflow: the Arrow merge must not answer either
        with pytest.raises((Unsupported, pa.ArrowException)):
            program.run(stacked, schema)
        return
    try:
        answer = program.run(stacked, schema)
    except Unsupported:
        assert _special(stacked), sql
        return
    assert answer.schema == want.schema, sql
    rows_got = [tuple(r.values()) for r in answer.to_pylist()]
    rows_want = [tuple(r.values()) for r in want.to_pylist()]
    if "ORDER BY" not in sql:
        rows_got.sort(key=repr)
        rows_want.sort(key=repr)
    assert len(rows_got) == len(rows_want), sql
    for g, w in zip(rows_got, rows_want, strict=True):
        assert all(_same(x, y) for x, y in zip(g, w, strict=True)), f"{sql}\n{g}\n{w}"


@st.composite
def row_parts(draw: st.DrawFn) -> list[pa.Table]:
    n = draw(st.integers(0, 12))
    table = pa.table(
        {
            "k1": pa.array(
                draw(st.lists(st.sampled_from([1, 2, None]), min_size=n, max_size=n)), pa.int64()
            ),
            "k2": pa.array(
                draw(st.lists(st.sampled_from(["a", "B", "", None]), min_size=n, max_size=n)),
                pa.string(),
            ),
            "v": pa.array(draw(st.lists(floats, min_size=n, max_size=n)), pa.float64()),
        }
    )
    cut = sorted(draw(st.lists(st.integers(0, n), max_size=2)))
    return [table.slice(a, b - a) for a, b in itertools.pairwise([0, *cut, n])]


ORDER_KEYS = ["k1", "k2", "v", "a", "2"]  # parts columns (as _o0), an output alias, an ordinal
KEY_OF = {"k1": "a", "k2": "b", "v": "c", "a": "a", "2": "b"}  # the output column each sorts


@settings(max_examples=150, deadline=None)
@given(
    got=row_parts(),
    keys=st.lists(
        st.tuples(
            st.sampled_from(ORDER_KEYS),
            st.sampled_from(["", " DESC"]),
            st.sampled_from(["", " NULLS FIRST", " NULLS LAST"]),
        ),
        min_size=0,
        max_size=3,
        unique_by=lambda k: KEY_OF[k[0]],
    ),
    cut=st.sampled_from(["", " LIMIT 3", " LIMIT 2 OFFSET 1", " OFFSET 4"]),
)
def test_arrow_row_merge_sorts_and_cuts_as_duckdb(
    got: list[pa.Table], keys: list[tuple[str, str, str]], cut: str
) -> None:
    order = " ORDER BY " + ", ".join("".join(k) for k in keys) if keys else ""
    cut = cut if keys else ""  # without ORDER BY a cut picks arbitrary rows
    sql = (
        'SELECT CAST(#1 AS BIGINT) AS "a", CAST(#2 AS VARCHAR) AS "b", CAST(#3 AS DOUBLE) AS "c" '
        f"FROM _parts{order}{cut}"
    )
    program = compile_merge(sql, rows=True)
    assert program is not None, sql
    stacked = pa.concat_tables(got)
    con = duckdb.connect()
    con.register("_parts", stacked)
    want = con.sql(sql).to_arrow_table()
    try:
        answer = program.run(stacked, want.schema)
    except Unsupported:
        assert any(math.isnan(v) for v in stacked.column("v").to_pylist() if v is not None), sql
        return
    assert answer.schema == want.schema, sql
    if not cut:  # the same rows; with a cut, ties may let either engine pick other rows
        assert sorted(map(repr, answer.to_pylist())) == sorted(map(repr, want.to_pylist())), sql
    sort_columns = [KEY_OF[k[0]] for k in keys]
    assert answer.select(sort_columns).to_pylist() == want.select(sort_columns).to_pylist(), sql


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT CAST(STRUCT_EXTRACT(ARG_MIN(_a0, _a1), 'v') AS DOUBLE) AS f FROM _parts",
        "SELECT CAST(ROUND(SUM(_a0), 2) AS DOUBLE) AS r FROM _parts",
        "SELECT CAST(SUM(_a0) * 2 AS DOUBLE) AS r FROM _parts",
        "SELECT CAST(_g0 AS VARCHAR) AS k FROM _parts GROUP BY _g0 HAVING MAX(_a3) > 'x'",
        "SELECT CAST(_g0 AS VARCHAR) AS k FROM _parts WHERE _a0 > 1 GROUP BY _g0",
        "SELECT CAST(_a0 AS DOUBLE) AS k FROM _parts GROUP BY _g0",
    ],
)
def test_shapes_outside_the_arrow_merge_are_left_to_duckdb(sql: str) -> None:
    assert compile_merge(sql) is None


def test_router_merges_small_aggregates_in_arrow_and_falls_back_when_it_must() -> None:
    tables = make_data(3, 300, 5, 0.2)
    router, reference = build(tables, 3)
    try:
        executor = router.executor
        vwap = "SELECT sym, sum(price * size) / sum(size) AS vwap FROM trade GROUP BY sym"
        got = router.run_sql(vwap).table
        assert (executor.arrow_merged, executor.merged) == (1, 0)
        want = dict(reference.sql(vwap).fetchall())
        assert {r["sym"]: r["vwap"] for r in got.to_pylist()} == pytest.approx(want)
        first = "SELECT sym, first(price ORDER BY time) AS open FROM trade GROUP BY sym"
        router.run_sql(first)
        assert (executor.arrow_merged, executor.merged) == (1, 1)
    finally:
        router.close()
    # NaN under MAX: Arrow would skip it, DuckDB orders it above every number.
    nan = tables["trade"].set_column(2, "price", pa.array([math.nan] * 300, pa.float64()))
    nan_tables = {**tables, "trade": nan}
    router = Router(_topology(nan_tables))
    try:
        table = router.run_sql("SELECT max(price) AS hi FROM trade").table
        assert math.isnan(table.column("hi")[0].as_py())
        assert (router.executor.arrow_merged, router.executor.merged) == (0, 1)
    finally:
        router.close()


def _topology(tables: dict[str, pa.Table]) -> Topology:
    backends = local_topology(tables, shards=3, today=TODAY)
    topology = Topology([BackendState(name, b.role, b) for name, b in backends.items()])
    topology.refresh()
    return topology
