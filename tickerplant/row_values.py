"""What a single row may hold, column by column: the check each published value passes.

A row's values are checked as they are published, so a wrong type is the caller's error at
once and nothing is sent. Each q type has a *fast test*, an expression true for the value
the column most often gets (``type(v) is float`` for a float), inlined in the code
generated per table (``tickerplant.row_writer``), and a *normaliser* called only when the
fast test fails: it turns the other accepted values into the one plain Python form the
column is buffered in (an ``int`` of nanoseconds for a timestamp, a ``float`` for an
``int`` given to a float column, ...) or raises ``SchemaError`` naming the table, column,
expected type and value. ``None`` is a null in every column (``time`` excepted: a row
without a time is stamped by the tickerplant).

Accepted, by q type: ``long``/``int``/``short``/``byte`` Python or numpy integers in range;
``float``/``real`` floats and integers; ``symbol``/``string`` str; ``timestamp`` int
nanoseconds since the epoch (UTC), ``datetime`` (naive means UTC), ``pandas.Timestamp``,
``numpy.datetime64``; ``timespan`` int nanoseconds, ``timedelta``, ``numpy.timedelta64``;
``date`` ``datetime.date``; ``time``/``second`` ``datetime.time`` or int milliseconds /
seconds since midnight; ``boolean`` bool; ``guid`` 16 bytes or ``uuid.UUID``.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from tickdb.schema import SchemaError

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_EPOCH_DAY = dt.date(1970, 1, 1)
_FLOAT32_MAX = 3.4028234663852886e38


class NotAValue(Exception):
    """A list, array or mapping where one value was expected: not a row at all (a dict of
    columns, perhaps)."""


def _int_range(bits: int, signed: bool = True) -> tuple[int, int]:
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)


_INT64 = _int_range(64)


def _is_container(value: Any) -> bool:
    return isinstance(value, (list, tuple, dict, set, frozenset)) or (
        hasattr(value, "__array__") and not isinstance(value, np.generic)
    )


def _ns_of_datetime(value: dt.datetime) -> int:
    nanosecond = getattr(value, "nanosecond", 0)  # pandas.Timestamp
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1000 + nanosecond


def _ns_of_timedelta(value: dt.timedelta) -> int:
    nanosecond = getattr(value, "nanoseconds", 0)  # pandas.Timedelta
    return (value.days * 86_400 + value.seconds) * 10**9 + value.microseconds * 1000 + nanosecond


def _integer(value: Any, low: int, high: int) -> int | None:
    """An exact integer in range, else None (bools are not integers here)."""
    if isinstance(value, bool | np.bool_):
        return None
    if isinstance(value, int | np.integer):
        number = int(value)
        return number if low <= number <= high else None
    return None


def _as_int(low: int, high: int) -> Callable[[Any], Any]:
    def normalise(value: Any) -> Any:
        return _integer(value, low, high)

    return normalise


def _as_float(value: Any) -> Any:
    if isinstance(value, bool | np.bool_):
        return None
    if isinstance(value, float | int | np.floating | np.integer):
        return float(value)
    return None


def _as_real(value: Any) -> Any:
    number = _as_float(value)
    if number is None or not math.isfinite(number) or abs(number) <= _FLOAT32_MAX:
        return number
    return None  # finite but beyond float32: Arrow would make it an infinity


def _as_str(value: Any) -> Any:
    if not isinstance(value, str):
        return None
    try:
        value.encode()
    except UnicodeEncodeError:
        return None  # a lone surrogate: not text that UTF-8 (so Arrow) can hold
    return str(value)


def _as_timestamp(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return _integer(_ns_of_datetime(value), *_INT64)
    if isinstance(value, np.datetime64):
        return None if np.isnat(value) else int(value.astype("datetime64[ns]").astype(np.int64))
    return _integer(value, *_INT64)


def _as_timespan(value: Any) -> Any:
    if isinstance(value, dt.timedelta):
        return _integer(_ns_of_timedelta(value), *_INT64)
    if isinstance(value, np.timedelta64):
        return None if np.isnat(value) else int(value.astype("timedelta64[ns]").astype(np.int64))
    return _integer(value, *_INT64)


def _as_date(value: Any) -> Any:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return (value - _EPOCH_DAY).days
    return None


def _as_time_of_day(unit_us: int) -> Callable[[Any], Any]:
    def normalise(value: Any) -> Any:
        if isinstance(value, dt.time):
            micros = ((value.hour * 60 + value.minute) * 60 + value.second) * 10**6
            return (micros + value.microsecond) // unit_us
        return _integer(value, *_int_range(32))

    return normalise


def _as_bool(value: Any) -> Any:
    return bool(value) if isinstance(value, bool | np.bool_) else None


def _as_guid(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return value.bytes
    if isinstance(value, bytes | bytearray) and len(value) == 16:
        return bytes(value)
    return None


@dataclass(frozen=True)
class ValueRule:
    """How one q type's values are tested and normalised."""

    fast: str  # a Python expression over ``{v}``, true when the value needs nothing done
    normalise: Callable[[Any], Any]  # the value in buffered form, or None if not accepted
    accepts: str  # for the error message


