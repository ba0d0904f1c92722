"""Fan-out to subscribers (the u.q half of the tickerplant).

Subscribers choose what they get by the topic they set on their SUB socket (see
``protocol.topic_for``). The XPUB socket reports the first subscription to a topic and the
last unsubscription from it, so each distinct selection is filtered once per record no
matter how many subscribers share it, and ZeroMQ copies nothing per subscriber.

Every data message carries ``prev``: the seq of the previous record sent on that topic (or
the tickerplant's seq when the topic appeared). A subscriber whose last seen seq is below
``prev`` missed something, whether ZeroMQ dropped it at the high-water mark or it joined
late, and repairs it from the journal by replay. Heartbeats carry the topic's last seq so
a drop right before a quiet spell is noticed too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
import zmq

from tickdb.schema import TableSchema
from tickerplant import payload_columns
from tickerplant.ingest import encode_stream
from tickerplant.payload_rows import read_one_row_column
from tickerplant.protocol import (
    DATA,
    HEARTBEAT,
    KIND_EOD,
    U64,
    ProtocolError,
    Record,
    TopicFilter,
    parse_topic,
    record_parts,
    shard_of,
)

log = logging.getLogger(__name__)

TOPIC_ERROR = b"E"
_SNDMORE = int(zmq.SNDMORE)
# Records are packed into one ZeroMQ message up to about this size: fewer, larger messages
# are what makes PUB/SUB fast, and the bound keeps a message's memory predictable.
MAX_BLOB_BYTES = 1 << 20


class ShardMap:
    """Caches each symbol's shard: the same few thousand syms recur all day."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, int], int] = {}

    def of(self, sym: str, shards: int) -> int:
        key = (sym, shards)
        shard = self._cache.get(key)
        if shard is None:
            shard = self._cache[key] = shard_of(sym, shards)
        return shard


# Records up to this size are tried as one-row batches (``payload_rows``) before pyarrow:
# an order request or a single tick, where pyarrow's reader is most of the cost of a topic's
# filter. Larger ones are never one row per batch, and are not copied to find that out.
SMALL_RECORD_BYTES = 16384
# Records up to this size are selected row by row in Python (one column read by pyarrow):
# a run of a few orders, where pyarrow's compute calls cost more than the rows.
FEW_ROWS_BYTES = 65536


class RecordRows:
    """One record's rows in the forms selections read them, each made once, when first
    asked for, and shared by every topic: a column's values (all of a small record's
    columns read at once in C, ``payload_columns``; else one-row batches without pyarrow),
    its Arrow table, and each row's shard per shard count."""

    __slots__ = ("_columns", "_read", "_table", "record", "shard_ids")

    def __init__(self, record: Record) -> None:
        self.record = record
        self._columns: dict[str, list[Any] | None] = {}
        # Every column as read in C (``payload_columns``); False: it does not read it.
        self._read: tuple[list[str], list[list[Any]]] | Literal[False] | None = None
        self._table: pa.Table | None = None
        self.shard_ids: dict[int, pa.Array] = {}

    def column(self, name: str) -> list[Any] | None:
        """Column ``name``'s values if the record is small; None for a larger one, or
        when there is no such column."""
        if name not in self._columns:
            payload = self.record.payload
            size = len(payload)
            values = None
            if size <= FEW_ROWS_BYTES:  # in C, all its columns at once, any number of rows
                read = self._read
                if read is None:
                    read = self._read = payload_columns.read(bytes(payload)) or False
                if read:
                    names, columns = read
                    found = name in names
                    self._columns[name] = columns[names.index(name)] if found else None
                    return self._columns[name]
            if size <= SMALL_RECORD_BYTES:
                values = read_one_row_column(payload, name)
            if values is None and size <= FEW_ROWS_BYTES:
                table = self.table()
                if name in table.column_names:
                    values = table.column(name).to_pylist()
            self._columns[name] = values
        return self._columns[name]

    def table(self) -> pa.Table:
        if self._table is None:
            self._table = self.record.to_table()
        return self._table


