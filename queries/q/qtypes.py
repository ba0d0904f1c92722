"""q types as the translator sees them, and the DuckDB types that carry them.

Time-of-day types (minute, second, time) travel as DuckDB TIME, month as the DATE of the
first of the month, timespan as INTERVAL, timestamp as TIMESTAMP_NS (naive, UTC).
"""

from __future__ import annotations

SQL_TYPE: dict[str, str] = {
    "boolean": "BOOLEAN",
    "byte": "UTINYINT",
    "short": "SMALLINT",
    "int": "INTEGER",
    "long": "BIGINT",
    "real": "FLOAT",
    "float": "DOUBLE",
    "char": "VARCHAR",
    "symbol": "VARCHAR",
    "string": "VARCHAR",
    "timestamp": "TIMESTAMP_NS",
    "month": "DATE",
    "date": "DATE",
    "timespan": "INTERVAL",
    "minute": "TIME",
    "second": "TIME",
    "time": "TIME",
    "guid": "BLOB",
}

INTEGRAL = frozenset({"boolean", "byte", "short", "int", "long"})
FLOATING = frozenset({"real", "float"})
NUMERIC = INTEGRAL | FLOATING
TEXT = frozenset({"symbol", "string", "char"})
TIME_OF_DAY = frozenset({"minute", "second", "time"})
CALENDAR = frozenset({"timestamp", "date", "month"})
TEMPORAL = TIME_OF_DAY | CALENDAR | {"timespan"}

# Cast names accepted on the left of $ (`date$x) and their one-letter forms ("d"$x).
CAST_NAMES: dict[str, str] = {
    "boolean": "boolean", "b": "boolean",
    "byte": "byte", "x": "byte",
    "short": "short", "h": "short",
    "int": "int", "i": "int",
    "long": "long", "j": "long",
    "real": "real", "e": "real",
    "float": "float", "f": "float",
    "symbol": "symbol", "s": "symbol", "": "symbol",
    "timestamp": "timestamp", "p": "timestamp",
    "month": "month", "m": "month",
    "date": "date", "d": "date",
    "timespan": "timespan", "n": "timespan",
    "minute": "minute", "u": "minute",
    "second": "second", "v": "second",
    "time": "time", "t": "time",
}  # fmt: skip

# Largest finite values: what q's max and min return over an empty or all-null list is the
# infinity of the type, and q's integer infinities are these values.
INT_INFINITY = {"long": 9223372036854775807, "int": 2147483647, "short": 32767}


def sql_type(qtype: str) -> str:
    return SQL_TYPE[qtype]


def promote(a: str | None, b: str | None) -> str | None:
    """The q result type of arithmetic on two numeric types (float wins, then the wider int)."""
    if a is None or b is None:
        return None
    if a in FLOATING or b in FLOATING:
        return "float"
    order = ["boolean", "byte", "short", "int", "long"]
    if a in order and b in order:
        wider = max(order.index(a), order.index(b))
        # q widens booleans and bytes to int in arithmetic.
        return order[max(wider, order.index("int"))]
    return None
