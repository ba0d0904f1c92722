"""Encode Python values to q IPC messages and decode them back (pure Python and numpy).

A message is an 8-byte header and one serialised q object::

    u8 endian (1 little, 0 big) | u8 type (0 async, 1 sync, 2 response) | u8 compressed
    | u8 length bits 32-39 (large messages) | u32 length of the whole message

Vectors are ``i8 type | u8 attributes | u32 count | items``; atoms ``i8 -type | item``.
We always write little-endian and never set attributes; we read either byte order.
Vectors travel as one ``tobytes()`` each and symbols as one NUL-joined string, so a
million-row table encodes in milliseconds per column.
"""

from __future__ import annotations

import datetime as dt
import struct
import uuid
from collections.abc import Mapping
from typing import Any, Literal, NamedTuple

import numpy as np
import numpy.typing as npt

from qipc import types as t
from qipc.compress import compress as _compress
from qipc.compress import decompress
from qipc.temporal import to_numpy, to_wire

_HEADER = struct.Struct("<BBBBI")
_VEC_HEAD = struct.Struct("<bBI")
_TEXT = "utf-8"
_ERRORS = "surrogateescape"  # any bytes survive a decode/encode round trip
# Integer and float wire dtypes: the numpy dtype is the type.
_PLAIN_TYPES = (t.BOOLEAN, t.BYTE, t.SHORT, t.INT, t.LONG, t.REAL, t.FLOAT)
_TEMPORAL_TYPES = (t.TIMESTAMP, t.MONTH, t.DATE, t.TIMESPAN, t.MINUTE, t.SECOND, t.TIME)
# numpy dtypes q has no type for, widened to the nearest q type that holds every value.
_WIDEN: dict[np.dtype[Any], np.dtype[Any]] = {
    np.dtype(np.int8): np.dtype(np.int16),
    np.dtype(np.uint16): np.dtype(np.int32),
    np.dtype(np.uint32): np.dtype(np.int64),
    np.dtype(np.float16): np.dtype(np.float32),
}


class Header(NamedTuple):
    little: bool
    msg_type: int
    compressed: bool
    length: int


def parse_header(header: bytes) -> Header:
    """Read the 8-byte header; raises QProtocolError on an impossible one."""
    if len(header) < t.HEADER_SIZE:
        raise t.QProtocolError("short message header")
    endian, msg_type, compressed, high = header[0], header[1], header[2], header[3]
    if endian not in (0, 1) or msg_type > 2 or compressed > 2:
        raise t.QProtocolError(f"bad message header {bytes(header[:8]).hex()}")
    length = int.from_bytes(header[4:8], "little" if endian else "big") + (high << 32)
    if length < t.HEADER_SIZE + 1:
        raise t.QProtocolError(f"bad message length {length}")
    return Header(bool(endian), msg_type, bool(compressed), length)


def encode(value: Any, msg_type: int = t.ASYNC, *, compress: bool = False) -> bytes:
    """Serialise ``value`` as a whole IPC message; ``compress`` uses the kdb+ algorithm
    when the message is over 2000 bytes and halves at least (as q itself does)."""
    parts: list[bytes] = []
    _encode(value, parts)
    total = t.HEADER_SIZE + sum(len(p) for p in parts)
    if total >= 2**31:
        raise t.QProtocolError(f"message of {total} bytes exceeds the 2 GiB IPC limit")
    message = b"".join([_HEADER.pack(1, msg_type, 0, 0, total), *parts])
    if compress and total > 2000:
        return _compress(message) or message
    return message


def encode_body(value: Any) -> bytes:
    """Serialise ``value`` without a header (what q's ``-8!`` writes after the header)."""
    parts: list[bytes] = []
    _encode(value, parts)
    return b"".join(parts)


