"""The vocabulary every kdb+ IPC module shares: type codes, epochs, nulls, value classes.

Python values on the q side of the codec (see ``docs/kdb-ipc.md``):

* vectors are numpy arrays whose dtype names the q type (``int64`` → long,
  ``datetime64[ns]`` → timestamp, ``timedelta64[m]`` → minute, ``object`` of ``str`` →
  symbol, ``V16`` → guid, …); numpy times use the Unix epoch, the codec shifts to q's
  2000-01-01 epoch on the wire;
* atoms are numpy scalars of the same dtypes, or :class:`Symbol`, :class:`Char`,
  ``uuid.UUID``; a char vector (a q string) is a plain ``str``;
* general lists are ``list``; :class:`QDict`, :class:`QTable`, :class:`KeyedTable` and
  :class:`QError` stand for dictionaries, tables, keyed tables and errors.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# Message types: byte 1 of the header.
ASYNC = 0
SYNC = 1
RESPONSE = 2


class MsgType(enum.IntEnum):
    ASYNC = ASYNC
    SYNC = SYNC
    RESPONSE = RESPONSE


HEADER_SIZE = 8
# The capability we offer in the handshake: 3 = compression and timestamps/timespans/guids,
# with messages below 2 GiB. Higher values (5, 6) only add >2 GiB messages.
SERVER_CAPABILITY = 3

# Type codes (vectors are positive, atoms the negation).
GENERAL = 0
BOOLEAN = 1
GUID = 2
BYTE = 4
SHORT = 5
INT = 6
LONG = 7
REAL = 8
FLOAT = 9
CHAR = 10
SYMBOL = 11
TIMESTAMP = 12
MONTH = 13
DATE = 14
DATETIME = 15  # deprecated in q; decoded, never produced
TIMESPAN = 16
MINUTE = 17
SECOND = 18
TIME = 19
TABLE = 98
DICT = 99
LAMBDA = 100
UNARY_PRIMITIVE = 101
OPERATOR = 102
ITERATOR = 103
ERROR = -128

TYPE_NAMES: dict[int, str] = {
    BOOLEAN: "boolean",
    GUID: "guid",
    BYTE: "byte",
    SHORT: "short",
    INT: "int",
    LONG: "long",
    REAL: "real",
    FLOAT: "float",
    CHAR: "char",
    SYMBOL: "symbol",
    TIMESTAMP: "timestamp",
    MONTH: "month",
    DATE: "date",
    DATETIME: "datetime",
    TIMESPAN: "timespan",
    MINUTE: "minute",
    SECOND: "second",
    TIME: "time",
}
NAME_TO_TYPE: dict[str, int] = {name: code for code, name in TYPE_NAMES.items()}

# Wire dtype (little-endian) of each fixed-width vector type.
WIRE_DTYPE: dict[int, np.dtype[Any]] = {
    BOOLEAN: np.dtype("?"),
    GUID: np.dtype("V16"),
    BYTE: np.dtype("u1"),
    SHORT: np.dtype("<i2"),
    INT: np.dtype("<i4"),
    LONG: np.dtype("<i8"),
    REAL: np.dtype("<f4"),
    FLOAT: np.dtype("<f8"),
    CHAR: np.dtype("S1"),
    TIMESTAMP: np.dtype("<i8"),
    MONTH: np.dtype("<i4"),
    DATE: np.dtype("<i4"),
    DATETIME: np.dtype("<f8"),
    TIMESPAN: np.dtype("<i8"),
    MINUTE: np.dtype("<i4"),
    SECOND: np.dtype("<i4"),
    TIME: np.dtype("<i4"),
}

# numpy dtype of decoded vectors (native byte order); temporal types use numpy units.
NUMPY_DTYPE: dict[int, np.dtype[Any]] = {
    BOOLEAN: np.dtype(np.bool_),
    GUID: np.dtype("V16"),
    BYTE: np.dtype(np.uint8),
    SHORT: np.dtype(np.int16),
    INT: np.dtype(np.int32),
    LONG: np.dtype(np.int64),
    REAL: np.dtype(np.float32),
    FLOAT: np.dtype(np.float64),
    TIMESTAMP: np.dtype("M8[ns]"),
    MONTH: np.dtype("M8[M]"),
    DATE: np.dtype("M8[D]"),
    DATETIME: np.dtype("M8[ms]"),
    TIMESPAN: np.dtype("m8[ns]"),
    MINUTE: np.dtype("m8[m]"),
    SECOND: np.dtype("m8[s]"),
    TIME: np.dtype("m8[ms]"),
}
DTYPE_TO_TYPE: dict[np.dtype[Any], int] = {
    dt: code for code, dt in NUMPY_DTYPE.items() if code != DATETIME
}

# q counts from 2000-01-01; numpy from 1970-01-01. Offsets in each type's own unit.
EPOCH_OFFSET: dict[int, int] = {
    TIMESTAMP: 946_684_800_000_000_000,  # ns
    DATE: 10_957,  # days
    MONTH: 360,  # months
}

# Null and infinity sentinels of the integer-backed types, by width. q's null is the
# smallest value, +inf the largest and -inf the smallest plus one.
INT_NULL = {2: -(2**15), 4: -(2**31), 8: -(2**63)}
INT_INF = {2: 2**15 - 1, 4: 2**31 - 1, 8: 2**63 - 1}
# numpy's NaT is the int64 minimum, the same bits as q's long null: a timestamp null is NaT
# on both sides of the codec. Infinities of the 32-bit temporal types map to the int64
# extremes so that no real date can collide with them.
NAT = -(2**63)
NP_INF = 2**63 - 1
NP_NINF = -(2**63) + 1


class QError(Exception):
    """A q error (type -128): raised by the client, returned by handlers to signal one."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __eq__(self, other: object) -> bool:
        return isinstance(other, QError) and other.message == self.message

    def __hash__(self) -> int:
        return hash(("QError", self.message))


