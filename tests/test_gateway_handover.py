"""How the gateway learns which dates an RDB answered for, in process (``gateway.handover``).

An RDB that lists its snapshot's dates in each reply (``query_dates``, as ``tickdb rdb``
does) gets the query as planned; one that does not gets it wrapped with an ``rdb_dates``
marker row. Either way a reply for other dates than the gateway assumed makes it refresh
and ask again. The end-of-day test with real processes is ``test_gateway_eod.py``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from support.gateway_data import TODAY, assert_same_answer, build, make_data

from gateway.errors import QueryError

SQL = "SELECT sym, count(*) AS n, sum(size) AS volume FROM trade GROUP BY sym ORDER BY sym"


@pytest.mark.parametrize("query_dates", [True, False])
def test_rdbs_that_list_their_dates_get_the_query_as_planned(query_dates: bool) -> None:
    tables = make_data(11, 200, 5, 0.0)
    router, reference = build(tables, 1, query_dates)
    try:
        rdb = router.topology.by_name["rdb0"].backend
        got = router.run_sql(SQL)
        assert_same_answer(got.table, reference.sql(SQL).to_arrow_table(), True, SQL)
        (sent,) = rdb.queries  # type: ignore[attr-defined]
        (fetch,) = router.plan(SQL).fetches
        if query_dates:
            assert sent == fetch.sql
        else:
            assert sent != fetch.sql and "rdb_dates" in sent
    finally:
        router.close()


@pytest.mark.parametrize("query_dates", [True, False])
def test_a_reply_for_other_dates_than_assumed_is_asked_again(query_dates: bool) -> None:
    tables = make_data(12, 200, 5, 0.0)
    router, reference = build(tables, 1, query_dates)
    try:
        state = router.topology.by_name["rdb0"]
        assert state.info is not None
        # A stale picture: the RDB is believed to still hold yesterday (mid-handover), so
        # the HDB is told to leave it out; the RDB's answer shows it no longer does.
        held = {*(state.info.dates or ()), TODAY - dt.timedelta(days=1)}
        state.info = dataclasses.replace(state.info, dates=tuple(sorted(held)))
        got = router.run_sql(SQL)
        assert router.topology.stale_retries == 1
        assert_same_answer(got.table, reference.sql(SQL).to_arrow_table(), True, SQL)
    finally:
        router.close()


def test_an_rdb_reply_without_its_dates_is_refused() -> None:
    tables = make_data(13, 50, 3, 0.0)
    router, _ = build(tables, 1, True)
    try:
        # info() said the replies list their dates; this one does not (a mixed upgrade):
        # without them a rolled date could be missed or counted twice, so no answer.
        router.topology.by_name["rdb0"].backend.query_dates = False  # type: ignore[attr-defined]
        with pytest.raises(QueryError, match="does not say which dates") as err:
            router.run_sql(SQL)
        assert err.value.kind == "internal"
    finally:
        router.close()
