"""The order-flow thread's wait: the flow subscription and the order port in one ``poll``.

``zmq.Poller`` (``zmq_poll``) checks every socket's commands before and after its blocking
``poll`` (each check a ``poll`` and a ``getpid`` system call) and polls once more without a
timeout first: ~8 system calls a wait for two sockets, twice an order, on top of each
receive's and send's own. Here the thread sleeps on the sockets' ``ZMQ_FD`` descriptors in
one ``select.poll`` and checks ``ZMQ_EVENTS`` only where it must (as the tickerplant's loop
does, ``tickerplant/wakeup.py``).

A ``ZMQ_FD`` becomes readable when commands reach its socket ("a pipe that was empty has
messages"), and any call on the socket may consume them: then messages wait while the
descriptor stays quiet. So a socket is slept on only when the last call on it was a check
that found nothing (``clean``); a send on it, or a read that may have left messages, makes
it ``dirty`` and its ``ZMQ_EVENTS`` is checked before the next sleep. A descriptor that
wakes the sleep is reported as is, not checked: the caller's receive runs the commands
anyway (a receive that finds the pipe empty runs them and tries again), and pyzmq's
``ZMQ_EVENTS`` read (an enum per call) on top of it was ~10% of the order thread's time.
So the caller finds nothing now and then (commands that were not a message), and says
``clean`` after the receive or check that found nothing.
"""

from __future__ import annotations

import math
import select

import zmq

# Plain ints: zmq's flag enums make ``&`` a Python-level call.
_EVENTS, _FD, _POLLIN = int(zmq.EVENTS), int(zmq.FD), int(zmq.POLLIN)


def has_input(socket: zmq.Socket) -> bool:
    """Whether a message waits on ``socket`` (runs its pending commands)."""
    return bool(int(socket.get(_EVENTS)) & _POLLIN)


class SocketsWait:
    """Waits until one of a fixed set of sockets may have input; see the module docstring."""

    def __init__(self, sockets: tuple[zmq.Socket, ...]) -> None:
        self.sockets = sockets
        self._fds = [int(s.get(_FD)) for s in sockets]
        self._poll = select.poll()
        for fd in self._fds:
            self._poll.register(fd, select.POLLIN)
        self._dirty = [True] * len(sockets)

    def dirty(self, index: int) -> None:
        """Socket ``index`` was used since it was last found empty."""
        self._dirty[index] = True

    def clean(self, index: int) -> None:
        """Socket ``index`` was just found empty by a call that ran its commands."""
        self._dirty[index] = False

    def wait(self, timeout_s: float) -> list[bool]:
        """Per socket, whether it may have input, after at most ``timeout_s`` (at once when
        a dirty one has): True for a dirty socket with input, or one whose descriptor woke
        the sleep. All False: the timeout passed."""
        ready = [False] * len(self.sockets)
        for i, socket in enumerate(self.sockets):
            if self._dirty[i]:
                ready[i] = has_input(socket)
                self._dirty[i] = False
        if any(ready):
            return ready
        for fd, _ in self._poll.poll(math.ceil(max(timeout_s, 0.0) * 1000)):
            ready[self._fds.index(fd)] = True
        return ready