class QProtocolError(ValueError):
    """A malformed frame, an unsupported type or a message over the size limit."""


class Symbol(str):
    """A q symbol atom (a ``str`` so that handlers can compare it with plain strings)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"`{str.__str__(self)}"


class Char(str):
    """A q char atom: one byte."""

    __slots__ = ()


@dataclass(frozen=True, eq=False)
class SymbolVector:
    """A q symbol vector already in wire form: ``count`` NUL-terminated UTF-8 strings.

    Arrow string columns become this without creating a Python string per row, which is
    most of the cost of sending a large result to q. Reads like the numpy symbol vector it
    stands for (``dtype`` object, ``tolist()``, ``len()``).
    """

    count: int
    data: bytes

    @property
    def dtype(self) -> np.dtype[Any]:
        return np.dtype(object)

    def __len__(self) -> int:
        return self.count

    def tolist(self) -> list[str]:
        return [s.decode("utf-8", "replace") for s in self.data.split(b"\0")[: self.count]]


@dataclass(eq=False)
class QDict:
    """A q dictionary: ``keys`` and ``values`` are vectors or lists of the same length."""

    keys: Any
    values: Any

    def to_dict(self) -> dict[Any, Any]:
        return dict(zip(_as_list(self.keys), _as_list(self.values), strict=True))


@dataclass(eq=False)
class QTable:
    """A q table: ordered columns, each a vector (or a list for string columns)."""

    columns: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        first = next(iter(self.columns.values()), None)
        return 0 if first is None else len(first)

    @property
    def column_names(self) -> list[str]:
        return list(self.columns)


@dataclass(eq=False)
class KeyedTable:
    """A keyed table: a dictionary from a table of keys to a table of values."""

    keys: QTable
    values: QTable


@dataclass(frozen=True)
class QLambda:
    """A q lambda received over IPC: its context and its source text."""

    context: str
    body: str


@dataclass(frozen=True)
class QPrimitive:
    """A q primitive, operator or iterator (types 101-103). ``(::)`` decodes to ``None``."""

    qtype: int
    code: int


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, np.ndarray):
        return list(value.tolist()) if value.dtype != object else list(value)
    return list(value)
