"""``[auth]`` sections for test stacks: identities with tokens and cheap argon2 passwords."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import argon2

from tickdb.auth import hash_token

# argon2 at its lowest cost: the tests check who gets in, not how long a guess takes.
FAST = argon2.PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


def identity(
    roles: Sequence[str], token: str | None = None, password: str | None = None
) -> dict[str, Any]:
    """One ``[auth.identities.NAME]`` table."""
    entry: dict[str, Any] = {"roles": list(roles)}
    if token is not None:
        entry["tokens"] = [hash_token(token)]
    if password is not None:
        entry["password"] = FAST.hash(password)
    return entry


def auth_sections(identities: Mapping[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``[auth] mode = "on"`` and its identities, as ``write_config`` sections."""
    return {
        "auth": {"mode": "on"},
        **{f"auth.identities.{name}": dict(entry) for name, entry in identities.items()},
    }


def auth_toml(identities: Mapping[str, dict[str, Any]]) -> str:
    """The same as TOML text, for a stack's ``extra_toml``."""
    lines = []
    for section, values in auth_sections(identities).items():
        lines.append(f"[{section}]")
        for key, value in values.items():
            if isinstance(value, list):
                text = "[" + ", ".join(f'"{v}"' for v in value) + "]"
            else:
                text = f'"{value}"'
            lines.append(f"{key} = {text}")
    return "\n".join(lines) + "\n"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
