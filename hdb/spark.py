"""Reading the lake from Spark: ``read_table(spark, "<hdb>", "trade")``.

Spark 4 refuses the lake's ``time`` as it is written (``INT64 TIMESTAMP(NANOS)``: "Illegal
Parquet type") and knows no Parquet INTERVAL or TIME. The files stay as they are (DuckDB,
Polars and PyArrow read nanoseconds natively, and a kdb+ timestamp is nanoseconds); instead
the reader gives Spark an explicit schema, which Spark trusts without converting the whole
footer, with each such column as the plain integers it holds, and builds Spark types from
them: a ``timestamp`` column ``x`` becomes a Spark timestamp (microseconds, as Spark keeps
them) plus ``x_ns``, the exact nanoseconds since the epoch (UTC). No session setting is
changed (the legacy ``nanosAsLong`` flag is not needed).

pyspark is imported only here, and only when called: tickdb does not depend on it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.fs as pafs
import pyarrow.parquet as pq

from hdb.schema_io import schema_of_footer
from tickdb.schema import TableSchema

# q type -> the Spark type its Parquet column is read as (DDL). Stored integers for the types
# Spark cannot read directly; ``_column`` turns them into Spark values.
Q_TO_SPARK_FILE = {
    "timestamp": "BIGINT",  # TIMESTAMP(NANOS): the nanoseconds
    "symbol": "STRING",
    "string": "STRING",
    "float": "DOUBLE",
    "real": "FLOAT",
    "long": "BIGINT",
    "int": "INT",
    "short": "SMALLINT",
    "byte": "SMALLINT",  # unsigned 8-bit: 0..255 does not fit Spark's signed BYTE
    "boolean": "BOOLEAN",
    "date": "DATE",
    "timespan": "BINARY",  # Parquet INTERVAL: 12 bytes, months/days/milliseconds
    "time": "BIGINT",  # TIME(MICROS) since midnight
    "second": "BIGINT",
    "guid": "BINARY",
}
NANOS_SUFFIX = "_ns"


def spark_ddl(schema: TableSchema) -> str:
    """The explicit schema (Spark DDL) the files of ``schema`` are read with."""
    return ", ".join(f"`{c.name}` {Q_TO_SPARK_FILE[c.qtype]}" for c in schema.columns)


def _le_uint32(name: str, byte: int) -> str:
    """Spark SQL: the little-endian unsigned 32-bit integer at ``byte`` of a binary column."""
    digits = " || ".join(f"substr(hex(`{name}`), {2 * (byte + i) + 1}, 2)" for i in (3, 2, 1, 0))
    return f"CAST(conv({digits}, 16, 10) AS BIGINT)"


def _columns(name: str, qtype: str) -> list[str]:
    """Spark SQL select items for one lake column."""
    col = f"`{name}`"
    if qtype == "timestamp":
        # Integer arithmetic (a double cannot hold today's nanoseconds exactly), flooring as
        # time does: 1 ns before the epoch is in the microsecond before it, not after.
        micros = f"({col} - pmod({col}, 1000)) div 1000"
        return [f"timestamp_micros({micros}) AS {col}", f"{col} AS `{name}{NANOS_SUFFIX}`"]
    if qtype in ("time", "second"):
        return [f"make_dt_interval(0, 0, 0, {col} / 1000000.0) AS {col}"]
    if qtype == "timespan":
        days, millis = _le_uint32(name, 4), _le_uint32(name, 8)
        return [f"make_dt_interval({days}, 0, 0, {millis} / 1000.0) AS {col}"]
    return [col]


def lake_schema(hdb: str | Path, table: str) -> TableSchema:
    """The q schema of ``table`` from its newest file's footer, on any file system PyArrow
    opens (a local path, ``s3://…``, ``gs://…``, ``hdfs://…``)."""
    fs, root = pafs.FileSystem.from_uri(_uri(hdb))
    infos = fs.get_file_info(pafs.FileSelector(f"{root.rstrip('/')}/{table}", recursive=True))
    files = sorted(
        i.path
        for i in infos
        if i.path.endswith(".parquet")
        and not any(p.startswith(".") for p in i.path[len(root) :].split("/"))
    )
    if not files:
        raise FileNotFoundError(f"no Parquet files for table {table!r} under {hdb}")
    with fs.open_input_file(files[-1]) as f:
        footer = pq.read_schema(f)
    return schema_of_footer(footer, table, files[-1])


def _uri(hdb: str | Path) -> str:
    """A URI PyArrow opens: Hadoop's ``s3a://`` and ``s3n://`` are its ``s3://``."""
    text = str(hdb)
    if "://" not in text:
        return Path(text).absolute().as_uri()
    scheme, rest = text.split("://", 1)
    return ("s3" if scheme in ("s3a", "s3n") else scheme) + "://" + rest


def read_table(spark: Any, hdb: str | Path, table: str, schema: TableSchema | None = None) -> Any:
    """A Spark DataFrame of ``<hdb>/<table>``: ``date`` first (from the ``date=`` directories),
    then the table's columns in order, each ``timestamp`` column as a Spark timestamp
    followed by ``<name>_ns`` (its exact nanoseconds), ``timespan``/``time``/``second`` as
    day-time intervals. ``schema`` defaults to the one in the newest file's footer."""
    schema = schema or lake_schema(hdb, table)
    path = str(hdb).rstrip("/") + "/" + table
    if "://" not in path:
        path = str(Path(path).absolute())
    raw = spark.read.schema(spark_ddl(schema)).parquet(path)
    items = ["`date`"] + [item for c in schema.columns for item in _columns(c.name, c.qtype)]
    return raw.selectExpr(*items)
