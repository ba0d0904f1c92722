"""Connection bounds of the ZeroMQ server sockets (``[curve]`` max_connections,
handshake_timeout_s, heartbeat_s, heartbeat_timeout_s), against real tickerplant processes.

ZeroMQ has no connection cap: with CURVE the ZAP handler counts each port's connections
from its monitor and refuses handshakes beyond the cap; a client over it is let in as soon
as another leaves. Without CURVE, a connection that never finishes its handshake and a
peer that stops answering PINGs are closed, so neither holds a descriptor for long.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import zmq
from support import zmtp_raw
from support.curve_clients import raw_socket
from support.curve_keys import CurveKeys
from support.harness import Proc, start_tp, wait_until

from tickerplant.discovery import answer
from tickerplant.discovery import request as tp_request
from tickerplant.protocol import END, HELLO, REPLAY, STATS

CAP = 3
ASK_REPLAY = [REPLAY, b'{"after": 0}']


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> CurveKeys:
    return CurveKeys(tmp_path_factory.mktemp("keys"), {"reader": ["read"], "admin": ["admin"]})


@pytest.fixture(scope="module")
def tp(tmp_path_factory: pytest.TempPathFactory, keys: CurveKeys) -> Iterator[Proc]:
    sections = keys.sections()
    sections["curve"] |= {"max_connections": CAP, "handshake_timeout_s": 1.0}
    proc = start_tp(tmp_path_factory.mktemp("tp"), **sections)
    yield proc
    assert proc.alive(), proc.log()
    proc.stop()


def ask(tp: Proc, keys: CurveKeys, tag: bytes) -> dict[str, Any]:
    ctx: zmq.Context[Any] = zmq.Context()
    try:
        reply = tp_request(ctx, tp.info["address"], [tag], 10.0, keys.client("admin"))
    finally:
        ctx.term()
    return dict(json.loads(answer(reply, "tp")))


def answered(sock: zmq.Socket[Any], timeout_ms: int = 10_000) -> bool:
    if not sock.poll(timeout_ms):
        return False
    return bool(sock.recv_multipart()[0] == END)


def test_a_port_takes_max_connections_and_the_next_gets_in_when_one_leaves(
    tp: Proc, keys: CurveKeys
) -> None:
    replay = ask(tp, keys, HELLO)["replay"]
    before = ask(tp, keys, STATS)["zap_denied_busy"]
    with ExitStack() as stack:
        first = [
            stack.enter_context(raw_socket(zmq.DEALER, replay, keys.client("reader")))
            for _ in range(CAP)
        ]
        for sock in first:
            sock.send_multipart(ASK_REPLAY)
            assert answered(sock), "a client within the cap got no answer"
        with raw_socket(zmq.DEALER, replay, keys.client("reader")) as late:
            late.send_multipart(ASK_REPLAY)
            wait_until(
                lambda: ask(tp, keys, STATS)["zap_denied_busy"] > before,
                what="the handshake over the cap refused",
            )
            assert not late.poll(0)
            assert "its max_connections is 3" in tp.log()
            # ZAP's temporary refusal (300) leaves its handshake to time out, then
            # libzmq reconnects it: once one of the others leaves, it gets in.
            first.pop().close(0)
            assert answered(late), "the client over the cap never got in"
        # The other ports count their own connections: ingest still answers.
        assert ask(tp, keys, HELLO)["replay"] == replay


@pytest.fixture(scope="module")
def plain_tp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    bounds = {"handshake_timeout_s": 0.5, "heartbeat_s": 0.2, "heartbeat_timeout_s": 0.5}
    proc = start_tp(tmp_path_factory.mktemp("plain"), curve=bounds)
    yield proc
    assert proc.alive(), proc.log()
    proc.stop()


def closed_by_server(conn: socket.socket, within_s: float = 10.0) -> bool:
    """Read (and drop) what the server sends until it closes the connection."""
    conn.settimeout(within_s)
    try:
        while conn.recv(65536):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        pass
    return True


def endpoints(tp: Proc) -> dict[str, Any]:
    ctx: zmq.Context[Any] = zmq.Context()
    try:
        return dict(json.loads(answer(tp_request(ctx, tp.info["address"], [HELLO], 5), "tp")))
    finally:
        ctx.term()


@pytest.mark.parametrize("port", ["address", "publish", "replay"])
def test_a_connection_that_never_handshakes_is_closed(plain_tp: Proc, port: str) -> None:
    conn = socket.create_connection(zmtp_raw.host_port(endpoints(plain_tp)[port]))
    with conn:  # connected, and then nothing: not even a greeting
        assert closed_by_server(conn), "a silent connection was never closed"


@pytest.mark.parametrize("port, kind", [("address", b"DEALER"), ("publish", b"SUB")])
def test_a_peer_that_answers_no_ping_is_closed(plain_tp: Proc, port: str, kind: bytes) -> None:
    # A ZMTP peer that finished its handshake and then went dead (never a PONG).
    conn = zmtp_raw.connect(*zmtp_raw.host_port(endpoints(plain_tp)[port]), socket_type=kind)
    with conn:
        assert closed_by_server(conn), "a dead peer was never closed"
    # A live client answers the PINGs (libzmq does it) and stays, however quiet.
    with raw_socket(zmq.DEALER, endpoints(plain_tp)["replay"], None) as live:
        live.send_multipart(ASK_REPLAY)
        assert answered(live)
        monitor = live.get_monitor_socket(zmq.EVENT_DISCONNECTED)
        assert not monitor.poll(1500), "a live, quiet client was disconnected"
        live.send_multipart(ASK_REPLAY)
        assert answered(live)
        live.disable_monitor()
        monitor.close(0)


def test_negative_bounds_are_config_errors(tmp_path: Path) -> None:
    from tickdb.config import ConfigError, load_config

    config = tmp_path / "tp.toml"
    config.write_text("[curve]\nmax_connections = -1\n")
    with pytest.raises(ConfigError, match=r"curve\.max_connections: must not be negative"):
        load_config(config)
    config.write_text("[curve]\nheartbeat_s = 10\nheartbeat_timeout_s = 1\n")
    with pytest.raises(ConfigError, match="heartbeat_timeout_s: must be at least heartbeat_s"):
        load_config(config)
