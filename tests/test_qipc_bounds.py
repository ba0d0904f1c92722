"""The kdb+ IPC server's bounds against hostile clients, on a real server process.

Each test reproduces something a hostile client could do to the server before it had
bounds (claim huge lengths, expand a small compressed message enormously, hold every file
descriptor, guess passwords at full speed) over raw sockets, and checks that it is now
refused or bounded, logged, and that the server goes on serving a well-behaved client.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from support.harness import wait_until
from support.qipc_server import PASSWORD, USER, ServerProc

from qipc import QClient, QError
from qipc import types as t
from qipc.limits import LoginBackoff

MIB = 1 << 20
MAX_MESSAGE = 64 * MIB


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def accept_backlog(server_port: int) -> int:
    """Connections waiting in the server's listen queue (rx_queue of its LISTEN socket)."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == server_port and fields[3] == "0A":
            return int(fields[4].split(":")[1], 16)
    raise AssertionError(f"no listening socket on port {server_port}")


def unread_bytes(server_port: int, client_ports: set[int]) -> int:
    """Bytes the server has not read yet from these clients (the kernel's receive queues
    of its sockets, /proc/net/tcp): 0 once its threads have taken everything sent."""
    total = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, queues = fields[1], fields[2], fields[4]
        if int(local.split(":")[1], 16) == server_port and (
            int(remote.split(":")[1], 16) in client_ports
        ):
            total += int(queues.split(":")[1], 16)
    return total


