"""CURVE with ZAP over real sockets: a server process (``zmq_servers/curve_server.py``) lets
in only the client keys of its ``[auth]``, and what it receives carries the sender's
identity as the ZAP User-Id."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq
from support.harness import wait_until, write_config
from zmq.utils.monitor import recv_monitor_message

from tickdb.auth import AuthConfig, Authorizer, IdentityConfig
from tickdb.keyfiles import CurveKeyPair
from tickdb.ready import wait_ready
from tickdb.zap import ZapHandler, curve_client, curve_server

SERVER = Path(__file__).parent / "zmq_servers" / "curve_server.py"
QUIET_S = 1.0  # how long "nothing arrives" is watched for, after the refusal was seen


class CurveServer:
    def __init__(self, tmp_path: Path, server: CurveKeyPair, feed: CurveKeyPair) -> None:
        config = write_config(
            tmp_path / "auth.toml",
            {
                "auth": {"mode": "on"},
                "auth.identities.feed": {"curve_keys": [feed.public], "roles": ["publish:trade"]},
            },
        )
        _, secret = server.save(tmp_path / "keys", "server")
        ready = tmp_path / "server.ready.json"
        self.log_path = tmp_path / "server.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(
            [
                sys.executable,
                str(SERVER),
                "--config",
                str(config),
                "--secret",
                str(secret),
                "--ready-file",
                str(ready),
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            process_group=0,
        )
        try:
            self.endpoints = wait_ready(ready, 30, alive=lambda: self.popen.poll() is None)
        except Exception:
            self.stop()
            raise

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(10)
        self._log.close()
        return self.popen.returncode


@pytest.fixture
def keys() -> dict[str, CurveKeyPair]:
    return {name: CurveKeyPair.new() for name in ("server", "feed", "stranger", "impostor")}


@pytest.fixture
def server(tmp_path: Path, keys: dict[str, CurveKeyPair]) -> Iterator[CurveServer]:
    proc = CurveServer(tmp_path, keys["server"], keys["feed"])
    yield proc
    assert proc.stop() == 0, f"server did not stop cleanly:\n{proc.log()}"


_monitored: list[zmq.Socket[Any]] = []


@pytest.fixture
def context() -> Iterator[zmq.Context[Any]]:
    ctx: zmq.Context[Any] = zmq.Context()
    yield ctx
    while _monitored:  # a socket still monitored keeps the context from terminating
        _monitored.pop().disable_monitor()
    ctx.destroy(linger=0)


def client(
    ctx: zmq.Context[Any], kind: int, pair: CurveKeyPair, server_public: str, endpoint: str
) -> tuple[zmq.Socket[Any], zmq.Socket[Any]]:
    """A CURVE client socket, connected, and a monitor socket watching its handshakes."""
    sock = ctx.socket(kind)
    sock.linger = 0
    monitor = sock.get_monitor_socket()
    _monitored.append(sock)
    curve_client(sock, pair, server_public)
    if kind == zmq.SUB:
        sock.subscribe(b"")
    sock.connect(endpoint)
    return sock, monitor


def wait_event(monitor: zmq.Socket[Any], wanted: set[int], timeout: float = 10.0) -> int:
    """The first of ``wanted`` handshake events the monitor reports."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        if monitor.poll(int(left * 1000)):
            event = recv_monitor_message(monitor)["event"]
            if event in wanted:
                return int(event)
    raise AssertionError(f"none of the events {wanted} within {timeout}s")


FAILED = {
    zmq.EVENT_HANDSHAKE_FAILED_AUTH,
    zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL,
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL,
}


def test_a_registered_key_connects_and_its_frames_carry_its_identity(server, keys, context):
    dealer, _ = client(
        context, zmq.DEALER, keys["feed"], keys["server"].public, server.endpoints["router"]
    )
    dealer.send(b"ping")
    assert dealer.poll(10_000), f"no answer:\n{server.log()}"
    assert dealer.recv_multipart() == [b"feed|feed", b"ping"]
    sub, _ = client(context, zmq.SUB, keys["feed"], keys["server"].public, server.endpoints["pub"])
    assert sub.poll(10_000), "a registered subscriber gets the ticks"
    assert sub.recv().startswith(b"tick ")
    assert "is 'feed'" in server.log()


