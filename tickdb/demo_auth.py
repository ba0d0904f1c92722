"""Local credentials for ``tickdb up --demo``, made on first start in the data directory.

``<data_dir>/auth/`` holds an ``admin`` identity with every role (its password and API token
in 0600 files), server and client CURVE key pairs, a TLS CA and server certificate, and
``auth.toml``: the ``[auth]`` section naming them, with the password and token hashed. The
directory is made whole or not at all (built beside it, then renamed), and a second start
finds it and reuses it, so clients keep working across restarts.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import tomllib
from dataclasses import dataclass
from pathlib import Path

from tickdb.auth import AuthConfig, hash_token
from tickdb.config import ConfigError, config_from_dict
from tickdb.keyfiles import CurveKeyPair, curve_paths, hash_password, new_token, write_private
from tickdb.tls_certs import TlsFiles, create_tls, tls_paths

DEMO_USER = "admin"
DEMO_ROLES = ("read", "publish:*", "trade:*", "admin")


@dataclass(frozen=True)
class DemoCredentials:
    directory: Path
    user: str
    password_file: Path
    token_file: Path
    server_public: Path
    server_secret: Path
    client_public: Path
    client_secret: Path
    tls: TlsFiles
    config_file: Path  # auth.toml: the [auth] section
    auth: AuthConfig


def ensure_demo_credentials(data_dir: Path) -> DemoCredentials:
    """The demo's credentials under ``data_dir/auth``, created if missing."""
    directory = Path(data_dir) / "auth"
    if not directory.exists():
        directory.parent.mkdir(parents=True, exist_ok=True)
        partial = directory.with_name(f"auth.partial-{secrets.token_hex(4)}")
        try:
            _create(partial)
            os.rename(partial, directory)
        except OSError:
            if not directory.exists():  # not a second process that got there first
                raise
        finally:
            shutil.rmtree(partial, ignore_errors=True)
    return _describe(directory)


def _create(directory: Path) -> None:
    directory.mkdir(mode=0o700)
    password = secrets.token_urlsafe(18)
    token = new_token()
    write_private(directory / f"{DEMO_USER}.password", password + "\n")
    write_private(directory / f"{DEMO_USER}.token", token + "\n")
    CurveKeyPair.new().save(directory / "curve", "server")
    client = CurveKeyPair.new()
    client.save(directory / "curve", "client")
    create_tls(directory / "tls")
    lines = [
        "# Made by `tickdb up --demo` on first start: the demo's [auth] section.",
        "[auth]",
        'mode = "on"',
        "",
        f"[auth.identities.{DEMO_USER}]",
        f"password = {json.dumps(hash_password(password))}",
        f"tokens = [{json.dumps(hash_token(token))}]",
        f"curve_keys = [{json.dumps(client.public)}]",
        f"roles = [{', '.join(json.dumps(r) for r in DEMO_ROLES)}]",
        "",
    ]
    (directory / "auth.toml").write_text("\n".join(lines))


def load_auth_toml(path: Path) -> AuthConfig:
    """The ``[auth]`` section of a TOML file, checked as the config loader checks it."""
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    if set(raw) != {"auth"}:
        raise ConfigError(f"{path}: expected only an [auth] section")
    return config_from_dict({"auth": raw["auth"]}).auth


def _describe(directory: Path) -> DemoCredentials:
    server_public, server_secret = curve_paths(directory / "curve", "server")
    client_public, client_secret = curve_paths(directory / "curve", "client")
    config_file = directory / "auth.toml"
    return DemoCredentials(
        directory=directory,
        user=DEMO_USER,
        password_file=directory / f"{DEMO_USER}.password",
        token_file=directory / f"{DEMO_USER}.token",
        server_public=server_public,
        server_secret=server_secret,
        client_public=client_public,
        client_secret=client_secret,
        tls=tls_paths(directory / "tls"),
        config_file=config_file,
        auth=load_auth_toml(config_file),
    )


def has_section(config_path: Path | None, name: str) -> bool:
    """Whether the user's config says anything about ``[name]`` (``mode = "none"`` too: an
    explicit choice the demo keeps, loudly)."""
    if config_path is None:
        return False
    try:
        return name in tomllib.loads(Path(config_path).read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return False  # the config loader reports it


def curve_section(credentials: DemoCredentials) -> str:
    """``[curve]`` on with the demo's key pairs: its client pair is the admin identity's."""
    return "\n".join(
        [
            "[curve]",
            'mode = "on"',
            f"server_key = {json.dumps(str(credentials.server_secret.resolve()))}",
            f"client_key = {json.dumps(str(credentials.client_secret.resolve()))}",
            "",
        ]
    )


def demo_config(data_dir: Path, config_path: Path | None) -> tuple[Path, DemoCredentials] | None:
    """The config ``tickdb up --demo`` runs every component with: the user's file (if any)
    plus the demo's ``[auth]`` and ``[curve]`` sections, written to
    ``<data_dir>/run/demo.toml``, and the credentials it names. None when the user's config
    has an ``[auth]`` section of its own, which then stands as written; a ``[curve]``
    section of its own is kept too."""
    if has_section(config_path, "auth"):
        return None
    credentials = ensure_demo_credentials(data_dir)
    parts = [Path(config_path).read_text().rstrip() if config_path is not None else ""]
    parts.append(credentials.config_file.read_text())
    if not has_section(config_path, "curve"):
        parts.append(curve_section(credentials))
    merged = Path(data_dir) / "run" / "demo.toml"
    merged.parent.mkdir(parents=True, exist_ok=True)
    write_private(merged, "\n\n".join(p for p in parts if p), force=True)
    return merged, credentials


def read_secret(path: Path) -> str:
    return path.read_text().strip()
