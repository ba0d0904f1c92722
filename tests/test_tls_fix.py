"""FIX over TLS: the gateway's acceptor with ``tls.fix = "on"`` (real processes on loopback,
certificates from ``tickdb keys tls``) trades with tickdb's FIX client and with simplefix
over a standard-library TLS socket; a plaintext FIX client is refused and the refusal
logged; ``[fix.venues]`` TLS settings are checked and give the initiator its context."""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
import simplefix
from support.fix_stack import RISK, RawFix, fix_port, nos, start_fix_stack
from support.harness import wait_until
from support.order_stack import OrderStack

from fix.client import FixClient
from fix.codec import fix_time
from fix.settings import check_fix_venues
from orders.fix_venue_map import venue_settings
from tickdb.tls import client_context

SESSIONS = {
    "a": ("CA", "FA", "pa"),
    "b": ("CB", "FB", "pb"),
    "c": ("CC", "FC", "pc"),
}


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("certs") / "tls"
    done = subprocess.run(
        [sys.executable, "-m", "tickdb.cli", "keys", "tls", "--dir", str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return directory


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, certs: Path) -> Iterator[OrderStack]:
    tls = f'\n[tls]\ncert = "{certs / "server.crt"}"\nkey = "{certs / "server.key"}"\nfix = "on"\n'
    running = start_fix_stack(tmp_path_factory.mktemp("fixtls"), SESSIONS, risk=RISK + tls)
    yield running
    running.stop()


def test_tickdb_fix_client_trades_over_tls(stack: OrderStack, certs: Path) -> None:
    context = client_context(certs / "ca.crt")
    with FixClient(
        "127.0.0.1", fix_port(stack), "CA", "TICKDB", password="pa", tls=context
    ) as client:
        client.wait_logged_on()
        client.send("D", nos("tls1"))
        ack = client.wait_for(lambda m: m.msg_type == "8" and m.get(11) == "tls1")
        assert ack.get(150) == "0" and ack.get(1) == "FA"


def simplefix_message(msg_type: str, seq: int, *fields: tuple[int, str]) -> bytes:
    msg = simplefix.FixMessage()
    msg.append_pair(8, "FIX.4.4", header=True)
    msg.append_pair(35, msg_type, header=True)
    msg.append_pair(49, "CB", header=True)
    msg.append_pair(56, "TICKDB", header=True)
    msg.append_pair(34, seq, header=True)
    msg.append_pair(52, fix_time(), header=True)
    for tag, value in fields:
        msg.append_pair(tag, value)
    return bytes(msg.encode())


def test_simplefix_over_an_ssl_socket(stack: OrderStack, certs: Path) -> None:
    context = client_context(certs / "ca.crt")
    parser = simplefix.FixParser()
    with (
        socket.create_connection(("127.0.0.1", fix_port(stack)), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        logon = [(98, "0"), (108, "30"), (554, "pb"), (141, "Y")]
        tls.sendall(simplefix_message("A", 1, *logon))
        order = [(11, "sf1"), (55, "AAPL"), (54, "2"), (38, "10"), (40, "2"), (44, "500")]
        order += [(59, "0"), (60, fix_time())]
        tls.sendall(simplefix_message("D", 2, *order))
        seen: list[tuple[bytes | None, bytes | None]] = []
        deadline = time.monotonic() + 10
        while (b"8", b"sf1") not in seen and time.monotonic() < deadline:
            data = tls.recv(65536)
            assert data, f"closed by the gateway; seen {seen}"
            parser.append_buffer(data)
            while (msg := parser.get_message()) is not None:
                seen.append((msg.get(35), msg.get(11)))
        assert seen[0] == (b"A", None), seen  # the Logon answered first
        assert (b"8", b"sf1") in seen, seen


def test_plaintext_fix_is_refused_and_logged(stack: OrderStack) -> None:
    raw = RawFix(fix_port(stack), "CC")
    try:
        raw.send("A", [(98, 0), (108, 30), (554, "pc"), (141, "Y")])
        assert raw.closed(10)  # no Logon in answer: the bytes were not a TLS handshake
    finally:
        raw.close()
    assert stack.gateway is not None
    gateway = stack.gateway
    wait_until(lambda: "closed: TLS:" in gateway.log(), 10, "the TLS refusal logged")


def venue(tmp_path: Path, **tls: object) -> dict[str, object]:
    base = {"shard": 0, "host": "127.0.0.1", "port": 9999}
    return {**base, "sender_comp_id": "US", "target_comp_id": "THEM", **tls}


def test_venue_tls_settings_are_checked_and_give_a_context(tmp_path: Path, certs: Path) -> None:
    def cfg(raw: dict[str, object]) -> SimpleNamespace:
        fix = SimpleNamespace(venues={"ext": raw}, store_dir=str(tmp_path), max_latency_s=1.0)
        fix.logon_timeout_s = 1.0
        return SimpleNamespace(fix=fix, data_path=tmp_path)

    secure = cfg(venue(tmp_path, tls=True, tls_ca=str(certs / "ca.crt")))
    check_fix_venues(secure.fix)
    settings = venue_settings(secure, 0)
    assert settings is not None and isinstance(settings.tls, ssl.SSLContext)
    assert settings.tls.verify_mode == ssl.CERT_REQUIRED and settings.tls.check_hostname
    plain = venue_settings(cfg(venue(tmp_path)), 0)
    assert plain is not None and plain.tls is None
    with pytest.raises(ValueError, match=r"fix\.venues\.ext\.tls: set tls = true"):
        check_fix_venues(cfg(venue(tmp_path, tls_ca=str(certs / "ca.crt"))).fix)
    missing = venue(tmp_path, tls=True, tls_ca=str(tmp_path / "nope.crt"))
    with pytest.raises(ValueError, match=r"fix\.venues\.ext\.tls_ca.*cannot load"):
        check_fix_venues(cfg(missing).fix)
