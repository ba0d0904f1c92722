from __future__ import annotations

import re
from pathlib import Path

import pytest

from tickdb.config import Config, ConfigError, config_from_dict, load_config


def test_defaults_need_no_file() -> None:
    config = load_config(None)
    assert config.tickerplant.address == "tcp://127.0.0.1:5010"
    assert config.gateway.port == 8000
    assert config.gateway.kdb_port == 5000
    assert config.tickerplant.kdb_port == 5100
    assert list(config.tables) == ["trade", "quote", "order_request", "order", "fill", "risk_admin"]
    assert config.tables["trade"].column_names == ["time", "sym", "price", "size"]


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"tickerplant": {"mode": "fast"}}, "tickerplant.mode"),
        ({"tickerplant": {"adress": "x"}}, "tickerplant.adress"),
        ({"tickerplant": {"heartbeat_ms": "soon"}}, "tickerplant.heartbeat_ms"),
        ({"tickerplant": {"heartbeat_ms": 0}}, "tickerplant.heartbeat_ms"),
        ({"journal": {"fsync": "sometimes"}}, "journal.fsync"),
        ({"eod": {"timezone": "Mars/Olympus"}}, "eod.timezone"),
        ({"eod": {"roll_time": "5pm"}}, "eod.roll_time"),
        ({"rdb": {"tables": ["nope"]}}, "rdb.tables"),
        ({"tables": {"t": {"sym": "symbol", "time": "timestamp"}}}, "tables.t"),
        ({"tables": {"t": {"time": "timestamp", "sym": "symbol", "px": "decimal"}}}, "tables.t"),
        ({"shards": 3}, "shards"),
        ({"tickerplant": {"kdb_max_connections": 0}}, "tickerplant.kdb_max_connections"),
        ({"gateway": {"kdb_idle_timeout_s": -1}}, "gateway.kdb_idle_timeout_s"),
        ({"gateway": {"scan_rows": 0}}, "gateway.scan_rows"),
        ({"gateway": {"nice": -1}}, "gateway.nice"),
        ({"gateway": {"rdb_addresses": "tcp://h:5020"}}, "gateway.rdb_addresses"),
    ],
)
def test_invalid_config_names_the_key(raw: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(key)):
        config_from_dict(raw)


def test_tables_are_declared_with_q_types(tmp_path: Path) -> None:
    path = tmp_path / "tickdb.toml"
    path.write_text(
        'data_dir = "d"\n[tables.fx]\ntime = "timestamp"\nsym = "symbol"\n'
        'bid = "float"\nvenue = "symbol"\n'
    )
    config = load_config(path, data_dir=tmp_path / "elsewhere")
    assert config.tables["fx"].qtypes() == {
        "time": "timestamp",
        "sym": "symbol",
        "bid": "float",
        "venue": "symbol",
    }
    assert config.data_path == tmp_path / "elsewhere"


def test_every_setting_is_documented() -> None:
    doc = (Path(__file__).parent.parent / "docs" / "config.md").read_text()
    import dataclasses

    for section in dataclasses.fields(Config):
        if section.name in ("data_dir", "tables"):
            assert f"`{section.name}`" in doc
            continue
        if section.name == "risk":  # its keys are documented in docs/risk.md, tested there
            assert "[risk.defaults]" in doc and "[risk.accounts.NAME]" in doc
            continue
        assert f"[{section.name}]" in doc, section.name
        for setting in dataclasses.fields(
            section.type
            if isinstance(section.type, type)
            else type(getattr(Config(), section.name))
        ):
            assert f"`{section.name}.{setting.name}`" in doc, f"{section.name}.{setting.name}"
