"""Wire names and value types of the query service shared by the RDB and the HDB.

Frames (ZeroMQ ROUTER on the server, DEALER on the client; a REQ client's empty delimiter
frame is accepted and echoed)::

    [QUERY, json {"sql", "timeout_s"?, "max_rows"?, "syms"?}]
                                                       -> [OK, json meta, Arrow IPC stream]
                         meta: {"rows", "truncated", "elapsed_ms", "incarnation", "dates"?}
                                                       | [ERR, json {"kind", "error"}]
    [INFO]                                             -> [INFO, json]
    [<extra tag>, *frames]                             -> whatever the handler returns | [ERR, …]

``docs/query-service.md`` describes the same thing in prose.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import pyarrow as pa
import pyarrow.ipc as ipc

QUERY = b"QUERY"
OK = b"OK"
ERR = b"ERR"
INFO = b"INFO"

ErrorKind = Literal["bad_query", "timeout", "forbidden", "unavailable", "internal"]
ERROR_KINDS: tuple[str, ...] = ("bad_query", "timeout", "forbidden", "unavailable", "internal")


class QueryError(Exception):
    """A query that did not produce a result; ``kind`` says why, ``str(e)`` says what."""

    def __init__(self, kind: ErrorKind | str, message: str) -> None:
        super().__init__(message)
        self.kind: str = kind if kind in ERROR_KINDS else "internal"

    def __repr__(self) -> str:
        return f"QueryError({self.kind!r}, {str(self)!r})"

    def to_frames(self) -> list[bytes]:
        return [ERR, json.dumps({"kind": self.kind, "error": str(self)}).encode()]

    @classmethod
    def from_payload(cls, payload: bytes) -> QueryError:
        try:
            obj = json.loads(payload)
            return cls(str(obj["kind"]), str(obj["error"]))
        except (ValueError, KeyError, TypeError):
            return cls("internal", f"malformed error reply: {payload[:200]!r}")


@dataclass(frozen=True)
class QueryResult:
    """A query's rows; ``truncated`` when the row limit cut them short.

    ``elapsed_ms`` is measured by the server, from receiving the request to having the rows
    (queueing included, transfer excluded).
    """

    table: pa.Table
    truncated: bool
    elapsed_ms: float
    # The dates the rows were read from, when the server says (an RDB: its snapshot's).
    dates: tuple[str, ...] | None = None
    # Which run of the server process answered (its INFO says the same): a caller that
    # vetted the server by an earlier INFO sees from a reply whether it restarted since.
    incarnation: str | None = None


# Per table, the only syms the rows a query reads from it can have (``QueryRequest.syms``).
SymScope = Mapping[str, frozenset[str]]


def encode_request(
    sql: str, timeout_s: float | None, max_rows: int | None, syms: SymScope | None = None
) -> list[bytes]:
    body: dict[str, Any] = {"sql": sql}
    if timeout_s is not None:
        body["timeout_s"] = timeout_s
    if max_rows is not None:
        body["max_rows"] = max_rows
    if syms:
        body["syms"] = {table: sorted(values) for table, values in syms.items()}
    return [QUERY, json.dumps(body).encode()]


@dataclass(frozen=True)
class QueryRequest:
    sql: str
    timeout_s: float | None
    max_rows: int | None
    # A promise from the sender (the gateway, which proved it from the query's WHERE
    # clauses): every row the query reads from table T has a sym in ``syms[T]``. A server
    # may leave T's other rows out of the query's reach (an RDB does: ``rdb.symindex``);
    # tables not named carry no promise.
    syms: SymScope = field(default_factory=dict)


def decode_request(frames: list[bytes]) -> QueryRequest:
    """Parse the frames after the QUERY tag; malformed input raises ``bad_query``."""
    if len(frames) != 1:
        raise QueryError("bad_query", f"QUERY takes one JSON frame, got {len(frames)} frames")
    try:
        body = json.loads(frames[0])
    except (ValueError, UnicodeDecodeError) as exc:
        raise QueryError("bad_query", f"QUERY frame is not JSON: {exc}") from None
    if not isinstance(body, dict) or not isinstance(body.get("sql"), str):
        raise QueryError("bad_query", 'QUERY frame must be a JSON object with a string "sql"')
    timeout_s = body.get("timeout_s")
    max_rows = body.get("max_rows")
    if timeout_s is not None and (
        isinstance(timeout_s, bool) or not isinstance(timeout_s, int | float) or timeout_s <= 0
    ):
        raise QueryError("bad_query", f"timeout_s must be a positive number, got {timeout_s!r}")
    if max_rows is not None and (
        isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 0
    ):
        raise QueryError("bad_query", f"max_rows must be a non-negative integer, got {max_rows!r}")
    return QueryRequest(body["sql"], timeout_s, max_rows, _sym_scope(body.get("syms")))


def _sym_scope(value: object) -> SymScope:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(table, str)
        and isinstance(syms, list)
        and all(isinstance(sym, str) for sym in syms)
        for table, syms in value.items()
    ):
        raise QueryError(
            "bad_query", "syms must be a JSON object of table name -> list of strings (syms)"
        )
    return {table: frozenset(syms) for table, syms in value.items()}


def ipc_stream(table: pa.Table) -> pa.Buffer:
    """``table`` as an Arrow IPC stream in one buffer of the exact size.

    Measured first, then written once: one copy of the rows and no regrowing. The buffer
    goes to ZeroMQ or an HTTP response as it is (buffer protocol), without another copy.
    """
    mock = pa.MockOutputStream()
    with ipc.new_stream(mock, table.schema) as writer:
        writer.write_table(table)
    buffer = pa.allocate_buffer(mock.size())
    with ipc.new_stream(pa.FixedSizeBufferWriter(buffer), table.schema) as writer:
        writer.write_table(table)
    return buffer


def encode_result(
    table: pa.Table, truncated: bool, elapsed_ms: float, extra: dict[str, Any] | None = None
) -> list[Any]:
    meta = {
        **(extra or {}),
        "rows": table.num_rows,
        "truncated": truncated,
        "elapsed_ms": elapsed_ms,
    }
    return [OK, json.dumps(meta).encode(), ipc_stream(table)]


# ZeroMQ hands small messages over inside its receive buffer, at any byte offset. Arrow's
# compute engine (the gateway's Arrow merges) warns on every call over buffers that are not
# aligned to their type, so misaligned buffers are copied (small ones: big messages get
# their own allocation, aligned).
_ALIGNED = ipc.IpcReadOptions(ensure_alignment=ipc.Alignment.DataTypeSpecific)


def decode_result(meta: bytes, payload: memoryview | bytes) -> QueryResult:
    info = json.loads(meta)
    table = ipc.open_stream(pa.py_buffer(payload), options=_ALIGNED).read_all()
    dates = info.get("dates")
    return QueryResult(
        table,
        bool(info["truncated"]),
        float(info["elapsed_ms"]),
        None if dates is None else tuple(str(d) for d in dates),
        None if info.get("incarnation") is None else str(info["incarnation"]),
    )
