"""``tickdb keys`` as a person runs it, and the demo's credentials: what each command prints
pastes into ``[auth]`` and works there; secrets are 0600; a TLS certificate it makes is one a
client verifies."""

from __future__ import annotations

import os
import socket
import ssl
import stat
import subprocess
import sys
import threading
from pathlib import Path

import argon2
import pytest
import zmq
from support.harness import write_config

from tickdb.auth import Authorizer
from tickdb.config import load_config
from tickdb.demo_auth import DEMO_ROLES, ensure_demo_credentials
from tickdb.keyfiles import CurveKeyPair, read_key
from tickdb.tls_certs import create_tls


def keys(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tickdb.cli", "keys", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "200"},
    )


def config_line(out: str, key: str) -> str:
    """The ``key = ...`` line a command printed for the config."""
    (line,) = [x for x in out.splitlines() if x.startswith(f"{key} = ")]
    return line


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_curve_writes_a_pair_with_a_private_secret(tmp_path: Path) -> None:
    done = keys("curve", "feed1", "--dir", str(tmp_path / "k"))
    assert done.returncode == 0, done.stderr
    public, secret = tmp_path / "k" / "feed1.pub", tmp_path / "k" / "feed1.secret"
    assert mode(secret) == 0o600
    assert zmq.curve_public(read_key(secret).encode()).decode() == read_key(public)
    assert config_line(done.stdout, "curve_keys") == f'curve_keys = ["{read_key(public)}"]'
    assert CurveKeyPair.load(tmp_path / "k", "feed1").public == read_key(public)

    again = keys("curve", "feed1", "--dir", str(tmp_path / "k"))
    assert again.returncode == 1 and "refusing to overwrite" in again.stderr
    assert CurveKeyPair.load(tmp_path / "k", "feed1").public == read_key(public)  # kept
    before = read_key(public)
    forced = keys("curve", "feed1", "--dir", str(tmp_path / "k"), "--force")
    assert forced.returncode == 0 and read_key(public) != before
    assert mode(secret) == 0o600


def test_hash_password_reads_stdin_never_argv() -> None:
    done = keys("hash-password", stdin="correct horse\n")
    assert done.returncode == 0, done.stderr
    hashed = config_line(done.stdout, "password").split('"')[1]
    assert argon2.PasswordHasher().verify(hashed, "correct horse")
    assert "correct horse" not in done.stdout
    empty = keys("hash-password", stdin="\n")
    assert empty.returncode == 1 and "empty password" in empty.stderr
    extra = keys("hash-password", "correct horse")
    assert extra.returncode != 0  # no way to pass it on the command line


def test_token_is_printed_once_with_its_hash() -> None:
    first, second = keys("token", "desk"), keys("token", "desk")
    assert first.returncode == 0, first.stderr
    token = first.stdout.split("give it to desk): ")[1].split()[0]
    assert token != second.stdout.split("give it to desk): ")[1].split()[0]
    assert config_line(first.stdout, "tokens").startswith('tokens = ["sha256:')
    bad = keys("token", "a desk")
    assert bad.returncode == 1 and "bad identity name" in bad.stderr


def test_what_the_commands_print_pastes_into_a_working_config(tmp_path: Path) -> None:
    curve = keys("curve", "client", "--dir", str(tmp_path))
    password = keys("hash-password", stdin="s3cret\n")
    token = keys("token", "alice")
    secret = token.stdout.split("give it to alice): ")[1].split()[0]
    lines = [
        "[auth]",
        'mode = "on"',
        "[auth.identities.alice]",
        config_line(password.stdout, "password"),
        config_line(token.stdout, "tokens"),
        config_line(curve.stdout, "curve_keys"),
        'roles = ["read:trade", "publish:quote"]',
    ]
    path = tmp_path / "tickdb.toml"
    path.write_text("\n".join(lines) + "\n")
    auth = Authorizer(load_config(path).auth)
    alice = auth.identity("alice")
    assert auth.check_password("alice", "s3cret") == alice
    assert auth.check_token(secret) == alice
    assert auth.identity_for_curve_key(read_key(tmp_path / "client.pub")) == alice
    assert auth.allows(alice, "read", "trade") and not auth.allows(alice, "read", "quote")


def handshake(files_dir: Path, server_hostname: str) -> str:
    """A TLS handshake on loopback: the server presents the certificate, the client trusts
    only the CA; the client's view of the peer's subject."""
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(files_dir / "server.crt", files_dir / "server.key")
    client_ctx = ssl.create_default_context(cafile=str(files_dir / "ca.crt"))
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    errors: list[BaseException] = []

    def serve() -> None:
        conn, _ = listener.accept()
        try:
            with server_ctx.wrap_socket(conn, server_side=True) as tls:
                tls.sendall(b"ok")
        except (ssl.SSLError, OSError) as exc:
            errors.append(exc)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
            client_ctx.wrap_socket(raw, server_hostname=server_hostname) as tls,
        ):
            assert tls.recv(2) == b"ok"
            subject = dict(x[0] for x in tls.getpeercert()["subject"])
            return str(subject["commonName"])
    finally:
        thread.join(10)
        listener.close()


def test_tls_makes_a_ca_and_a_server_certificate_clients_verify(tmp_path: Path) -> None:
    done = keys("tls", "--dir", str(tmp_path / "tls"), "--host", "localhost", "--host", "127.0.0.1")
    assert done.returncode == 0, done.stderr
    tls = tmp_path / "tls"
    assert mode(tls / "ca.key") == 0o600 and mode(tls / "server.key") == 0o600
    assert handshake(tls, "localhost") == "localhost"
    assert handshake(tls, "127.0.0.1") == "localhost"
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(tls, "example.org")  # not a name the certificate was made for
    again = keys("tls", "--dir", str(tls))
    assert again.returncode == 1 and "refusing to overwrite" in again.stderr


def test_another_ca_is_not_trusted(tmp_path: Path) -> None:
    create_tls(tmp_path / "a")
    create_tls(tmp_path / "b")
    (tmp_path / "a" / "ca.crt").write_bytes((tmp_path / "b" / "ca.crt").read_bytes())
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(tmp_path / "a", "localhost")


def test_demo_credentials_are_made_once_and_work(tmp_path: Path) -> None:
    creds = ensure_demo_credentials(tmp_path / "data")
    for secret in (creds.password_file, creds.token_file, creds.server_secret, creds.client_secret):
        assert mode(secret) == 0o600, secret
    assert mode(creds.tls.key) == 0o600 and creds.tls.cert.exists()
    auth = Authorizer(creds.auth)
    admin = auth.check_password(creds.user, creds.password_file.read_text().strip())
    assert admin is not None and sorted(map(str, admin.roles)) == sorted(
        ["read:*", "publish:*", "trade:*", "admin"]
    )
    assert len(DEMO_ROLES) == 4
    assert auth.check_token(creds.token_file.read_text().strip()) == admin
    assert auth.identity_for_curve_key(read_key(creds.client_public)) == admin
    assert CurveKeyPair.load(creds.server_public.parent, "server").public == read_key(
        creds.server_public
    )
    assert handshake(creds.tls.cert.parent, "localhost") == "localhost"
    # The config file a stack would include loads through the config loader too.
    config = write_config(tmp_path / "x.toml", {})
    config.write_text(creds.config_file.read_text())
    assert load_config(config).auth == creds.auth

    again = ensure_demo_credentials(tmp_path / "data")
    assert again == creds  # found and reused: clients keep working across restarts
    assert not [p for p in (tmp_path / "data").iterdir() if p.name.startswith("auth.partial")]
