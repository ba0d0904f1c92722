"""Buffers written in order in ``writev`` calls of a bounded size (the journal's writes).

``writev`` may write less than asked and takes at most ``IOV_MAX`` buffers at once; a very
large call costs more CPU per byte than several of about a megabyte. ``JournalWriter``
(``tickerplant.journal``) cuts its turns into calls of whole records with these bounds.
"""

from __future__ import annotations

import os

IOV_MAX = 1024
# The most one writev call is given (see writev_all). Each call has a fixed cost of a few
# µs (the file's size and times, the file system's journal handle) besides its bytes: a
# turn of eight 1000-row records (~263 KB) cut at 256 KiB went as two calls, the second of
# one record. Per record, appends of 32 KB records through the writer in turns of 8 and
# 20: 9.4-10.3 and 8.6-9.8 µs at 256 KiB, 7.5-8.0 and 6.3-6.7 µs at 1 MiB.
WRITE_BYTES = 1 << 20


def writev_all(fd: int, buffers: list[bytes | memoryview], limit: int = WRITE_BYTES) -> None:
    """Write ``buffers`` in order, in writev calls of at most ``limit`` bytes each.

    A turn can queue megabytes (a batched flush, a burst of big batches). Measured on Linux
    6.x, one writev of 5 MB into the page cache cost 2-7 times the CPU per byte of the
    same bytes in calls of 256 KiB, and varied far more; calls of 1 MiB cost less than
    either (docs/benchmarks.md); so big writes are cut. writev may
    also write less than asked, and takes at most IOV_MAX (1024) buffers at once.
    """
    views = [memoryview(b) for b in buffers if len(b)]  # an empty one would never advance
    i = 0
    while i < len(views):
        # Whole buffers while they fit, then the start of the one that does not.
        j, size, end = i, 0, min(len(views), i + IOV_MAX)
        while j < end and size + len(views[j]) <= limit:
            size += len(views[j])
            j += 1
        call = views[i:j]
        if j < end and size < limit:
            call.append(views[j][: limit - size])
        written = os.writev(fd, call)
        while written:
            if written >= len(views[i]):
                written -= len(views[i])
                i += 1
            else:
                views[i] = views[i][written:]
                written = 0
