"""A publisher's UPD frames: built once per batch, kept whole until acknowledged.

A batch's frame is the UPD tag, its header (publisher id, batch number, ``base``: the
lowest unacknowledged batch, and the table name's length), the name and the payload. It is
joined once, when the batch is numbered, and that frame is both what goes to ZeroMQ and what
the resend buffer keeps: the payload's pieces (an Arrow buffer fresh from ``serialize``)
are released at once instead of being held for as long as the batch is unacknowledged, and
a send is not another copy of 32 KB. With thousands of 1000-row batches in flight, holding
the serialized Arrow buffers kept the Arrow allocator taking fresh pages for every batch:
half of the publishing thread's CPU a table went to ``serialize``.

Only ``base`` can differ when a batch goes again (more was acknowledged since): such a
frame is rebuilt with the new ``base``, as it was before, and the kept one is unchanged.
"""

from __future__ import annotations

import pyarrow as pa

from tickerplant.protocol import U64, UPD, UPD_HEADER

# Where ``base`` sits in a frame: after the tag, the publisher id and the batch number.
_BASE_AT = len(UPD) + 16 + 8


def upd_frame(
    publisher_id: bytes, batch: int, base: int, table: bytes, pieces: tuple[bytes | pa.Buffer, ...]
) -> bytes:
    """One UPD request: the tag, the header, the table's name and the payload's pieces."""
    head = UPD_HEADER.pack(publisher_id, batch, base, len(table))
    return b"".join((UPD, head, table, *pieces))


def with_base(frame: bytes, base: int) -> bytes:
    """``frame`` as it is when its ``base`` is ``base``, else a copy with that ``base``."""
    if U64.unpack_from(frame, _BASE_AT)[0] == base:
        return frame
    return b"".join((frame[:_BASE_AT], U64.pack(base), memoryview(frame)[_BASE_AT + 8 :]))
