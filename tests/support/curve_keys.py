"""Key pairs and ``[curve]``/``[auth]`` sections for tests of the ZeroMQ ports with CURVE.

``CurveKeys(directory, roles)`` makes the stack's server pair, the components' pair
(identity ``tickdb``) and one pair per named test identity with the roles given, plus a
``stranger`` pair that no identity owns; ``sections()`` are the config sections for
``write_config``, and ``client(name)`` what a client of that identity connects with.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tickdb.curve import COMPONENT_ROLES
from tickdb.curve_links import ENV_KEY, ENV_SERVER_KEY, CurveClient
from tickdb.keyfiles import CurveKeyPair, curve_paths

COMPONENT = "tickdb"
STRANGER = "stranger"


class CurveKeys:
    def __init__(self, directory: Path, roles: Mapping[str, Sequence[str]]) -> None:
        self.directory = directory
        self.roles = {COMPONENT: list(COMPONENT_ROLES), **{k: list(v) for k, v in roles.items()}}
        self.pairs: dict[str, CurveKeyPair] = {}
        for name in ["server", STRANGER, *self.roles]:
            pair = CurveKeyPair.new()
            pair.save(directory, name)
            self.pairs[name] = pair

    def secret_file(self, name: str) -> Path:
        return curve_paths(self.directory, name)[1]

    @property
    def server_public_file(self) -> Path:
        return curve_paths(self.directory, "server")[0]

    def sections(self, mode: str = "on", auth: str = "on") -> dict[str, dict[str, Any]]:
        """``[curve]``, ``[auth]`` and one ``[auth.identities.NAME]`` per identity."""
        sections: dict[str, dict[str, Any]] = {
            "curve": {
                "mode": mode,
                "server_key": str(self.secret_file("server")),
                "client_key": str(self.secret_file(COMPONENT)),
            },
            "auth": {"mode": auth},
        }
        for name, roles in self.roles.items():
            sections[f"auth.identities.{name}"] = {
                "curve_keys": [self.pairs[name].public],
                "roles": list(roles),
            }
        return sections

    def client(self, name: str, server: str = "server") -> CurveClient:
        """What a client holding ``name``'s pair connects with (``server``: whose public
        key it trusts)."""
        return CurveClient(self.pairs[name], self.pairs[server].public)

    def env(self, name: str) -> dict[str, str]:
        """The environment a client process of ``name`` is given."""
        return {ENV_KEY: str(self.secret_file(name)), ENV_SERVER_KEY: str(self.server_public_file)}