def _mask(selection: TopicFilter, rows: RecordRows, shards: ShardMap) -> list[bool] | None:
    """Which rows of a small record the selection keeps (None: not a small record, the
    Arrow path decides); the same rows as the Arrow path keeps, row by row."""
    if selection.accounts is not None:
        accounts = rows.column("account")
        if accounts is None:
            return None
        wanted = selection.accounts
        return [account in wanted for account in accounts]
    syms = rows.column("sym")
    if syms is None:
        return None
    if selection.syms is not None:
        chosen = selection.syms
        return [sym in chosen for sym in syms]
    assert selection.shard is not None
    k, n = selection.shard.index, selection.shard.count
    empty = selection.empty_syms
    return [sym is not None and ((empty and not sym) or shards.of(sym, n) == k) for sym in syms]


def select_rows(
    selection: TopicFilter,
    record: Record,
    shards: ShardMap,
    schemas: dict[str, TableSchema],
    rows: RecordRows | None = None,
) -> Record | None:
    """The part of ``record`` a selection wants: the record itself, a filtered copy, or None.

    A venue's selection (``empty_syms``) takes a record whole when any row is its: a run
    of requests for several shards goes to each of their venues as it is, each keeping
    its own rows, so the tickerplant re-encodes nothing on the order path.

    End-of-day records go to every selection. Used for live fan-out and for replay, so a
    replayed record is byte-for-byte what a live subscriber got. ``rows``: the record's
    rows as already read for another selection.
    """
    if record.kind == KIND_EOD:
        return record
    if not selection.wants_table(record.table):
        return None
    if selection.all_rows:
        return record
    if selection.excludes(record.origins):
        return None
    if selection.every_row:
        return record
    if rows is None:
        rows = RecordRows(record)
    # A small record (an order request, a run of a few): row by row in Python, one-row
    # batches without pyarrow at all.
    mask = _mask(selection, rows, shards)
    if mask is not None:
        kept = sum(mask)
        if kept == 0:
            return None
        if kept == len(mask) or selection.empty_syms:
            return record
        cut = rows.table().filter(pa.array(mask, pa.bool_()))
        payload = encode_stream(cut, schemas[record.table].arrow)
        return Record(
            record.kind, record.seq, record.ts_recv, record.table, record.origins, payload
        )
    table = rows.table()
    syms = table.column("sym")
    if selection.accounts is not None:
        if "account" not in table.column_names:
            return None
        mask = pc.is_in(
            table.column("account"), value_set=pa.array(sorted(selection.accounts), pa.string())
        )
    elif selection.syms is not None:
        mask = pc.is_in(syms, value_set=pa.array(sorted(selection.syms), pa.string()))
    else:
        assert selection.shard is not None
        k, n = selection.shard.index, selection.shard.count
        # Each row's shard is worked out once per record and shared by every k of n.
        ids = rows.shard_ids.get(n)
        if ids is None:
            encoded = syms.combine_chunks().dictionary_encode()
            per_sym = pa.array(
                [shards.of(s, n) for s in encoded.dictionary.to_pylist()], pa.int32()
            )
            ids = rows.shard_ids[n] = pc.take(per_sym, encoded.indices)
        mask = pc.equal(ids, k)
        if selection.empty_syms:  # rows addressed to every shard (a mass cancel)
            mask = pc.or_(mask, pc.equal(syms, ""))
    kept = int(pc.sum(mask).as_py() or 0)
    if kept == 0:
        return None
    if kept == table.num_rows or selection.empty_syms:
        return record
    payload = encode_stream(table.filter(mask), schemas[record.table].arrow)
    return Record(record.kind, record.seq, record.ts_recv, record.table, record.origins, payload)


