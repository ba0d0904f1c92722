"""A ZeroMQ ROUTER in a process of its own that takes requests and never answers, until
it is killed: for clients that must notice a server dying mid-request."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from support.harness import free_port

SILENT_SERVER = """
import sys, zmq
sock = zmq.Context().socket(zmq.ROUTER)
sock.bind(sys.argv[1])
print("listening", flush=True)
while True:
    sock.recv_multipart()
"""


@pytest.fixture
def silent() -> Iterator[tuple[subprocess.Popen[str], str]]:
    """The server's process and its address; killed at teardown if the test did not."""
    address = f"tcp://127.0.0.1:{free_port()}"
    proc = subprocess.Popen(
        [sys.executable, "-c", SILENT_SERVER, address], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "listening"
    yield proc, address
    proc.kill()
    proc.wait(10)


def connected(pid: int) -> bool:
    """Whether process ``pid`` holds an established TCP connection."""
    import os

    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:"):
            inode = target[8:-1]
            with open("/proc/net/tcp") as tcp:
                for line in tcp.readlines()[1:]:
                    fields = line.split()
                    if fields[9] == inode and fields[3] == "01":  # ESTABLISHED
                        return True
    return False
