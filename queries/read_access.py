"""Which tables a query reads, for identities whose ``read`` role names tables.

Every table reference counts, as do the table names a table macro takes as strings
(``FROM ohlcv('trade', …)``). A CTE that shadows a table's name counts as that table: a
refusal there is safer than a guess. SQL the parser cannot read is refused for such an
identity, since nobody can say what it reads.
"""

from __future__ import annotations

from collections.abc import Collection

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from queries.service_protocol import QueryError
from tickdb.auth import Identity


def tables_read(sql: str, known: Collection[str]) -> set[str]:
    """The tables of ``known`` that ``sql`` reads. Raises QueryError("forbidden") for SQL
    the parser cannot read."""
    try:
        trees = sqlglot.parse(sql, read="duckdb")
    except SqlglotError:
        raise QueryError("forbidden", "cannot tell which tables this query reads") from None
    known_lower = {name.lower() for name in known}
    found: set[str] = set()
    for tree in trees:
        if tree is None:
            continue
        for table in tree.find_all(exp.Table):
            if isinstance(table.this, exp.Identifier):
                found.add(table.name.lower())
            elif isinstance(table.this, exp.Func):  # a table macro: its tables are strings
                for arg in table.this.find_all(exp.Literal):
                    if arg.is_string:
                        found.add(str(arg.this).lower())
    return found & known_lower


def check_read(identity: Identity, sql: str, known: Collection[str]) -> None:
    """Raise QueryError("forbidden") unless ``identity`` may read every table ``sql`` reads."""
    role = identity.role("read")
    if role is None:
        raise QueryError("forbidden", f"{identity.name!r} may not read")
    if role.resources is None:
        return
    denied = sorted(tables_read(sql, known) - role.resources)
    if denied:
        allowed = ", ".join(sorted(role.resources))
        raise QueryError(
            "forbidden", f"{identity.name!r} may not read {', '.join(denied)} (only {allowed})"
        )
