"""Binding a listening address, with an error that names the port and the setting.

A port already in use is a configuration problem, not a crash: ``AddressInUse`` says which
address and which setting (or command-line option) chose it, and ``tickdb`` prints it as
one line instead of a traceback.
"""

from __future__ import annotations

import errno
import socket

import zmq


class AddressInUse(OSError):
    def __init__(self, address: str, setting: str) -> None:
        self.address = address
        self.setting = setting
        super().__init__(
            errno.EADDRINUSE,
            f"cannot listen on {address}: the port is already in use (set by {setting}); "
            f"stop what holds it or choose another port (0: any free port)",
        )

    def __str__(self) -> str:
        return str(self.strerror)


def bind(sock: zmq.Socket, address: str, setting: str) -> None:
    """``sock.bind(address)``; a port in use raises ``AddressInUse`` naming ``setting``."""
    try:
        sock.bind(address)
    except zmq.ZMQError as exc:
        if exc.errno == zmq.EADDRINUSE:
            raise AddressInUse(address, setting) from None
        raise


def listen_tcp(host: str, port: int, setting: str) -> socket.socket:
    """A listening TCP socket, as ``socket.create_server``; a port in use raises
    ``AddressInUse`` naming ``setting``."""
    try:
        return socket.create_server((host, port), reuse_port=False, backlog=128)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise AddressInUse(f"{host}:{port}", setting) from None
        raise