def login(port: int, password: str = PASSWORD, source: str = "127.0.0.1") -> socket.socket:
    """A raw connection past the handshake (ConnectionRefusedError if refused)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30, source_address=(source, 0))
    sock.sendall(f"{USER}:{password}".encode() + b"\x03\x00")
    if sock.recv(1) != b"\x03":
        sock.close()
        raise ConnectionRefusedError("handshake refused")
    return sock


def header(length: int, *, compressed: bool = False, msg_type: int = t.SYNC) -> bytes:
    return struct.pack("<BBBBI", 1, msg_type, int(compressed), 0, length)


def closed_by_server(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except (ConnectionResetError, TimeoutError):
        return False


def eof_now(sock: socket.socket) -> bool:
    """The server has closed ``sock`` (checked without waiting)."""
    sock.settimeout(0)
    try:
        return sock.recv(1) == b""
    except BlockingIOError:
        return False


def client(server: ServerProc) -> QClient:
    return QClient("127.0.0.1", server.port, user=USER, password=PASSWORD)


def start(tmp_path: Path, *extra: str) -> ServerProc:
    return ServerProc(
        tmp_path,
        "--user",
        USER,
        "--password",
        PASSWORD,
        "--max-message-bytes",
        str(MAX_MESSAGE),
        *extra,
    )


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProc]:
    proc = start(tmp_path)
    yield proc
    assert proc.stop() == 0, f"server did not shut down cleanly:\n{proc.log()}"


def test_claimed_lengths_cost_memory_only_as_bytes_arrive(server: ServerProc) -> None:
    """Before: each header's claimed length was allocated at once (four 8-byte headers
    claiming 256 MiB: +880 MiB RSS). Now 16 connections each claiming just under the
    64 MiB limit and sending 1 KiB hold about what they sent."""
    before = rss_bytes(server.popen.pid)
    socks = [login(server.port) for _ in range(16)]
    try:
        for sock in socks:
            sock.sendall(header(MAX_MESSAGE - 1) + b"\0" * 1024)
        ports = {s.getsockname()[1] for s in socks}
        wait_until(lambda: unread_bytes(server.port, ports) == 0, what="the server reads all")
        grown = rss_bytes(server.popen.pid) - before
        assert grown < 32 * MIB, f"RSS grew {grown / MIB:.0f} MiB for 16 x 1 KiB sent"
        with client(server) as q:
            assert q.sync("ping") == "pong"
        # A header over the limit is refused at once, and said so in the log.
        with login(server.port) as big:
            big.sendall(header(256 * MIB))
            assert closed_by_server(big)
        wait_until(lambda: "exceeds the 67108864 limit" in server.log(), what="the log line")
    finally:
        for sock in socks:
            sock.close()


def _bomb_prefix(claimed: int, body: bytes) -> bytes:
    return header(12 + len(body), compressed=True) + struct.pack("<I", claimed) + body


@pytest.mark.parametrize(
    ("claimed", "logged"),
    [
        (2**31, "over the 67108864 limit"),  # 2 GiB: what a q message may claim at most
        (MAX_MESSAGE - 8, "more than kdb+ compression can produce"),  # under the limit
    ],
    ids=["over-the-limit", "impossible-ratio"],
)
def test_compressed_claims_are_refused_before_expanding(
    server: ServerProc, claimed: int, logged: str
) -> None:
    """Before: a 100-byte message could claim 2 GiB expanded, allocated and then expanded
    at ~0.13 s of CPU per MiB. Now the claim is checked against the limit and against
    what 100 bytes can expand to, before the rest is read."""
    before_rss = rss_bytes(server.popen.pid)
    before_cpu = cpu_seconds(server.popen.pid)
    with login(server.port) as bomb:
        bomb.sendall(_bomb_prefix(claimed, b"\xff" + b"\x00\xff" * 8 * 5))
        assert closed_by_server(bomb)
    wait_until(lambda: logged in server.log(), what=logged)
    assert rss_bytes(server.popen.pid) - before_rss < 32 * MIB
    assert cpu_seconds(server.popen.pid) - before_cpu < 1.0
    with client(server) as q:
        assert q.sync("ping") == "pong"


def run_bomb(text_length: int) -> bytes:
    """A valid compressed ``(`length; "aaa…")`` whose string is 2 literal bytes then a
    257-byte copy from 2 bytes back, over and over: ~58x smaller than it expands, and
    every copy overlaps itself (what the reference decompressor copies byte by byte)."""
    plain_head = b"\x00\x00\x02\x00\x00\x00" + b"\xf5length\x00"  # list of 2; `length
    plain_head += b"\x0a\x00" + struct.pack("<I", text_length)  # char vector
    items: list[bytes] = [bytes([b]) for b in plain_head]
    produced = 0
    while produced < text_length:
        if text_length - produced < 2 + 257:
            items += [b"a"] * (text_length - produced)
            break
        # Hash 0 is the pair "aa" just written, two bytes back: the copy overlaps itself.
        items += [b"a", b"a", bytes([0, 255])]
        produced += 2 + 257
    body = bytearray()
    for i in range(0, len(items), 8):
        group = items[i : i + 8]
        body.append(sum(1 << k for k, item in enumerate(group) if len(item) == 2))
        body += b"".join(group)
    size = 8 + len(plain_head) + text_length
    return header(12 + len(body), compressed=True) + struct.pack("<I", size) + bytes(body)


def test_overlapping_copies_cost_little_cpu(server: ServerProc) -> None:
    """A valid message of ~1 MiB expanding to 60 MiB by copies that overlap themselves:
    before, each ran byte by byte (~0.06 s of CPU per MiB expanded, 2 GiB claimable); now
    they are slices, so CPU follows the bytes received, not the size claimed."""
    message = run_bomb(60 * MIB)
    assert len(message) < 2 * MIB
    before = cpu_seconds(server.popen.pid)
    with client(server) as q:
        q.send_raw(message)
        msg_type, value = q.receive(timeout=60)
        assert msg_type == t.RESPONSE and value == 60 * MIB
        spent = cpu_seconds(server.popen.pid) - before
        assert spent < 1.5, f"{spent:.2f} s of CPU to expand 60 MiB"
        assert q.sync("ping") == "pong"


def test_connections_over_the_cap_are_told_why(tmp_path: Path) -> None:
    """Before: no cap, so idle connections could take every file descriptor. Now the
    fifth connection of four allowed gets a q error that says why, it is logged, and a
    flood of raw connections costs no more than a bounded number of descriptors."""
    proc = start(tmp_path, "--max-connections", "4")
    try:
        held = [client(proc) for _ in range(4)]
        baseline = open_fds(proc.popen.pid)
        # The handshake completes, so the client can be told why on its first query.
        with client(proc) as over, pytest.raises(QError, match=r"limit: .*max_connections"):
            over.sync("ping")
        wait_until(lambda: "(max_connections)" in proc.log(), what="the log line")
        flood = [socket.create_connection(("127.0.0.1", proc.port)) for _ in range(100)]
        try:
            wait_until(lambda: accept_backlog(proc.port) == 0, what="all accepted")
            assert open_fds(proc.popen.pid) <= baseline + 64 + 8
            assert held[0].sync("ping") == "pong"
        finally:
            for sock in flood:
                sock.close()
        wait_until(lambda: open_fds(proc.popen.pid) <= baseline, what="the refusals closed")
        held.pop().close()
        fresh = wait_until(lambda: _try_ping(proc), what="a free slot")
        assert fresh
        for q in held:
            q.close()
    finally:
        assert proc.stop() == 0, proc.log()


def closed_unanswered(sock: socket.socket) -> bool:
    """Whether the server closed ``sock`` without sending a byte: an end of file, or a
    reset (it closed with our bytes unread)."""
    try:
        return sock.recv(64) == b""
    except ConnectionResetError:
        return True


def test_a_refused_connection_that_stays_silent_is_closed(tmp_path: Path) -> None:
    """A connection over the cap is held only for its handshake: one that never sends it
    is closed after the refusal's time limit, and one that sends a handshake longer than
    any real one (no terminating NUL) at once. Neither takes the one allowed slot."""
    proc = start(tmp_path, "--max-connections", "1")
    try:
        held = client(proc)
        silent = [socket.create_connection(("127.0.0.1", proc.port)) for _ in range(3)]
        chatty = socket.create_connection(("127.0.0.1", proc.port))
        chatty.sendall(b"x" * 3000)
        for sock in [*silent, chatty]:
            sock.settimeout(10)
        started = time.monotonic()
        assert closed_unanswered(chatty), "an over-long handshake was answered"
        assert time.monotonic() - started < 1.5  # at once, not at the 2 s time limit
        for sock in silent:
            assert closed_unanswered(sock), "a silent refused connection got bytes"
        waited = time.monotonic() - started
        assert 1.0 <= waited < 8.0, f"closed after {waited:.1f} s (the limit is 2 s)"
        assert held.sync("ping") == "pong"
        for sock in [*silent, chatty]:
            sock.close()
        held.close()
    finally:
        assert proc.stop() == 0, proc.log()


def _try_ping(proc: ServerProc) -> bool:
    try:
        with client(proc) as q:
            return bool(q.sync("ping") == "pong")
    except QError:
        return False


def test_idle_connections_are_closed_but_subscribers_stay(tmp_path: Path) -> None:
    proc = start(tmp_path, "--idle-timeout", "0.5")
    try:
        with (
            login(proc.port) as idle,
            login(proc.port) as stalled,
            client(proc) as subscriber,
            client(proc) as busy,
        ):
            subscriber.sync(".u.sub", "trade", "")
            subscribed = time.monotonic()
            stalled.sendall(header(1000) + b"\0" * 10)  # a message that never finishes
            # A client that keeps talking stays while the silent ones are closed, and the
            # subscriber stays quiet for twice the timeout.
            idle_closed = stalled_closed = False
            while not (idle_closed and stalled_closed and time.monotonic() - subscribed > 1.0):
                assert time.monotonic() - subscribed < 30, "the silent connections stay open"
                idle_closed = idle_closed or eof_now(idle)
                stalled_closed = stalled_closed or eof_now(stalled)
                assert busy.sync("ping") == "pong"
            assert time.monotonic() - subscribed >= 0.4
            assert busy.sync("publish", np.int64(2)) == 1
            _, (func, table, _data) = subscriber.receive(timeout=10)
            assert (func, table) == ("upd", "trade")
        log = proc.log()
        assert log.count("(idle_timeout_s)") == 2, log
        assert "no message either way for 0.5s" in log
        assert "the rest of a message did not come in 0.5s" in log
    finally:
        assert proc.stop() == 0, proc.log()


def _refused_after(port: int, source: str = "127.0.0.1") -> float:
    started = time.monotonic()
    with pytest.raises(ConnectionRefusedError):
        login(port, "wrong", source)
    return time.monotonic() - started


def test_failed_logins_back_off_per_address(tmp_path: Path) -> None:
    """Before: 300 wrong passwords were answered in 0.23 s. Now each failure from an
    address is answered later (0.2 s doubling to 1.6 s here), while another address logs
    in at once, and parallel guesses from the backed-off address are refused unchecked."""
    proc = start(tmp_path, "--login-backoff", "0.2", "--login-backoff-max", "1.6")
    try:
        delays = [_refused_after(proc.port) for _ in range(4)]
        for got, expected in zip(delays, (0.2, 0.4, 0.8, 1.6), strict=True):
            assert expected * 0.9 <= got < expected + 3.0, delays
        # The next refusal takes 1.6 s: meanwhile 127.0.0.2 logs in and is served.
        pending = threading.Thread(target=_refused_after, args=(proc.port,))
        pending.start()
        wait_until(lambda: "failed login 5" in proc.log() or not pending.is_alive())
        with login(proc.port, source="127.0.0.2") as other:
            assert pending.is_alive(), "the other address waited for the backoff"
            other.sendall(b"")
        # Guesses in parallel from the backed-off address do not multiply its rate.
        refusals: list[float] = []
        guessers = [
            threading.Thread(target=lambda: refusals.append(_refused_after(proc.port)))
            for _ in range(6)
        ]
        for guesser in guessers:
            guesser.start()
        for guesser in guessers:
            guesser.join(60)
        pending.join(60)
        assert len(refusals) == 6
        wait_until(lambda: "unchecked" in proc.log(), what="the unchecked refusals logged")
        log = proc.log()
        assert log.count("refused user 'alice'") <= 5 + 2, log
        # The right password from the backed-off address still gets in, after its wait.
        with client(proc) as q:
            assert q.sync("ping") == "pong"
    finally:
        assert proc.stop() == 0, proc.log()


def test_login_backoff_schedule() -> None:
    """The schedule itself, on a fake clock: doubling, capped, per address, parallel
    attempts spaced, too many refused unchecked, cleared by a success, forgotten."""
    now = [100.0]
    backoff = LoginBackoff(0.1, 0.8, forget_s=60, clock=lambda: now[0])
    assert [backoff.failed("a") for _ in range(5)] == [0.1, 0.2, 0.4, 0.8, 0.8]
    assert backoff.reserve("b") == 100.0  # another address: at once
    now[0] += 0.8  # the last refusal went out; the next attempt from "a" is checked now
    assert backoff.reserve("a") == 100.8
    assert backoff.reserve("a") == pytest.approx(101.6)  # in parallel: 0.8 s later
    assert backoff.reserve("a") is None  # more than 0.8 s ahead: refused unchecked
    backoff.succeeded("a")
    assert backoff.reserve("a") == 100.8 and backoff.failures("a") == 0
    backoff.failed("c")
    now[0] += 61
    assert backoff.reserve("c") == now[0] and backoff.failures("c") == 0
