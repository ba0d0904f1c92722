"""``tickdb keys``: make the credentials the ``[auth]`` section names (docs/security.md).

Each command prints the line to paste under ``[auth.identities.NAME]``; secrets go to 0600
files or are printed once, and a password is read from stdin or a prompt, never argv (it
would show in ``ps`` and the shell's history).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

keys_app = typer.Typer(
    help="Make credentials: CURVE keys, password hashes, API tokens, TLS certificates.",
    no_args_is_help=True,
)

DirOpt = Annotated[Path, typer.Option("--dir", help="Directory to write the files to.")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Replace existing files.")]


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")


def _fail(message: str) -> typer.Exit:
    typer.echo(f"tickdb keys: {message}", err=True)
    return typer.Exit(1)


@keys_app.command("curve")
def curve(
    name: Annotated[str, typer.Argument(help="Key name: NAME.pub and NAME.secret.")],
    directory: DirOpt = Path("."),
    force: ForceOpt = False,
) -> None:
    """A CURVE key pair for a ZeroMQ server or client (z85; the secret file is 0600)."""
    from tickdb.keyfiles import CurveKeyPair

    pair = CurveKeyPair.new()
    try:
        public, secret = pair.save(directory, name, force=force)
    except FileExistsError as exc:
        raise _fail(str(exc)) from None
    typer.echo(f"public key  {public}\nsecret key  {secret} (keep it on this machine)")
    typer.echo("for a client, under [auth.identities.NAME]:")
    typer.echo(f"curve_keys = [{json.dumps(pair.public)}]")


@keys_app.command("hash-password")
def hash_password_command() -> None:
    """Print an argon2 hash of a password read from stdin (or a prompt on a terminal)."""
    from tickdb.keyfiles import hash_password

    if sys.stdin.isatty():
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise _fail("empty password")
    typer.echo(f"password = {json.dumps(hash_password(password))}")


@keys_app.command("token")
def token(name: Annotated[str, typer.Argument(help="The identity the token is for.")]) -> None:
    """A random API token, printed once, and its hash line for the config."""
    from tickdb.auth import NAME_RE
    from tickdb.keyfiles import hash_token, new_token

    if not NAME_RE.fullmatch(name):
        raise _fail(f"bad identity name {name!r}: letters, digits and _.@-")
    secret = new_token()
    typer.echo(f"token (shown once; give it to {name}): {secret}")
    typer.echo(f"under [auth.identities.{name}]:")
    typer.echo(f"tokens = [{json.dumps(hash_token(secret))}]")


@keys_app.command("tls")
def tls(
    directory: DirOpt = Path("tls"),
    host: Annotated[
        list[str] | None,
        typer.Option("--host", help="DNS name or IP clients use (repeat); default local."),
    ] = None,
    days: Annotated[int, typer.Option(help="Server certificate validity.")] = 825,
    renew: Annotated[
        bool,
        typer.Option(
            "--renew", help="A new server certificate from the CA already in --dir (rotation)."
        ),
    ] = False,
    force: ForceOpt = False,
) -> None:
    """A self-signed CA and a server certificate it signs (HTTP, kdb+ and FIX TLS)."""
    from tickdb.tls_certs import DEFAULT_HOSTS, create_tls, renew_server

    hosts = tuple(host or DEFAULT_HOSTS)
    try:
        if renew:
            files = renew_server(directory, hosts, days=days)
        else:
            files = create_tls(directory, hosts, days=days, force=force)
    except (OSError, ValueError) as exc:
        raise _fail(str(exc)) from None
    if renew:
        typer.echo(f"server certificate  {files.cert} (renewed; served to new connections)")
        typer.echo(f"server key          {files.key}")
        return
    typer.echo(f"CA certificate      {files.ca_cert} (clients trust this)")
    typer.echo(f"CA key              {files.ca_key} (keep offline; signs renewals)")
    typer.echo(f"server certificate  {files.cert}")
    typer.echo(f"server key          {files.key}")


@keys_app.command("tls-client")
def tls_client(
    name: Annotated[str, typer.Argument(help="Client name: NAME.crt and NAME.key.")],
    directory: DirOpt = Path("tls"),
    days: Annotated[int, typer.Option(help="Certificate validity.")] = 825,
    force: ForceOpt = False,
) -> None:
    """A client certificate signed by the CA in --dir, for ports with tls.client_ca set;
    prints the lines that make it an identity's over HTTPS."""
    from tickdb.auth import NAME_RE
    from tickdb.tls_certs import cert_names, create_client

    if not NAME_RE.fullmatch(name):
        raise _fail(f"bad client name {name!r}: letters, digits and _.@-")
    try:
        cert, key = create_client(directory, name, days=days, force=force)
    except (OSError, ValueError) as exc:
        raise _fail(str(exc)) from None
    typer.echo(f"client certificate  {cert}")
    typer.echo(f"client key          {key} (give both to the client: --cert, --key)")
    subject, fingerprint = cert_names(cert)
    typer.echo("to sign in with it over HTTPS, under [auth.identities.NAME] one of:")
    typer.echo(f"cert_subjects = [{json.dumps(subject)}]        # any certificate of this name")
    typer.echo(f"cert_fingerprints = [{json.dumps(fingerprint)}]  # this certificate only")
