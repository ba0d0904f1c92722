"""Making and reading credentials: CURVE key pairs as z85 files, API tokens, password hashes.

Secret files are created with mode 0600 and never overwritten unless asked: a key that
silently changes locks out every client that trusted the old one.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import argon2
import zmq

from tickdb.auth import hash_token

TOKEN_BYTES = 32  # 256 bits: a token is as strong as a key, so one sha256 stores it
PUBLIC_SUFFIX = ".pub"
SECRET_SUFFIX = ".secret"


def write_private(path: Path, text: str, *, force: bool = False) -> None:
    """Write ``text`` to a new file only its owner can read (0600)."""
    if force:
        path.unlink(missing_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise FileExistsError(f"{path} exists; refusing to overwrite a secret") from None
    with os.fdopen(fd, "w") as f:
        os.fchmod(fd, 0o600)  # whatever the umask said
        f.write(text)


def write_public(path: Path, text: str, *, force: bool = False) -> None:
    if path.exists() and not force:
        raise FileExistsError(f"{path} exists; refusing to overwrite it")
    path.write_text(text)


@dataclass(frozen=True)
class CurveKeyPair:
    """A CURVE key pair, both halves z85 text (40 characters each)."""

    public: str
    secret: str

    @classmethod
    def new(cls) -> CurveKeyPair:
        public, secret = zmq.curve_keypair()
        return cls(public.decode(), secret.decode())

    @classmethod
    def from_secret(cls, secret: str) -> CurveKeyPair:
        """The pair of a secret key: the public half follows from it."""
        return cls(zmq.curve_public(secret.encode()).decode(), secret)

    def save(self, directory: Path, name: str, *, force: bool = False) -> tuple[Path, Path]:
        """``NAME.pub`` and ``NAME.secret`` (0600) in ``directory``; their paths."""
        directory.mkdir(parents=True, exist_ok=True)
        public, secret = curve_paths(directory, name)
        write_private(secret, self.secret + "\n", force=force)
        write_public(public, self.public + "\n", force=force)
        return public, secret

    @classmethod
    def load(cls, directory: Path, name: str) -> CurveKeyPair:
        """The pair saved as ``name``; the public file must match the secret."""
        public_path, secret_path = curve_paths(directory, name)
        pair = cls.from_secret(read_key(secret_path))
        if public_path.exists() and read_key(public_path) != pair.public:
            raise ValueError(f"{public_path} is not the public key of {secret_path}")
        return pair


def curve_paths(directory: Path, name: str) -> tuple[Path, Path]:
    return directory / f"{name}{PUBLIC_SUFFIX}", directory / f"{name}{SECRET_SUFFIX}"


def read_key(path: Path) -> str:
    """A z85 key from a file written by ``tickdb keys curve`` (or any 40-char z85 line)."""
    text = path.read_text().strip()
    if len(text) != 40:
        raise ValueError(f"{path}: expected a 40-character z85 CURVE key")
    return text


def new_token() -> str:
    """A random API token; only its hash (``hash_token``) goes into the config."""
    return "tdb_" + secrets.token_urlsafe(TOKEN_BYTES)


def hash_password(password: str) -> str:
    """An argon2id hash for ``[auth.identities.NAME] password``."""
    if not password:
        raise ValueError("empty password")
    return argon2.PasswordHasher().hash(password)


__all__ = ["CurveKeyPair", "hash_password", "hash_token", "new_token", "read_key"]
