"""TLS on the gateway's HTTP and kdb+ ports and the tickerplant's kdb+ port: real processes on
loopback, certificates made by ``tickdb keys tls`` (and ``tls-client``) as a person would.

HTTPS works for a client that trusts the CA and fails for one that does not; plaintext to a
TLS port fails; a port that requires client certificates refuses a client without one;
kdb+ TLS works with QClient and PyKX, and "on" refuses plaintext kdb+ while "optional"
takes both; a renewed certificate is served without a restart.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from support.gateway_q import DATA, USERS
from support.gateway_stack import start_stack, stop_stack
from support.harness import Proc, free_port, start_tp, wait_until

from gateway.client import Client, GatewayUnreachable
from qipc import QClient, QIpcServer, ServerLimits, Symbol
from tickdb.config import ConfigError, config_from_dict
from tickdb.tls import PortTls, TlsConfig, client_context, make_server_context

COUNT = "select count(*) as n from trade"
QUANT = {"user": "quant", "password": USERS["quant"]}
SLOW_OK = 30.0  # the gateway's query time limit: these tests are not about speed


def keys(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "tickdb.cli", "keys", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("certs") / "tls"
    keys("tls", "--dir", str(directory), "--host", "localhost", "--host", "127.0.0.1")
    keys("tls-client", "desk1", "--dir", str(directory))
    return directory


def tls_section(certs: Path, **ports: str) -> dict[str, str]:
    return {"cert": str(certs / "server.crt"), "key": str(certs / "server.key"), **ports}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, certs: Path) -> Iterator[dict[str, Any]]:
    """A gateway with HTTPS and a TLS-only kdb+ port."""
    tls = tls_section(certs, http="on", gateway_kdb="on")
    running = start_stack(
        tmp_path_factory.mktemp("gateway_tls"), DATA, SLOW_OK, users=USERS, sections={"tls": tls}
    )
    yield running
    stop_stack(running)


def rows(table: Any) -> int:
    return int(table.column("n")[0].as_py())


def test_https_query_works_with_the_ca_and_fails_without_it(
    stack: dict[str, Any], certs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = stack["url"]
    assert url.startswith("https://127.0.0.1:")
    with Client(url, verify=certs / "ca.crt") as client:
        assert rows(client.query(COUNT)) == len(DATA["trade"])
    monkeypatch.delenv("TICKDB_CA", raising=False)
    with Client(url) as client, pytest.raises(GatewayUnreachable) as failed:
        client.query(COUNT)
    assert "CERTIFICATE_VERIFY_FAILED" in str(failed.value)
    monkeypatch.setenv("TICKDB_CA", str(certs / "ca.crt"))  # what --ca exports
    with Client(url) as client:
        assert rows(client.query(COUNT)) == len(DATA["trade"])


def test_the_cli_takes_the_ca(stack: dict[str, Any], certs: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKDB_")}
    command = [sys.executable, "-m", "tickdb.cli", "query", COUNT, "--url", stack["url"]]
    command += ["--format", "json"]
    without = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)
    assert without.returncode == 2 and "CERTIFICATE_VERIFY_FAILED" in without.stderr
    done = subprocess.run(
        [*command, "--ca", str(certs / "ca.crt")],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["data"] == [[len(DATA["trade"])]]


def test_plaintext_http_to_the_tls_port_fails(stack: dict[str, Any]) -> None:
    port = int(stack["url"].rsplit(":", 1)[1])
    with pytest.raises(GatewayUnreachable):
        Client(f"http://127.0.0.1:{port}", timeout_s=10).query(COUNT)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    with pytest.raises((http.client.HTTPException, OSError)):
        conn.request("GET", "/health")
        conn.getresponse().read()
    conn.close()
    # The gateway says so in its log (asyncio alone would drop it at DEBUG level).
    wait_until(
        lambda: "TLS handshake on the HTTP port failed" in stack["proc"].log(),
        10,
        "the failed handshake in the gateway's log",
    )


def test_kdb_tls_with_qclient_and_plaintext_refused_on_a_tls_only_port(
    stack: dict[str, Any], certs: Path
) -> None:
    port = stack["kdb_port"]
    tls = client_context(certs / "ca.crt")
    with QClient("127.0.0.1", port, tls=tls, **QUANT) as q:
        assert q.sync(".tickdb.sql", COUNT).columns["n"].tolist() == [len(DATA["trade"])]
    with pytest.raises(OSError):  # closed before the capability byte, as q refuses
        QClient("127.0.0.1", port, timeout=10, **QUANT).sync("1")
    with pytest.raises(ssl.SSLCertVerificationError):
        QClient("127.0.0.1", port, tls=True, **QUANT)  # the system's CAs do not know ours
    wait_until(
        lambda: "plaintext on a TLS-only port" in stack["proc"].log(), 10, "the refusal logged"
    )


PYKX = """
import json, sys
import pykx as kx
port, user, password = int(sys.argv[1]), sys.argv[2], sys.argv[3]
try:
    with kx.SyncQConnection("127.0.0.1", port, username=user, password=password, tls=True) as q:
        n = q(".tickdb.sql", kx.CharVector(sys.argv[4])).pd()["n"].tolist()
    print(json.dumps({"n": n}))
