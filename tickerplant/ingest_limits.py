"""The largest frame the tickerplant's ingest socket reads, and its closed connections.

(The publish and replay sockets have caps too, ``publish_max_frame_bytes`` and
``replay_max_frame_bytes``: a subscription or a replay request is small, so 1 MiB by
default, and a client over it is disconnected the same way. HELLO names both, and
``tickdb.Subscriber`` refuses a selection over them before sending it.)

Without a limit ZeroMQ buffers a frame of any size a client announces before the
tickerplant sees a byte of it: a 300 MiB UPD was held in full, then refused for exceeding
``max_message_bytes``. ZeroMQ's ``MAXMSGSIZE`` makes it close the connection as soon as a
frame's header announces more than the cap, having read nothing of it. The cap is
``tickerplant.ingest_max_frame_bytes``, by default ``max_message_bytes`` plus room for the
UPD tag, header and the longest table name: a payload up to ``max_message_bytes`` is read
and, if too big for its table's rules, refused with an error; only a frame no valid UPD can
be is cut off.

ZeroMQ closes such a connection without telling the socket's owner why (its monitor
reports a disconnect, the same as a client leaving), so the tickerplant counts and logs
every closed ingest connection (``ingest_disconnects`` in STATS). A socket has one
monitor: with CURVE on it is the ZAP handler's watch of failed handshakes
(``tickdb.zap``), and closed connections are not counted (only clients holding a known key
get as far as sending a frame then).

ZeroMQ bounds frames, not messages: a client that speaks ZMTP itself can still send many
frames under the cap, flagged as parts of one message that never ends, and ZeroMQ holds
them all. tickdb's requests are single frames, so only such a client does that; CURVE
(only known keys connect at all) is the bound against it.
"""

from __future__ import annotations

import logging
import time

import zmq

from tickerplant.protocol import UPD, UPD_HEADER

log = logging.getLogger(__name__)

# An UPD frame around its payload: the tag, the header and a table name of up to 65535 bytes.
UPD_OVERHEAD = len(UPD) + UPD_HEADER.size + 0xFFFF
REPORT_EVERY_S = 5.0  # closed connections are logged at most this often
# The publish and replay sockets' caps (tickerplant.publish_max_frame_bytes,
# replay_max_frame_bytes) may not go below this: a subscription to a few tables needs ~100.
MIN_REQUEST_FRAME = 1024


def ingest_frame_cap(max_message_bytes: int, ingest_max_frame_bytes: int = 0) -> int:
    """The cap set on the ingest socket: the setting, or (0) derived from the payload cap."""
    return ingest_max_frame_bytes or max_message_bytes + UPD_OVERHEAD


def check_frame_cap(max_message_bytes: int, ingest_max_frame_bytes: int) -> None:
    """ValueError for a setting that would cut off frames the tickerplant should answer."""
    if ingest_max_frame_bytes < 0:
        raise ValueError("must not be negative (0: max_message_bytes plus an UPD's header)")
    least = max_message_bytes + UPD_OVERHEAD
    if 0 < ingest_max_frame_bytes < least:
        raise ValueError(
            f"{ingest_max_frame_bytes} is below max_message_bytes plus an UPD's header and "
            f"table name ({least}): a batch the tickerplant would refuse with an error "
            "would close the publisher's connection instead; 0 derives it"
        )


class ClosedConnections:
    """Counts the connections a socket's peers lose, from ZeroMQ's socket monitor, and logs
    them: the first at once, then at most one line per ``REPORT_EVERY_S`` with how many.

    ``poll()`` reads the monitor without waiting; the tickerplant calls it on its
    housekeeping timer. ``watch`` False (the socket's monitor is taken, by CURVE's watch):
    nothing is counted, and ``count`` is None.
    """

    def __init__(self, socket: zmq.Socket, name: str, cap: int, watch: bool = True) -> None:
        self.name = name
        self.cap = cap
        self.count: int | None = 0 if watch else None
        self._socket = socket
        self._monitor = socket.get_monitor_socket(zmq.EVENT_DISCONNECTED) if watch else None
        self._unreported = 0
        self._next_report = 0.0

    def poll(self) -> None:
        if self._monitor is None or self.count is None:
            return
        while True:
            try:
                self._monitor.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            self.count += 1
            self._unreported += 1
        now = time.monotonic()
        if self._unreported and now >= self._next_report:
            log.info(
                "%s: %d connection(s) closed (%d in all): clients leaving, or a frame over "
                "the %d-byte cap (ingest_max_frame_bytes), which ZeroMQ closes without "
                "saying which",
                self.name,
                self._unreported,
                self.count,
                self.cap,
            )
            self._unreported = 0
            self._next_report = now + REPORT_EVERY_S

    def close(self) -> None:
        if self._monitor is not None:
            self._socket.disable_monitor()
            self._monitor.close(0)