def decode(message: bytes | bytearray | memoryview, max_bytes: int = 2**31) -> tuple[int, Any]:
    """Decode a whole message (header included) → (message type, value). A compressed
    message may expand to at most ``max_bytes`` (QProtocolError before expanding)."""
    data = bytes(message)
    header = parse_header(data)
    if header.length != len(data):
        raise t.QProtocolError(f"header says {header.length} bytes, got {len(data)}")
    if header.compressed:
        data = decompress(data, max_bytes)
    reader = _Reader(data, header.little)
    try:
        value = reader.read()
    except RecursionError:
        raise t.QProtocolError("message nests too deeply") from None
    except (IndexError, struct.error, ValueError) as exc:
        if isinstance(exc, t.QProtocolError):
            raise
        raise t.QProtocolError(f"malformed message: {exc}") from None
    if reader.pos != len(data):
        raise t.QProtocolError(f"{len(data) - reader.pos} trailing bytes after the value")
    return header.msg_type, value


# --- encoding -------------------------------------------------------------------------


def _encode(value: Any, parts: list[bytes]) -> None:
    if isinstance(value, np.ndarray):
        _encode_vector(value, parts)
    elif isinstance(value, t.SymbolVector):
        parts.append(_VEC_HEAD.pack(t.SYMBOL, 0, value.count))
        parts.append(value.data)
    elif isinstance(value, t.QError):
        parts.append(b"\x80" + value.message.encode(_TEXT, _ERRORS) + b"\0")
    elif value is None:
        parts.append(b"\x65\x00")  # (::), the generic null
    elif isinstance(value, t.Symbol | np.str_):
        parts.append(b"\xf5" + str(value).encode(_TEXT, _ERRORS) + b"\0")
    elif isinstance(value, t.Char):
        parts.append(b"\xf6" + value.encode("latin-1"))
    elif isinstance(value, str | bytes):
        raw = value.encode(_TEXT, _ERRORS) if isinstance(value, str) else value
        parts.append(_VEC_HEAD.pack(t.CHAR, 0, len(raw)))
        parts.append(raw)
    elif isinstance(value, list | tuple):
        parts.append(_VEC_HEAD.pack(t.GENERAL, 0, len(value)))
        for item in value:
            _encode(item, parts)
    elif isinstance(value, np.generic | bool | int | float | dt.date | dt.timedelta | dt.time):
        _encode_atom(value, parts)
    elif isinstance(value, uuid.UUID):
        parts.append(b"\xfe" + value.bytes)
    elif isinstance(value, t.QTable):
        parts.append(b"\x62\x00\x63")  # table, no attributes, dictionary
        _encode_vector(np.array(list(value.columns), dtype=object), parts)
        parts.append(_VEC_HEAD.pack(t.GENERAL, 0, len(value.columns)))
        for column in value.columns.values():
            _encode(column, parts)
    elif isinstance(value, t.KeyedTable | t.QDict):
        parts.append(b"\x63")
        _encode(value.keys, parts)
        _encode(value.values, parts)
    elif isinstance(value, Mapping):
        keys = list(value)
        if all(isinstance(k, str) for k in keys):
            _encode(t.QDict(np.array(keys, dtype=object), list(value.values())), parts)
        else:
            _encode(t.QDict(keys, list(value.values())), parts)
    elif isinstance(value, t.QLambda):
        parts.append(b"\x64" + value.context.encode(_TEXT, _ERRORS) + b"\0")
        _encode(value.body, parts)
    elif isinstance(value, t.QPrimitive):
        parts.append(struct.pack("<bB", value.qtype, value.code))
    else:
        raise TypeError(f"cannot send a {type(value).__name__} to q")


