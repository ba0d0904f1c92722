"""``GET /console/live``: a tickerplant subscription as server-sent events.

Each client gets its own ``tickerplant.subscriber.Subscriber`` (tables, syms, accounts as
asked; from now on). Updates are drained for up to ``BATCH_S`` and sent as one event per
table, its rows as columns (times as epoch milliseconds), so 10k rows/s are ten events a
second, not ten thousand. A comment line every ``KEEPALIVE_S`` keeps idle connections
(and proxies) open; the subscription closes when the client goes away.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from tickerplant.subscriber import EndOfDay, Message, Subscriber, Update

BATCH_S = 0.1  # how long updates are gathered into one event
POLL_S = 0.25  # one poll's wait: bounds how late a disconnect is noticed
KEEPALIVE_S = 5.0
MAX_BATCH_ROWS = 50_000  # a burst is sent in pieces of this many rows at most


class _Closing:
    """Set when the process stops: uvicorn waits for open responses before it exits, and
    a live stream never ends by itself. A plain flag, so a signal handler may set it."""

    now = False


def end_live_streams() -> None:
    """Every open stream ends within one poll (``POLL_S``)."""
    _Closing.now = True


def sse(event: str, data: Any) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + _json(data) + b"\n\n"


def _json(data: Any) -> bytes:
    return orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY)


def columns(table: pa.Table) -> dict[str, Any]:
    """Columns as JSON-ready values: times as epoch ms, dates as ISO text."""
    out: dict[str, Any] = {}
    for name, column in zip(table.column_names, table.columns, strict=True):
        kind = column.type
        if pa.types.is_timestamp(kind):
            ns = pc.cast(column, pa.timestamp("ns", kind.tz)).cast(pa.int64())
            # Epoch ns exceed a double's exact range; as ms the fraction keeps the µs.
            out[name] = (
                [None if v is None else v / 1e6 for v in ns.to_pylist()]
                if ns.null_count
                else ns.to_numpy() / 1e6
            )
        elif pa.types.is_date(kind) or pa.types.is_time(kind) or pa.types.is_duration(kind):
            out[name] = [None if v is None else str(v) for v in column.to_pylist()]
        elif (pa.types.is_integer(kind) or pa.types.is_floating(kind)) and not column.null_count:
            out[name] = column.to_numpy()
        elif pa.types.is_dictionary(kind):
            out[name] = column.cast(kind.value_type).to_pylist()
        else:
            out[name] = column.to_pylist()
    return out


def drain(sub: Subscriber) -> list[Message]:
    """Whatever arrives within ``BATCH_S`` of the first message (or nothing by ``POLL_S``)."""
    first = sub.poll(POLL_S)
    if first is None:
        return []
    got = [first]
    deadline = time.monotonic() + BATCH_S
    while (left := deadline - time.monotonic()) > 0:
        message = sub.poll(left)
        if message is None:
            break
        got.append(message)
    return got


def events(messages: list[Message]) -> list[bytes]:
    """One ``rows`` event per table (in arrival order), an ``eod`` event per day's end."""
    out: list[bytes] = []
    pending: dict[str, list[Update]] = {}

    def flush() -> None:
        for table, updates in pending.items():
            data = pa.concat_tables([u.data for u in updates], promote_options="default")
            for start in range(0, data.num_rows, MAX_BATCH_ROWS):
                part = data.slice(start, MAX_BATCH_ROWS)
                body = {
                    "table": table,
                    "seq": updates[-1].seq,
                    "rows": part.num_rows,
                    "columns": columns(part),
                }
                out.append(sse("rows", body))
        pending.clear()

    for message in messages:
        if isinstance(message, Update):
            pending.setdefault(message.table, []).append(message)
        elif isinstance(message, EndOfDay):
            flush()
            out.append(sse("eod", {"date": message.date.isoformat(), "seq": message.seq}))
    flush()
    return out


def hello(sub: Subscriber, tables: list[str] | None) -> dict[str, Any]:
    schemas = sub.hello.schemas
    names = tables or sorted(schemas)
    return {
        "seq": sub.hello.seq,
        "tables": {
            name: [{"name": c.name, "type": c.qtype} for c in schemas[name].columns]
            for name in names
            if name in schemas
        },
    }


async def stream(sub: Subscriber, tables: list[str] | None) -> AsyncIterator[bytes]:
    """The event stream; closes the subscription however it ends (a disconnect cancels it)."""
    try:
        yield sse("hello", hello(sub, tables))
        quiet_since = time.monotonic()
        while not _Closing.now:
            messages = await anyio.to_thread.run_sync(drain, sub)
            if messages:
                for chunk in events(messages):
                    yield chunk
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since > KEEPALIVE_S:
                yield b": keepalive\n\n"
                quiet_since = time.monotonic()
    finally:
        sub.close()
