"""Runs a translated q query in an in-memory DuckDB laid out as the gateway lays out tables.

Each logical table is a DuckDB table named after it, with the table's columns plus the
virtual ``date`` partition column (placed last, so that tests catch a translation relying on
column position instead of naming the columns).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa

from queries.q import translate
from tickdb.schema import TableSchema

DAY = dt.datetime(2024, 1, 2, 9, 30)


@dataclass(frozen=True)
class Table:
    """Columns by q type, and rows as tuples in column order.

    Without a ``time`` column the rows are stamped one second apart from 09:30 on 2024.01.02
    and get sym `a; the q under test then sees them in that order.
    """

    columns: Mapping[str, str]
    rows: Sequence[tuple[Any, ...]]

    def schema(self, name: str) -> TableSchema:
        cols = dict(self.columns)
        if "time" not in cols:
            cols = {"time": "timestamp", "sym": "symbol", **cols}
        return TableSchema.from_mapping(name, cols)

    def arrow(self, name: str) -> pa.Table:
        schema = self.schema(name)
        names = list(self.columns)
        data: dict[str, list[Any]] = {n: [r[i] for r in self.rows] for i, n in enumerate(names)}
        if "time" not in data:
            data["time"] = [DAY + dt.timedelta(seconds=i) for i in range(len(self.rows))]
            data["sym"] = ["a"] * len(self.rows)
        arrays = [pa.array(data[c.name], type=c.arrow_type) for c in schema.columns]
        dates = [t.date() if t is not None else None for t in data["time"]]
        table = pa.Table.from_arrays(arrays, schema=schema.arrow)
        return table.append_column("date", pa.array(dates, pa.date32()))


def connect(tables: Mapping[str, Table]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    for name, table in tables.items():
        con.register(f"{name}_arrow", table.arrow(name))
        con.execute(f'CREATE TABLE "{name}" AS SELECT * FROM "{name}_arrow"')
        con.unregister(f"{name}_arrow")
    return con


def run_q(q: str, tables: Mapping[str, Table]) -> tuple[list[str], list[tuple[Any, ...]]]:
    schemas = {name: t.schema(name) for name, t in tables.items()}
    sql = translate(q, schemas).sql
    con = connect(tables)
    cur = con.execute(sql)
    names = [d[0] for d in cur.description]
    return names, cur.fetchall()
