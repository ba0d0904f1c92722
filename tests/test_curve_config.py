"""The ``[curve]`` section: its checks at start, and where clients find their keys."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import zmq
from support.curve_keys import COMPONENT, CurveKeys
from support.harness import write_config

from tickdb import curve_links
from tickdb.config import Config, ConfigError, load_config
from tickdb.curve_links import ENV_KEY, ENV_SERVER_KEY, CurveClient, CurveLinks


@pytest.fixture
def keys(tmp_path: Path) -> CurveKeys:
    return CurveKeys(tmp_path / "keys", {"alice": ["read:trade"]})


def _load(tmp_path: Path, sections: dict) -> Config:
    return load_config(write_config(tmp_path / "c.toml", sections))


def test_off_by_default_and_plain_sockets_stay_plain() -> None:
    config = Config()
    assert config.curve.mode == "off"
    links = CurveLinks.from_config(config)
    ctx: zmq.Context = zmq.Context()
    sock = ctx.socket(zmq.ROUTER)
    try:
        assert links.serve(sock, "ingest", "publish") is False
        assert sock.get(zmq.MECHANISM) == zmq.NULL
    finally:
        sock.close(0)
        ctx.term()


def test_a_good_section_loads(tmp_path: Path, keys: CurveKeys) -> None:
    config = _load(tmp_path, keys.sections())
    links = CurveLinks.from_config(config)
    assert links.enabled
    assert links.client is not None and links.server_keys is not None
    assert links.client.keys.public == keys.pairs[COMPONENT].public
    assert links.client.server_public == keys.pairs["server"].public


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"server_key": ""}, "curve.server_key: required"),
        ({"client_key": "nowhere.secret"}, "curve.client_key: cannot read"),
        ({"client_key": "SERVER"}, "must not be the server's key pair"),
        ({"client_key": "alice"}, "identity 'alice' lacks read, publish:\\*, admin"),
        ({"client_key": "stranger"}, "is no identity's curve_keys"),
    ],
)
def test_bad_sections_name_the_key(
    tmp_path: Path, keys: CurveKeys, change: dict, message: str
) -> None:
    sections = keys.sections()
    for key, value in change.items():
        if value == "SERVER":
            value = str(keys.secret_file("server"))
        elif value in ("alice", "stranger"):
            value = str(keys.secret_file(value))
        sections["curve"][key] = value
    with pytest.raises(ConfigError, match=message):
        _load(tmp_path, sections)


def test_a_public_file_of_another_key_is_refused(tmp_path: Path, keys: CurveKeys) -> None:
    public_file = keys.secret_file("server").with_suffix(".pub")
    public_file.write_text(keys.pairs["alice"].public + "\n")
    with pytest.raises(ConfigError, match="is not the public key of"):
        _load(tmp_path, keys.sections())


def test_auth_none_needs_no_identity_for_the_component_key(tmp_path: Path, keys: CurveKeys):
    sections = keys.sections(auth="none")
    sections["curve"]["client_key"] = str(keys.secret_file("stranger"))
    assert _load(tmp_path, sections).curve.mode == "on"


def test_auth_on_with_curve_off_says_the_ports_are_open(
    tmp_path: Path, keys: CurveKeys, caplog: pytest.LogCaptureFixture, monkeypatch
) -> None:
    monkeypatch.setattr(curve_links, "_warned_open", curve_links.threading.Event())
    config = _load(tmp_path, keys.sections(mode="off"))
    ctx: zmq.Context = zmq.Context()
    sock = ctx.socket(zmq.ROUTER)
    try:
        with caplog.at_level(logging.WARNING, "tickdb.curve_links"):
            CurveLinks.from_config(config).serve(sock, "ingest")
    finally:
        sock.close(0)
        ctx.term()
    assert "THE ZEROMQ PORTS ARE OPEN" in caplog.text


def test_clients_take_keys_from_the_argument_the_component_or_the_environment(
    tmp_path: Path, keys: CurveKeys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(curve_links, "_installed", None)
    monkeypatch.delenv(ENV_KEY, raising=False)
    monkeypatch.delenv(ENV_SERVER_KEY, raising=False)
    assert curve_links.client_keys() is None
    for name, value in keys.env("alice").items():
        monkeypatch.setenv(name, value)
    from_env = curve_links.client_keys()
    assert from_env == keys.client("alice")
    # The server's public key may also be given as its text.
    monkeypatch.setenv(ENV_SERVER_KEY, keys.pairs["server"].public)
    assert curve_links.client_keys() == keys.client("alice")
    explicit = CurveClient.from_files(keys.secret_file(COMPONENT), keys.server_public_file)
    assert curve_links.client_keys(explicit) is explicit
    # A component uses its config's keys, never the environment's.
    curve_links.install(_load(tmp_path, keys.sections()))
    assert curve_links.client_keys() == keys.client(COMPONENT)
    curve_links.install(Config())
    assert curve_links.client_keys() is None
    monkeypatch.setattr(curve_links, "_installed", None)
    monkeypatch.delenv(ENV_SERVER_KEY)
    with pytest.raises(ValueError, match="set both"):
        curve_links.client_keys()