class Outgoing:
    """A journaled record on its way to subscribers, and its bytes as consecutive parts.

    Plain slots, not a ``Record``: one is made per record, and only a filtered topic
    needs the record itself.
    """

    __slots__ = ("kind", "origins", "parts", "payload", "seq", "table", "ts_recv")

    def __init__(
        self,
        kind: int,
        seq: int,
        ts_recv: int,
        table: str,
        origins: tuple[tuple[bytes, int], ...],
        payload: bytes | memoryview,
        parts: tuple[bytes | memoryview, ...],
    ) -> None:
        self.kind, self.seq, self.ts_recv, self.table = kind, seq, ts_recv, table
        self.origins, self.payload, self.parts = origins, payload, parts

    @property
    def record(self) -> Record:
        return Record(self.kind, self.seq, self.ts_recv, self.table, self.origins, self.payload)


@dataclass
class Topic:
    name: bytes
    selection: TopicFilter
    last_seq: int


# Checked subscriptions (CURVE): what a subscriber who is ``who`` may not read of a
# selection ("" when it may read it all).
ReadCheck = Callable[[str | None, TopicFilter], str]


class Fanout:
    """``check`` set: the socket is an XPUB with ``XPUB_MANUAL`` and a subscription reaches
    its subscriber only once ``check`` allowed it (``on_checked_subscription``)."""

    def __init__(
        self,
        socket: zmq.Socket,
        schemas: dict[str, TableSchema],
        check: ReadCheck | None = None,
    ) -> None:
        self.socket = socket
        # pyzmq's own send, without its Python wrapper's checks for options this socket
        # never uses (routing ids, groups): three of them per message sent.
        send: Any = super(zmq.Socket, socket).send
        self._send_frame: Callable[..., object] = send
        self.schemas = schemas
        self.topics: dict[bytes, Topic] = {}
        self.shards = ShardMap()
        self.messages_sent = 0
        self.bad_subscriptions = 0
        self.check = check
        self.refused_subscriptions = 0
        # Checked subscriptions: per topic, the subscriptions asked for and not yet ended.
        self._asked: dict[bytes, int] = {}

    def _selection(self, name: bytes) -> TopicFilter:
        selection = parse_topic(name)
        unknown = sorted((selection.tables or frozenset()) - set(self.schemas))
        if unknown:
            known = ", ".join(sorted(self.schemas))
            raise ProtocolError(f"unknown tables {unknown} (known: {known})")
        return selection

    def on_subscription(self, message: bytes, seq: int) -> None:
        if not message:
            return
        subscribe, name = message[0] == 1, bytes(message[1:])
        if not subscribe:
            if self.topics.pop(name, None) is not None:
                log.info("last subscriber left %r", name)
            return
        try:
            selection = self._selection(name)
        except ProtocolError as exc:
            self.bad_subscriptions += 1
            log.warning("refused subscription %r: %s", name[:80], exc)
            self.socket.send_multipart([name, TOPIC_ERROR + str(exc).encode()])
            return
        self.topics[name] = Topic(name, selection, seq)
        log.info("subscription %r at seq %d", name, seq)

    def on_checked_subscription(self, message: bytes, who: str | None, seq: int) -> None:
        """A subscription message of an ``XPUB_MANUAL`` socket, from the subscriber ``who``
        (the ZAP User-Id; None: a subscriber that went away, whose subscriptions libzmq
        ends one by one).

        Each subscription is applied to its own subscriber only if ``check`` allows it: a
        refused one (or a malformed one, which could be a prefix of every topic) never
        reaches the socket's filter, so nothing is sent to that subscriber. libzmq passes
        every subscriber's subscriptions up, so a topic counts them and is forgotten when
        the last subscriber that asked for it went away. An unsubscription a live
        subscriber sends stops its messages but leaves the count: libzmq does not say
        whether that subscriber had asked for the topic, and trusting it would let one
        subscriber end another's topic."""
        if not message:
            return
        subscribe, name = message[0] == 1, bytes(message[1:])
        if not subscribe:
            if who is not None:
                self.socket.setsockopt(zmq.UNSUBSCRIBE, name)
                log.info("%r unsubscribed from %r; kept until its connection ends", who, name)
                return
            left = self._asked.get(name, 0) - 1
            if left > 0:
                self._asked[name] = left
                return
            self._asked.pop(name, None)
            if self.topics.pop(name, None) is not None:
                log.info("last subscriber left %r", name)
            return
        self._asked[name] = self._asked.get(name, 0) + 1
        try:
            selection = self._selection(name)
        except ProtocolError as exc:
            self.bad_subscriptions += 1
            log.warning("refused subscription %r of %r: %s", name[:80], who, exc)
            return
        assert self.check is not None
        denied = self.check(who, selection)
        if denied:
            self.refused_subscriptions += 1
            log.warning("refused subscription %r of %r: may not read %s", name[:80], who, denied)
            return
        self.socket.setsockopt(zmq.SUBSCRIBE, name)
        if name not in self.topics:
            self.topics[name] = Topic(name, selection, seq)
            log.info("subscription %r at seq %d", name, seq)

    def publish(self, batch: Iterable[Outgoing]) -> None:
        """Send journaled records to every topic that wants them, packed per topic."""
        if not self.topics:
            return
        per_topic: dict[bytes, list[tuple[int, tuple[bytes | memoryview, ...]]]] = {}
        for out in batch:
            record: Record | None = None
            rows: RecordRows | None = None
            everyone = out.kind == KIND_EOD  # end of day goes to every selection
            for topic in self.topics.values():
                selection = topic.selection
                if not everyone and not selection.wants_table(out.table):
                    continue
                if everyone or selection.all_rows:
                    per_topic.setdefault(topic.name, []).append((out.seq, out.parts))
                    continue
                if record is None or rows is None:
                    record = out.record
                    rows = RecordRows(record)
                picked = select_rows(selection, record, self.shards, self.schemas, rows)
                if picked is None:
                    continue
                parts = out.parts if picked is record else _parts(picked)
                per_topic.setdefault(topic.name, []).append((out.seq, parts))
        for name, items in per_topic.items():
            self._send(self.topics[name], items)

    def _send(self, topic: Topic, items: list[tuple[int, tuple[bytes | memoryview, ...]]]) -> None:
        # Frame by frame with plain int flags: send_multipart combines flag enums per frame,
        # which costs more than the sends of a small message.
        send = self._send_frame
        start, count = 0, len(items)
        while start < count:
            pieces = list(items[start][1])
            size = sum(map(len, pieces))
            end = start + 1
            while end < count:
                parts = items[end][1]
                more = sum(map(len, parts))
                if size + more > MAX_BLOB_BYTES:
                    break
                pieces.extend(parts)
                size += more
                end += 1
            blob = b"".join(pieces)
            send(topic.name, _SNDMORE)
            send(DATA + U64.pack(topic.last_seq), _SNDMORE)
            # Copied by ZeroMQ, however big: a zero-copy send hands the blob to pyzmq's
            # garbage-collector thread, which takes the GIL to let it go once sent (a
            # wake-up and a GIL hand-off a blob), and keeps its memory out of reuse until
            # then. The copy of a 1 MiB blob costs less (docs/benchmarks.md).
            send(blob, 0, True)
            topic.last_seq = items[end - 1][0]
            self.messages_sent += 1
            start = end

    def heartbeat(self, seq: int) -> None:
        for topic in self.topics.values():
            # A topic that has been quiet is still complete up to the current seq.
            self.socket.send_multipart(
                [topic.name, HEARTBEAT + U64.pack(topic.last_seq) + U64.pack(seq)]
            )


def _parts(record: Record) -> tuple[bytes | memoryview, ...]:
    return record_parts(
        record.kind, record.seq, record.ts_recv, record.table, record.origins, record.payload
    )