except Exception as exc:
    print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
"""


def pykx(port: int, env: dict[str, str]) -> dict[str, Any]:
    base = {"PYKX_UNLICENSED": "true", "PATH": "/usr/bin:/bin", "HOME": str(Path.home())}
    done = subprocess.run(
        [sys.executable, "-c", PYKX, str(port), QUANT["user"], QUANT["password"], COUNT],
        capture_output=True,
        text=True,
        timeout=60,
        env={**base, **env},
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout.splitlines()[-1]))


def test_kdb_tls_with_pykx(stack: dict[str, Any], certs: Path) -> None:
    """PyKX (unlicensed) speaks TLS as q does: the CA from SSL_CA_CERT_FILE."""
    got = pykx(stack["kdb_port"], {"SSL_CA_CERT_FILE": str(certs / "ca.crt")})
    assert got == {"n": [len(DATA["trade"])]}
    refused = pykx(stack["kdb_port"], {"SSL_CA_CERT_FILE": "/dev/null"})
    assert "error" in refused


@pytest.fixture(scope="module")
def mtls(tmp_path_factory: pytest.TempPathFactory, certs: Path) -> Iterator[dict[str, Any]]:
    """A gateway that requires client certificates signed by our CA on both ports."""
    tls = tls_section(certs, http="on", gateway_kdb="on", client_ca=str(certs / "ca.crt"))
    running = start_stack(
        tmp_path_factory.mktemp("gateway_mtls"), DATA, SLOW_OK, users=USERS, sections={"tls": tls}
    )
    yield running
    stop_stack(running)


def test_client_certificates_required(mtls: dict[str, Any], certs: Path) -> None:
    ca, cert = certs / "ca.crt", (certs / "desk1.crt", certs / "desk1.key")
    with Client(mtls["url"], verify=ca, cert=cert) as client:
        assert rows(client.query(COUNT)) == len(DATA["trade"])
    with Client(mtls["url"], verify=ca) as client, pytest.raises(GatewayUnreachable) as failed:
        client.query(COUNT)
    assert "require a client certificate?" in str(failed.value), failed.value
    wait_until(
        lambda: (
            "TLS handshake on the HTTP port failed: PEER_DID_NOT_RETURN_A_CERTIFICATE"
            in mtls["proc"].log()
        ),
        10,
        "the refused client in the gateway's log",
    )
    with_cert = client_context(ca, cert=cert[0], key=cert[1])
    with QClient("127.0.0.1", mtls["kdb_port"], tls=with_cert, **QUANT) as q:
        assert q.sync(".tickdb.sql", COUNT).columns["n"].tolist() == [len(DATA["trade"])]
    with pytest.raises(OSError, match="certificate required"):  # the server's TLS alert
        QClient("127.0.0.1", mtls["kdb_port"], tls=client_context(ca), **QUANT).sync("1")
    # The server logs the refused handshake on its own thread, a moment after the alert.
    wait_until(lambda: "TLS handshake with" in mtls["proc"].log(), 10, "the refused q client")
    # PyKX presents a client certificate as q does: SSL_CERT_FILE and SSL_KEY_FILE.
    env = {"SSL_CA_CERT_FILE": str(ca)}
    assert "error" in pykx(mtls["kdb_port"], env)
    env |= {"SSL_CERT_FILE": str(cert[0]), "SSL_KEY_FILE": str(cert[1])}
    assert pykx(mtls["kdb_port"], env) == {"n": [len(DATA["trade"])]}


def served_serial(port: int, ca: Path) -> int:
    context = client_context(ca)
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    from cryptography import x509

    assert der is not None
    return int(x509.load_der_x509_certificate(der).serial_number)


def test_a_renewed_certificate_is_served_without_a_restart(tmp_path: Path, certs: Path) -> None:
    """A stack of its own: renewing rewrites the certificate the other tests use."""
    own = tmp_path / "tls"
    keys("tls", "--dir", str(own), "--host", "127.0.0.1")
    tls = tls_section(own, http="on")
    running = start_stack(tmp_path, DATA, SLOW_OK, users={}, sections={"tls": tls})
    try:
        port = int(running["url"].rsplit(":", 1)[1])
        before = served_serial(port, own / "ca.crt")
        keys("tls", "--dir", str(own), "--host", "127.0.0.1", "--renew")
        wait_until(lambda: served_serial(port, own / "ca.crt") != before, 10, "the new certificate")
        with Client(running["url"], verify=own / "ca.crt") as client:  # the same CA
            assert rows(client.query(COUNT)) == len(DATA["trade"])
        assert "TLS certificate reloaded" in running["proc"].log()
    finally:
        stop_stack(running)


def test_tickerplant_kdb_optional_takes_tls_and_plaintext(tmp_path: Path, certs: Path) -> None:
    """A TLS subscriber gets the rows a plaintext publisher sends: pushes from the
    publisher's thread while the subscriber's thread reads, on one TLS connection."""
    port = free_port()
    tp: Proc = start_tp(
        tmp_path,
        tickerplant={"kdb_port": port},
        tls=tls_section(certs, tickerplant_kdb="optional"),
    )
    try:
        with (
            QClient("127.0.0.1", port, tls=client_context(certs / "ca.crt")) as sub,
            QClient("127.0.0.1", port) as pub,
        ):
            sub.sync(".u.sub", Symbol("trade"), Symbol(""))
            for n in range(1, 201):
                pub.send_async(".u.upd", Symbol("trade"), [Symbol("A"), np.float64(n), np.int64(n)])
            got: list[int] = []
            while len(got) < 200:
                _, (_, _, data) = sub.receive(10)
                got += data.columns["size"].tolist()
            assert got == list(range(1, 201))
            assert pub.sync("") is None  # plaintext sync too
    finally:
        tp.stop()


def test_a_tls_port_over_its_connection_cap_closes_the_next_client(certs: Path) -> None:
    """In this process: the cap is counted in the accept thread, which does no handshakes."""
    files = TlsConfig(cert=str(certs / "server.crt"), key=str(certs / "server.key"))
    context = make_server_context(files)
    limits = ServerLimits(max_connections=1)
    with QIpcServer(lambda value, *_: value, limits=limits, tls=PortTls(context)) as server:
        tls = client_context(certs / "ca.crt")
        with QClient("127.0.0.1", server.port, tls=tls) as first:
            assert first.sync("x") == "x"
            with pytest.raises(OSError):
                QClient("127.0.0.1", server.port, tls=tls, timeout=10).sync("y")
            assert server.over_cap == 1 and first.sync("z") == "z"


def test_tls_config_names_the_key(tmp_path: Path, certs: Path) -> None:
    with pytest.raises(ConfigError, match=r"tls\.cert: required"):
        config_from_dict({"tls": {"http": "on"}})
    missing = {"cert": str(tmp_path / "nope.crt"), "key": str(certs / "server.key")}
    with pytest.raises(ConfigError, match=r"tls\.cert, tls\.key: cannot load"):
        config_from_dict({"tls": {**missing, "gateway_kdb": "on"}})
    with pytest.raises(ConfigError, match=r"tls\.http: expected one of off, on"):
        config_from_dict({"tls": {**tls_section(certs), "http": "optional"}})
    config = config_from_dict({"tls": tls_section(certs, tickerplant_kdb="optional")})
    assert config.tls.tickerplant_kdb == "optional" and config.tls.http == "off"