def _encode_atom(value: Any, parts: list[bytes]) -> None:
    if isinstance(value, bool | np.bool_):
        parts.append(b"\xff\x01" if value else b"\xff\x00")
        return
    if isinstance(value, int) and not isinstance(value, np.generic):
        value = np.int64(value)  # raises OverflowError beyond 64 bits
    elif isinstance(value, float):
        value = np.float64(value)
    elif isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        value = np.datetime64(value, "ns")
    elif isinstance(value, dt.date):
        value = np.datetime64(value, "D")
    elif isinstance(value, dt.timedelta):
        value = np.timedelta64(value, "ns")
    elif isinstance(value, dt.time):
        ms = ((value.hour * 60 + value.minute) * 60 + value.second) * 1000
        value = np.timedelta64(ms + value.microsecond // 1000, "ms")
    vec: list[bytes] = []
    _encode_vector(np.array([value]), vec)
    # A vector of one is ``type attr count item``; the atom is ``-type item``.
    parts.append(struct.pack("<b", -vec[0][0]) + b"".join(vec[1:]))


def _encode_vector(arr: npt.NDArray[Any], parts: list[bytes]) -> None:
    if arr.ndim != 1:
        raise TypeError(f"only 1-d arrays can be sent to q, got shape {arr.shape}")
    dtype: np.dtype[Any] = _WIDEN.get(arr.dtype, arr.dtype)
    kind = dtype.kind
    n = len(arr)
    if kind in "OU" or (kind == "S" and dtype.itemsize != 1):
        parts.append(_VEC_HEAD.pack(t.SYMBOL, 0, n))
        parts.append(_symbols_to_bytes(arr))
        return
    if kind == "S":
        parts.append(_VEC_HEAD.pack(t.CHAR, 0, n))
        parts.append(arr.tobytes())
        return
    if kind == "V" and dtype.itemsize == 16:
        parts.append(_VEC_HEAD.pack(t.GUID, 0, n))
        parts.append(arr.tobytes())
        return
    if kind == "u" and dtype.itemsize == 8:
        if n and int(arr.max()) >= 2**63:
            raise OverflowError("uint64 values beyond the q long range")
        dtype = np.dtype(np.int64)
    if kind in "Mm":
        qtype = t.DTYPE_TO_TYPE.get(dtype)
        if qtype is None:  # other units travel as timestamp / timespan (nanoseconds)
            qtype = t.TIMESTAMP if kind == "M" else t.TIMESPAN
        parts.append(_VEC_HEAD.pack(qtype, 0, n))
        parts.append(to_wire(arr, qtype).tobytes())
        return
    qtype = t.DTYPE_TO_TYPE.get(dtype)
    if qtype is None or qtype not in _PLAIN_TYPES:
        raise TypeError(f"numpy dtype {arr.dtype} has no q type")
    parts.append(_VEC_HEAD.pack(qtype, 0, n))
    parts.append(arr.astype(t.WIRE_DTYPE[qtype], copy=False).tobytes())


def _symbols_to_bytes(arr: npt.NDArray[Any]) -> bytes:
    if not len(arr):
        return b""
    items = arr.tolist()
    if isinstance(items[0], bytes):
        joined_bytes = b"\0".join(items)
        if joined_bytes.count(b"\0") != len(items) - 1:
            raise ValueError("a symbol cannot contain a NUL byte")
        return joined_bytes + b"\0"
    try:
        joined = "\0".join(items)
    except TypeError:
        # None (an Arrow or pandas null) is q's null symbol; anything else is a mistake.
        items = ["" if s is None else s for s in items]
        joined = "\0".join(items)
    if joined.count("\0") != len(items) - 1:
        raise ValueError("a symbol cannot contain a NUL character")
    return joined.encode(_TEXT, _ERRORS) + b"\0"


# --- decoding -------------------------------------------------------------------------


class _Reader:
    def __init__(self, data: bytes, little: bool) -> None:
        self.data = data
        self.pos = t.HEADER_SIZE
        self.order: Literal["<", ">"] = "<" if little else ">"
        self.i32 = struct.Struct(self.order + "i")

    def read(self) -> Any:
        qtype = struct.unpack_from("b", self.data, self.pos)[0]
        self.pos += 1
        if qtype < 0:
            return self._atom(qtype)
        if qtype <= t.TIME:
            self.pos += 1  # attributes: meaningless to a Python reader
            n = self._count()
            return self._vector(qtype, n)
        if qtype == t.TABLE:
            self.pos += 1
            body = self.read()
            if not isinstance(body, t.QDict):
                raise t.QProtocolError("a table must hold a dictionary")
            keys = body.keys
            # Symbol vectors decode as object arrays; anything else cannot name columns.
            if not isinstance(keys, np.ndarray) or keys.dtype != object:
                raise t.QProtocolError("a table's column names must be a symbol vector")
            names = [str(s) for s in keys]
            if not isinstance(body.values, list) or len(body.values) != len(names):
                raise t.QProtocolError("a table's columns must be a list")
            return t.QTable(dict(zip(names, body.values, strict=True)))
        if qtype in (t.DICT, 127):  # 127: a sorted dictionary
            keys = self.read()
            values = self.read()
            if isinstance(keys, t.QTable) and isinstance(values, t.QTable):
                return t.KeyedTable(keys, values)
            return t.QDict(keys, values)
        if qtype == t.LAMBDA:
            context = self._cstring()
            return t.QLambda(context, str(self.read()))
        if qtype in (t.UNARY_PRIMITIVE, t.OPERATOR, t.ITERATOR):
            code = self.data[self.pos]
            self.pos += 1
            if qtype == t.UNARY_PRIMITIVE and code == 0:
                return None
            return t.QPrimitive(qtype, code)
        raise t.QProtocolError(f"unsupported q type {qtype}")

    def _count(self) -> int:
        n: int = self.i32.unpack_from(self.data, self.pos)[0]
        self.pos += 4
        if n < 0 or n > len(self.data) - self.pos:
            raise t.QProtocolError(f"vector length {n} exceeds the message")
        return n

    def _cstring(self) -> str:
        end = self.data.index(b"\0", self.pos)
        text = self.data[self.pos : end].decode(_TEXT, _ERRORS)
        self.pos = end + 1
        return text

    def _atom(self, qtype: int) -> Any:
        if qtype == t.ERROR:
            return t.QError(self._cstring())
        if qtype == -t.SYMBOL:
            return t.Symbol(self._cstring())
        if qtype == -t.CHAR:
            self.pos += 1
            return t.Char(self.data[self.pos - 1 : self.pos].decode("latin-1"))
        if qtype == -t.GUID:
            self.pos += 16
            return uuid.UUID(bytes=self.data[self.pos - 16 : self.pos])
        if -qtype not in t.WIRE_DTYPE:
            raise t.QProtocolError(f"unsupported q atom type {qtype}")
        return self._fixed(-qtype, 1)[0]

    def _vector(self, qtype: int, n: int) -> Any:
        if qtype == t.GENERAL:
            return [self.read() for _ in range(n)]
        if qtype == t.CHAR:
            self.pos += n
            return self.data[self.pos - n : self.pos].decode(_TEXT, _ERRORS)
        if qtype == t.SYMBOL:
            return self._symbols(n)
        if qtype not in t.WIRE_DTYPE:
            raise t.QProtocolError(f"unsupported q vector type {qtype}")
        return self._fixed(qtype, n)

    def _fixed(self, qtype: int, n: int) -> npt.NDArray[Any]:
        wire = t.WIRE_DTYPE[qtype].newbyteorder(self.order)
        size = wire.itemsize * n
        if self.pos + size > len(self.data):
            raise t.QProtocolError("vector runs past the end of the message")
        arr = np.frombuffer(self.data, wire, n, self.pos)
        self.pos += size
        if qtype in _TEMPORAL_TYPES:
            return to_numpy(arr.astype(arr.dtype.newbyteorder("="), copy=False), qtype)
        if qtype == t.DATETIME:
            # Deprecated q datetime: float days since 2000.01.01; milliseconds suffice.
            ms = np.round(arr.astype(np.float64) * 86_400_000) + 10_957 * 86_400_000
            return np.where(np.isfinite(ms), ms, t.NAT).astype(np.int64).view("M8[ms]")
        # Copy: a writable array that does not pin the whole message in memory.
        return arr.astype(t.NUMPY_DTYPE[qtype], copy=True)

    def _symbols(self, n: int) -> npt.NDArray[Any]:
        if n == 0:
            return np.array([], dtype=object)
        data, start = self.data, self.pos
        # Find the n-th NUL with numpy over a window that grows until it holds them all.
        window = max(64, 8 * n)
        while True:
            stop = min(len(data), start + window)
            view = np.frombuffer(data, np.uint8, stop - start, start)
            nuls = np.flatnonzero(view == 0)
            if len(nuls) >= n:
                end = start + int(nuls[n - 1])
                break
            if stop == len(data):
                raise t.QProtocolError("symbol vector runs past the end of the message")
            window *= 4
        self.pos = end + 1
        names = data[start:end].decode(_TEXT, _ERRORS).split("\0")
        out = np.empty(n, dtype=object)
        out[:] = names
        return out
