"""Acknowledgements to publishers: cumulative, only for what is journaled, paced.

A publisher needs acks only to empty its resend buffer and to finish ``flush()``, for which
a millisecond is soon enough; an ack per loop turn doubles the messages on the publishers'
links at low rates, and every message wakes threads on both ends. So the tickerplant notes
who it heard from (``heard``), makes that due once the turn is journaled (``committed``),
and sends each due publisher one ack with its level at most once per ``ACK_INTERVAL_S``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import zmq

from tickerplant.protocol import ACK, U64

ACK_INTERVAL_S = 0.001  # acks to publishers go out at most this often
_SNDMORE = int(zmq.SNDMORE)


class Acks:
    def __init__(self, send: Callable[[bytes, int], object]) -> None:
        """``send(frame, flags)``: the ingest socket's send (pyzmq's own, int flags)."""
        self._send = send
        # routing id -> publisher id: publishers heard from since the last commit, and
        # publishers whose batches are journaled but not yet acknowledged
        self.heard: dict[bytes, bytes] = {}
        self.due: dict[bytes, bytes] = {}
        self.next_at = time.monotonic()

    def committed(self) -> None:
        """What arrived before this commit is journaled (or was a duplicate): due now."""
        self.due.update(self.heard)
        self.heard.clear()

    def send(self, force: bool, level: Callable[[bytes], int], epoch: int | None) -> bool:
        """Each due publisher its ``level``, unless the last acks went out less than
        ``ACK_INTERVAL_S`` ago (``force``: regardless). ``epoch``: a pair's primary sends
        the epoch the level is from. Whether anything was sent."""
        if not self.due:
            return False
        now = time.monotonic()
        if not force and now < self.next_at:
            return False
        self.next_at = now + ACK_INTERVAL_S
        send = self._send
        epoch_frame = None if epoch is None else U64.pack(epoch)
        for identity, publisher in self.due.items():
            # Frame by frame with int flags: send_multipart combines flag enums per frame.
            send(identity, _SNDMORE)
            send(ACK, _SNDMORE)
            if epoch_frame is None:
                send(U64.pack(level(publisher)), 0)
            else:
                send(U64.pack(level(publisher)), _SNDMORE)
                send(epoch_frame, 0)
        self.due.clear()
        return True
