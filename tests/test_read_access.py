"""Which tables a query reads (``queries.read_access``), as the gateway and the query
services check a reader limited to some tables: every way SQL names a table counts."""

from __future__ import annotations

import pytest

from queries.read_access import check_read, tables_read
from queries.service_protocol import QueryError
from tickdb.auth import Identity

KNOWN = ["trade", "quote", "order"]


@pytest.mark.parametrize(
    ("sql", "reads"),
    [
        ("select count(*) from trade", {"trade"}),
        ("select * from TRADE", {"trade"}),
        ("select * from trade t join quote q on t.sym = q.sym", {"trade", "quote"}),
        ("select * from trade where sym in (select sym from quote)", {"trade", "quote"}),
        ("with quote as (select * from trade) select * from quote", {"trade", "quote"}),
        ("select * from ohlcv('quote', INTERVAL 1 MINUTE)", {"quote"}),
        ("select * from trade union all select * from quote", {"trade", "quote"}),
        ('select * from "order"', {"order"}),
        ("select 1", set()),
        ("select * from nowhere", set()),  # not a table of the stack: nothing to check
        ("select 1; select * from quote", {"quote"}),
    ],
)
def test_every_table_a_query_names_is_found(sql: str, reads: set[str]) -> None:
    assert tables_read(sql, KNOWN) == reads


def test_sql_the_parser_cannot_read_is_refused() -> None:
    with pytest.raises(QueryError, match="cannot tell which tables"):
        tables_read("select from where (", KNOWN)


def test_a_reader_of_some_tables_reads_only_those() -> None:
    trades_only = Identity.from_roles("t", ["read:trade"])
    check_read(trades_only, "select * from trade", KNOWN)
    for sql in ("select * from quote", "select * from ohlcv('quote', INTERVAL 1 MINUTE)"):
        with pytest.raises(QueryError, match="'t' may not read quote \\(only trade\\)"):
            check_read(trades_only, sql, KNOWN)


def test_a_reader_of_every_table_and_an_identity_without_read() -> None:
    check_read(Identity.from_roles("all", ["read"]), "select * from quote, trade", KNOWN)
    with pytest.raises(QueryError, match="'ops' may not read"):
        check_read(Identity.from_roles("ops", ["admin"]), "select 1", KNOWN)