def _fast_int(bits: int, signed: bool = True) -> str:
    low, high = _int_range(bits, signed)
    return f"(type({{v}}) is int and {low} <= {{v}} <= {high})"


RULES: dict[str, ValueRule] = {
    "long": ValueRule(_fast_int(64), _as_int(*_int_range(64)), "an integer"),
    "int": ValueRule(_fast_int(32), _as_int(*_int_range(32)), "a 32-bit integer"),
    "short": ValueRule(_fast_int(16), _as_int(*_int_range(16)), "a 16-bit integer"),
    "byte": ValueRule(_fast_int(8, False), _as_int(0, 255), "an integer 0-255"),
    "float": ValueRule("(type({v}) is float)", _as_float, "a float or an integer"),
    "real": ValueRule(
        f"(type({{v}}) is float and -{_FLOAT32_MAX!r} <= {{v}} <= {_FLOAT32_MAX!r})",
        _as_real,
        "a float within float32's range",
    ),
    # Non-ASCII text is checked for what UTF-8 cannot encode (lone surrogates) on the slow
    # path, so that converting a buffer at flush time cannot fail.
    "symbol": ValueRule("(type({v}) is str and {v}.isascii())", _as_str, "a str (UTF-8)"),
    "string": ValueRule("(type({v}) is str and {v}.isascii())", _as_str, "a str (UTF-8)"),
    "timestamp": ValueRule(
        _fast_int(64), _as_timestamp, "int ns since the epoch (UTC), a datetime or datetime64"
    ),
    "timespan": ValueRule(_fast_int(64), _as_timespan, "int ns, a timedelta or timedelta64"),
    "date": ValueRule("False", _as_date, "a datetime.date"),
    "time": ValueRule(_fast_int(32), _as_time_of_day(1000), "a datetime.time or int ms"),
    "second": ValueRule(_fast_int(32), _as_time_of_day(10**6), "a datetime.time or int s"),
    "boolean": ValueRule("(type({v}) is bool)", _as_bool, "a bool"),
    "guid": ValueRule(
        "(type({v}) is bytes and len({v}) == 16)", _as_guid, "16 bytes or a uuid.UUID"
    ),
}


def normaliser(table: str, column: str, qtype: str, nullable: bool = True) -> Callable[[Any], Any]:
    """The slow path of one column's check: the value in buffered form, ``None`` for a
    null (``SchemaError`` when the column is not ``nullable``, as ``sym``: the tickerplant
    refuses a row without one), ``NotAValue`` for a container, ``SchemaError`` for anything
    else."""
    rule = RULES[qtype]
    normalise = rule.normalise

    def check(value: Any) -> Any:
        if value is None:
            if nullable:
                return None
            raise SchemaError(
                f"table {table!r}: column {column!r} may not be null: every row needs one"
            )
        normal = normalise(value)
        if normal is not None:
            return normal
        if _is_container(value):
            raise NotAValue(column)
        shown = repr(value)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        raise SchemaError(
            f"table {table!r}: column {column!r} is {qtype}: it takes {rule.accepts}, "
            f"got {type(value).__name__} {shown}"
        )

    return check
