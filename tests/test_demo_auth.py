"""``tickdb up --demo``'s config: the user's file plus the demo's ``[auth]``, unless the user
said something about ``[auth]`` themselves."""

from __future__ import annotations

from pathlib import Path

from tickdb.config import load_config
from tickdb.demo_auth import DEMO_USER, demo_config


def test_without_a_config_the_demo_turns_auth_on_with_its_own_identity(tmp_path: Path) -> None:
    made = demo_config(tmp_path, None)
    assert made is not None
    path, credentials = made
    assert path == tmp_path / "run" / "demo.toml" and path.stat().st_mode & 0o777 == 0o600
    cfg = load_config(path)
    assert cfg.auth.mode == "on" and list(cfg.auth.identities) == [DEMO_USER]
    # CURVE on every ZeroMQ link, the components connecting as the demo's identity.
    assert cfg.curve.mode == "on"
    assert Path(cfg.curve.client_key) == credentials.client_secret.resolve()
    assert Path(cfg.curve.server_key) == credentials.server_secret.resolve()
    # A second start reuses the credentials: clients given the token keep working.
    again = demo_config(tmp_path, None)
    assert (
        again is not None and again[1].token_file.read_text() == credentials.token_file.read_text()
    )


def test_the_users_sections_are_kept(tmp_path: Path) -> None:
    user = tmp_path / "mine.toml"
    user.write_text("[gateway]\nport = 0\nmax_rows = 77\n\n[stack]\nshards = 3\n")
    made = demo_config(tmp_path / "data", user)
    assert made is not None
    cfg = load_config(made[0])
    assert (cfg.gateway.max_rows, cfg.stack.shards, cfg.auth.mode) == (77, 3, "on")
    # A [curve] section of the user's own is kept as written.
    user.write_text('[curve]\nmode = "off"\n')
    made = demo_config(tmp_path / "data", user)
    assert made is not None and load_config(made[0]).curve.mode == "off"


def test_an_auth_section_of_the_users_own_stands_as_written(tmp_path: Path) -> None:
    user = tmp_path / "open.toml"
    user.write_text('[auth]\nmode = "none"\n')
    assert demo_config(tmp_path / "data", user) is None
    assert not (tmp_path / "data" / "auth").exists()