@pytest.mark.parametrize("kind", ["router", "pub"])
def test_an_unregistered_key_cannot_connect_or_read(server, keys, context, kind):
    sock, monitor = client(
        context,
        zmq.DEALER if kind == "router" else zmq.SUB,
        keys["stranger"],
        keys["server"].public,
        server.endpoints[kind],
    )
    if kind == "router":
        sock.send(b"ping")
    assert wait_event(monitor, FAILED | {zmq.EVENT_HANDSHAKE_SUCCEEDED}) == (
        zmq.EVENT_HANDSHAKE_FAILED_AUTH
    )
    wait_until(
        lambda: f"denied CURVE key {keys['stranger'].public}" in server.log(),
        what="the ZAP handler's denial in the server log",
    )
    assert not sock.poll(int(QUIET_S * 1000)), "a refused client received something"


def test_a_wrong_server_key_fails_the_handshake(server, keys, context):
    dealer, monitor = client(
        context, zmq.DEALER, keys["feed"], keys["impostor"].public, server.endpoints["router"]
    )
    dealer.send(b"ping")
    assert wait_event(monitor, FAILED | {zmq.EVENT_HANDSHAKE_SUCCEEDED}) in FAILED
    assert not dealer.poll(int(QUIET_S * 1000))


# -- in-process --------------------------------------------------------------------------
def test_curve_server_needs_a_running_handler(context):
    sock = context.socket(zmq.ROUTER)
    with pytest.raises(RuntimeError, match="lets every client key in"):
        curve_server(sock, CurveKeyPair.new().secret)
    authorizer = Authorizer(AuthConfig(mode="on"))
    with ZapHandler(context, authorizer):
        curve_server(sock, CurveKeyPair.new().secret)
        with pytest.raises(RuntimeError, match="already"):
            ZapHandler(context, authorizer).start()
    sock.close()


def test_mode_none_lets_any_key_in_as_anonymous(context, caplog):
    server_keys, anyone = CurveKeyPair.new(), CurveKeyPair.new()
    with ZapHandler(context, Authorizer(AuthConfig(mode="none"))) as zap:
        router = context.socket(zmq.ROUTER)
        router.linger = 0
        curve_server(router, server_keys.secret)
        router.bind("tcp://127.0.0.1:0")
        endpoint = router.getsockopt_string(zmq.LAST_ENDPOINT)
        dealer, _ = client(context, zmq.DEALER, anyone, server_keys.public, endpoint)
        dealer.send(b"hi")
        assert router.poll(10_000)
        _, payload = router.recv_multipart(copy=False)
        identity = zap.identity_of(payload)
        assert identity is not None and identity.name == "anonymous" and identity.may("admin")
        router.close()


def test_identity_of_a_frame_without_zap_is_none(context):
    zap = ZapHandler(
        context, Authorizer(AuthConfig(mode="on", identities={"x": IdentityConfig(roles=["read"])}))
    )
    pull, push = context.socket(zmq.PULL), context.socket(zmq.PUSH)
    pull.bind("inproc://plain")
    push.connect("inproc://plain")
    push.send(b"x")
    assert zap.identity_of(pull.recv(copy=False)) is None
    pull.close()
    push.close()


def test_a_malformed_or_non_curve_zap_request_is_denied(context, caplog):
    """What libzmq itself sends the handler, checked as input all the same: a request of too
    few frames or another version is a 400 'malformed request' (echoing its id), and with
    auth on a mechanism other than CURVE is denied."""
    authorizer = Authorizer(AuthConfig(mode="on", identities={"x": IdentityConfig(roles=["read"])}))
    with ZapHandler(context, authorizer) as zap:
        req = context.socket(zmq.REQ)
        req.linger = 0
        req.connect("inproc://zeromq.zap.01")

        def ask(frames: list[bytes]) -> list[bytes]:
            req.send_multipart(frames)
            assert req.poll(10_000), "the handler did not answer"
            return list(req.recv_multipart())

        short = ask([b"1.0", b"id-1", b"tickdb"])
        assert short[:4] == [b"1.0", b"id-1", b"400", b"malformed request"]
        version = ask([b"9.9", b"id-2", b"tickdb", b"127.0.0.1", b"", b"NULL"])
        assert version[1:4] == [b"id-2", b"400", b"malformed request"]
        plain = ask([b"1.0", b"id-3", b"tickdb", b"127.0.0.1", b"", b"PLAIN", b"u", b"p"])
        assert plain[:4] == [b"1.0", b"id-3", b"400", b"denied"]
        assert zap.counters.denied == 1
        req.close()
    assert "malformed request of 3 frames" in caplog.text
    assert "only CURVE is accepted" in caplog.text
