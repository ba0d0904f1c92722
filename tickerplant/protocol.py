"""Wire names and the one record shape used on the wire, in the journal and in replay.

Everything a peer needs to speak to a tickerplant lives here; ``docs/protocol.md`` is the
same thing in prose. A *record* is::

    u32 body_len | u32 crc32(body) | body
    body = u8 kind | u8 version | u16 table_len | u16 origin_count | u64 seq | i64 ts_recv
           | table (utf-8) | origin_count x (16-byte public publisher id, u64 batch number)
           | payload

All integers are little-endian. ``payload`` is an Arrow IPC stream (schema + batches) for
``KIND_UPD`` and the ISO date of the session that ended for ``KIND_EOD``. The origins say
which publisher batches a record carries, which is how duplicate resends are recognised,
even after a restart.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, replace

import pyarrow as pa
import pyarrow.ipc as ipc

from tickdb.types import Shard
from tickdb.types import shard_of as shard_of  # the wire's sym -> shard function, re-exported
from tickerplant.checksum import crc32

PROTOCOL_VERSION = 1

# Record kinds.
KIND_UPD = 1
KIND_EOD = 2

# Request tags on the tickerplant's main (ROUTER) address.
HELLO = b"HELLO"
UPD = b"UPD"
ROLL = b"ROLL"
STATS = b"STATS"
# Reply tags to publishers.
ACK = b"ACK"
ERR = b"ERR"
RESEND = b"RESEND"
# Replay endpoint.
REPLAY = b"REPLAY"
CHUNK = b"CHUNK"
END = b"END"
# Second frame of a published message: data or heartbeat.
DATA = b"D"
HEARTBEAT = b"H"

RECORD_HEADER = struct.Struct("<II")
BODY_PREFIX = struct.Struct("<BBHHQq")
_NAME_ORIGINS = struct.Struct("<2xHH")  # BODY_PREFIX's table name length and origin count
ORIGIN = struct.Struct("<16sQ")
UPD_HEADER = struct.Struct("<16sQQH")  # secret publisher id, batch, lowest unacked, table len
U64 = struct.Struct("<Q")
HEADER_SIZE = RECORD_HEADER.size + BODY_PREFIX.size

JOURNAL_MAGIC = b"TKDBJNL1"


class ProtocolError(ValueError):
    """Bytes that are not a valid record or frame."""


# What pyarrow raises reading bytes that are not a valid Arrow IPC stream: any of its own
# errors (a missing dictionary is an ArrowKeyError), OSError for a bad flatbuffer, EOFError
# for an end marker where a message should be.
UNREADABLE = (pa.ArrowException, OSError, EOFError)


def encode_upd(publisher: bytes, batch: int, base: int, table: bytes, payload: bytes) -> bytes:
    """An UPD request: tag, header and payload in one frame, since every frame costs time
    on both ends."""
    return b"".join([UPD, UPD_HEADER.pack(publisher, batch, base, len(table)), table, payload])


_UPD_BODY = len(UPD)
_UPD_NAME = _UPD_BODY + UPD_HEADER.size  # where the table name starts


def decode_upd(frame: bytes) -> tuple[bytes, int, int, bytes, memoryview]:
    """``(publisher, batch, base, table, payload)``; ProtocolError when it does not fit.

    ``frame`` may be bytes or a view of ZeroMQ's buffer (a big request); the payload is a
    view of it either way. Once per request: every step here counts."""
    size = len(frame)
    if size < _UPD_NAME or frame[:_UPD_BODY] != UPD:
        raise ProtocolError(
            f"UPD frame of {size} bytes is shorter than its {_UPD_NAME}-byte tag and header"
        )
    publisher, batch, base, name_len = UPD_HEADER.unpack_from(frame, _UPD_BODY)
    end = _UPD_NAME + name_len
    if end > size:
        raise ProtocolError("UPD table name runs past the end of the frame")
    return publisher, batch, base, bytes(frame[_UPD_NAME:end]), memoryview(frame)[end:]


@dataclass(frozen=True, slots=True)
class Record:
    """One decoded record. ``payload`` stays as bytes until someone asks for the data."""

    kind: int
    seq: int
    ts_recv: int
    table: str
    origins: tuple[tuple[bytes, int], ...]
    payload: bytes | memoryview

    def to_table(self) -> pa.Table:
        return ipc.open_stream(pa.py_buffer(self.payload)).read_all()

    @property
    def eod_date(self) -> str:
        return bytes(self.payload).decode()


def record_parts(
    kind: int,
    seq: int,
    ts_recv: int,
    table: str,
    origins: tuple[tuple[bytes, int], ...] | list[tuple[bytes, int]],
    payload: bytes | memoryview,
) -> tuple[bytes, bytes | memoryview]:
    """A record as (framing and head, payload): consecutive pieces, never joined here.

    The journal's writev and the fan-out's packing each copy the pieces once anyway, so a
    joined record would be one more copy of every payload.
    """
    if len(origins) == 1:  # almost every record: one pack, its struct made once per table
        shape, name = _ONE_ORIGIN_HEAD.get(table) or _one_origin_head(table)
        pid, batch = origins[0]
        head = shape.pack(kind, PROTOCOL_VERSION, len(name), 1, seq, ts_recv, name, pid, batch)
    else:
        name = table.encode()
        head = b"".join(
            [
                BODY_PREFIX.pack(kind, PROTOCOL_VERSION, len(name), len(origins), seq, ts_recv),
                name,
                *(ORIGIN.pack(pid, batch) for pid, batch in origins),
            ]
        )
    crc = crc32(payload, crc32(head))
    return RECORD_HEADER.pack(len(head) + len(payload), crc) + head, payload


_ONE_ORIGIN_HEAD: dict[str, tuple[struct.Struct, bytes]] = {}


def _one_origin_head(table: str) -> tuple[struct.Struct, bytes]:
    """The struct of a record head with one origin (prefix, table name, origin)."""
    name = table.encode()
    made = struct.Struct(f"<BBHHQq{len(name)}s16sQ"), name
    if len(_ONE_ORIGIN_HEAD) < 1024:  # table names: a few, but never let it grow unbounded
        _ONE_ORIGIN_HEAD[table] = made
    return made


def encode_record(
    kind: int,
    seq: int,
    ts_recv: int,
    table: str,
    origins: tuple[tuple[bytes, int], ...] | list[tuple[bytes, int]],
    payload: bytes | memoryview,
) -> bytes:
    return b"".join(record_parts(kind, seq, ts_recv, table, origins, payload))


def check_body(body: bytes | memoryview) -> None:
    """ProtocolError unless a record body's prefix, table name and origins fit in it (a
    body may be any bytes whose checksum matches). Cheap: journal scans call it per record."""
    if len(body) < BODY_PREFIX.size:
        raise ProtocolError(f"record body of {len(body)} bytes is shorter than its prefix")
    name_len, n_origins = _NAME_ORIGINS.unpack_from(body, 0)
    if BODY_PREFIX.size + name_len + n_origins * ORIGIN.size > len(body):
        raise ProtocolError(
            f"record's table name ({name_len} bytes) and {n_origins} origins run past "
            f"its {len(body)}-byte body"
        )


def decode_body(body: bytes | memoryview) -> Record:
    """A record from its body; ProtocolError when the body is malformed."""
    check_body(body)
    kind, _version, name_len, n_origins, seq, ts_recv = BODY_PREFIX.unpack_from(body, 0)
    pos = BODY_PREFIX.size
    try:
        table = bytes(body[pos : pos + name_len]).decode()
    except UnicodeDecodeError:
        raise ProtocolError("record's table name is not UTF-8") from None
    pos += name_len
    origins = []
    for _ in range(n_origins):
        origins.append(ORIGIN.unpack_from(body, pos))
        pos += ORIGIN.size
    return Record(kind, seq, ts_recv, table, tuple(origins), bytes(body[pos:]))


def iter_records(blob: bytes | memoryview, verify: bool = True) -> Iterator[Record]:
    """Split concatenated records (a published message or a replay chunk)."""
    view = memoryview(blob)
    pos, end = 0, len(view)
    while pos < end:
        if end - pos < RECORD_HEADER.size:
            raise ProtocolError(f"truncated record header at byte {pos}")
        length, crc = RECORD_HEADER.unpack_from(view, pos)
        start = pos + RECORD_HEADER.size
        body = view[start : start + length]
        if len(body) != length:
            raise ProtocolError(f"truncated record at byte {pos}")
        if verify and crc32(body) != crc:
            raise ProtocolError(f"checksum mismatch in record at byte {pos}")
        yield decode_body(body)
        pos = start + length


def peek_seq(record: bytes) -> int:
    """The sequence number of an encoded record, without decoding the rest."""
    return int(U64.unpack_from(record, RECORD_HEADER.size + 6)[0])


# Topics. A subscription is one topic string the subscriber sets on its SUB socket; the
# tickerplant's XPUB sees it and starts publishing the records that match under that topic.
# One topic per subscriber covers all its tables, so everything it receives arrives on one
# ordered chain. The trailing NUL stops one topic from being a prefix of another.
def topic_for(
    tables: list[str] | None = None,
    syms: list[str] | None = None,
    shard: Shard | None = None,
    accounts: list[str] | None = None,
    empty_syms: bool = False,
    not_from: bytes | None = None,
) -> bytes:
    """``empty_syms`` (with ``shard`` only): rows whose sym is empty too, whatever their
    shard: requests addressed to every shard, such as a mass cancel (a venue's selection).
    ``not_from``: a publisher's public id (16 bytes) whose own records are left out, such
    as a gateway's echo of the requests it published itself; written ``upd~<hex>``."""
    if sum(x is not None for x in (syms, shard, accounts)) > 1:
        raise ValueError("subscribe by syms, by shard or by accounts: one of them")
    if empty_syms and shard is None:
        raise ValueError("empty_syms selects rows beside a shard's: give the shard")
    table_part = ",".join(sorted(set(tables))) if tables else "*"
    if syms is not None:
        selector = "syms=" + ",".join(sorted(set(syms)))
    elif shard is not None:
        selector = f"shard+empty={shard}" if empty_syms else f"shard={shard}"
    elif accounts is not None:
        # Order-flow tables only: a strategy's own events (docs/orders.md).
        selector = "account=" + ",".join(sorted(set(accounts)))
    else:
        selector = "*"
    kind = "upd" if not_from is None else f"upd~{not_from.hex()}"
    return f"{kind}/{table_part}/{selector}\0".encode()


@dataclass(frozen=True)
class TopicFilter:
    """What one subscriber wants: tables (None: all), and syms, a shard or accounts (None:
    all). An account selection passes only rows of tables with an ``account`` column.
    ``empty_syms`` (a shard selection only) passes rows whose sym is empty too: a venue's
    shard plus the mass cancels addressed to every venue. A plain shard selection places an
    empty sym like any other (``shard_of("")``), so data tables keep their one shard."""

    tables: frozenset[str] | None
    syms: frozenset[str] | None
    shard: Shard | None
    accounts: frozenset[str] | None = None
    empty_syms: bool = False
    # A publisher's public id: records made only of its batches are left out.
    not_from: bytes | None = None

    @property
    def every_row(self) -> bool:
        """No selection of rows (by syms, shard or accounts)."""
        return self.syms is None and self.shard is None and self.accounts is None

    @property
    def all_rows(self) -> bool:
        """Every record of its tables, whole: nothing to look at per record."""
        return self.every_row and self.not_from is None

    def excludes(self, origins: tuple[tuple[bytes, int], ...]) -> bool:
        """Whether a record of these origins is left out (all of them ``not_from``)."""
        not_from = self.not_from
        return not_from is not None and bool(origins) and all(p == not_from for p, _ in origins)

    def wants_table(self, table: str) -> bool:
        return self.tables is None or table in self.tables


def parse_topic(topic: bytes) -> TopicFilter:
    try:
        text = topic.decode()
        if not text.endswith("\0"):
            raise ValueError
        kind, table_part, selector = text[:-1].split("/", 2)
        kind, excluding, excluded = kind.partition("~")
        if kind != "upd" or not table_part:
            raise ValueError
        not_from = bytes.fromhex(excluded) if excluding else None
        if not_from is not None and len(not_from) != ORIGIN.size - U64.size:
            raise ValueError
        tables = None if table_part == "*" else frozenset(table_part.split(","))
        selection = _selection(tables, selector)
        return replace(selection, not_from=not_from) if not_from is not None else selection
    except ValueError:
        pass
    raise ProtocolError(f"not a subscription topic: {topic[:80]!r}")


def _selection(tables: frozenset[str] | None, selector: str) -> TopicFilter:
    if selector == "*":
        return TopicFilter(tables, None, None)
    key, _, value = selector.partition("=")
    if key == "syms":
        return TopicFilter(tables, frozenset(value.split(",")) if value else frozenset(), None)
    if key == "shard":
        return TopicFilter(tables, None, Shard.parse(value))
    if key == "shard+empty":
        return TopicFilter(tables, None, Shard.parse(value), empty_syms=True)
    if key == "account":
        return TopicFilter(
            tables, None, None, frozenset(value.split(",")) if value else frozenset()
        )
    raise ValueError(selector)
