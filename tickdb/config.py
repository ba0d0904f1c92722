"""One TOML file configures a whole stack; every setting has a default.

Sections are frozen, keyword-only dataclasses. Loading rejects unknown keys and wrong types
with a message naming the key (``tickerplant.mode: expected one of …``), so a typo fails at
start instead of being silently ignored. ``docs/config.md`` documents every setting, and a
test checks that it does.
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tickdb.auth import AuthConfig, check_auth_config
from tickdb.curve import CurveConfig, check_curve_config
from tickdb.schema import DEFAULT_TABLES, SchemaError, TableSchema
from tickdb.tls import TlsConfig, check_tls_config
from tickdb.types import PublishMode

if TYPE_CHECKING:
    from qipc.limits import ServerLimits


class ConfigError(ValueError):
    """A setting that cannot be used; the message names the key."""


@dataclass(frozen=True, kw_only=True)
class TickerplantConfig:
    address: str = "tcp://127.0.0.1:5010"
    publish_address: str = "tcp://127.0.0.1:5011"
    replay_address: str = "tcp://127.0.0.1:5012"
    mode: PublishMode = "immediate"
    batch_interval_ms: int = 100
    coalesce_queued: bool = True
    max_message_bytes: int = 64 * 1024 * 1024
    # Largest frame the ingest socket reads (ZeroMQ MAXMSGSIZE); 0: max_message_bytes plus
    # an UPD's header and table name (tickerplant.ingest_limits).
    ingest_max_frame_bytes: int = 0
    # Largest frame the publish socket (a subscription) and the replay socket (a replay
    # request) read, ZeroMQ MAXMSGSIZE: a client sending a bigger one is disconnected.
    publish_max_frame_bytes: int = 1 << 20
    replay_max_frame_bytes: int = 1 << 20
    subscriber_buffer: int = 100_000
    heartbeat_ms: int = 1000
    kdb_host: str = "127.0.0.1"
    kdb_port: int = 5100
    # Bounds of the kdb+ port (qipc.limits.ServerLimits, docs/security.md).
    kdb_max_message_bytes: int = 64 * 1024 * 1024
    kdb_max_connections: int = 256
    kdb_idle_timeout_s: float = 300.0


@dataclass(frozen=True, kw_only=True)
class ReplicationConfig:
    """A tickerplant pair (``tickerplant.standby``, docs/tickerplant-standby.md)."""

    # "off": a lone tickerplant; "sync": a batch is acknowledged (and published) once the
    # standby has it; "async": once journaled here, the standby follows behind.
    mode: Literal["off", "sync", "async"] = "off"
    # Where this node serves its journal to a standby (when primary).
    address: str = "tcp://127.0.0.1:5013"
    # Shared by both nodes of the pair: the lease (``tickdb.lease``) and the primary's
    # endpoints. Required when mode is not "off".
    lease_dir: str = ""
    lease_ttl_ms: int = 1000
    # A standby silent this long is dropped: the primary then acknowledges on its own.
    standby_timeout_ms: int = 1000


@dataclass(frozen=True, kw_only=True)
class JournalConfig:
    fsync: Literal["never", "interval", "always"] = "interval"
    fsync_interval_ms: int = 1000


@dataclass(frozen=True, kw_only=True)
class EodConfig:
    roll_time: str = "00:00"
    timezone: str = "UTC"


@dataclass(frozen=True, kw_only=True)
class RdbConfig:
    address: str = "tcp://127.0.0.1:5020"
    tables: list[str] = field(default_factory=list)
    syms: list[str] = field(default_factory=list)
    memory_limit_mb: int = 2048
    query_timeout_s: float = 30.0
    max_rows: int = 1_000_000


@dataclass(frozen=True, kw_only=True)
class HdbConfig:
    address: str = "tcp://127.0.0.1:5030"
    query_timeout_s: float = 60.0
    max_rows: int = 1_000_000


@dataclass(frozen=True, kw_only=True)
class GatewayConfig:
    host: str = "127.0.0.1"
    port: int = 8000
    kdb_host: str = "127.0.0.1"
    kdb_port: int = 5000
    # Bounds of the kdb+ port (qipc.limits.ServerLimits, docs/security.md).
    kdb_max_message_bytes: int = 64 * 1024 * 1024
    kdb_max_connections: int = 256
    kdb_idle_timeout_s: float = 300.0
    kdb_login_backoff_max_s: float = 5.0
    query_timeout_s: float = 30.0
    max_rows: int = 1_000_000
    # Bounds of a query's text and of one client's queries at once (docs/security.md).
    max_query_chars: int = 65_536
    max_nesting: int = 32
    client_queries: int = 4
    # The order-entry port (ZeroMQ, tickdb.Orders); empty: off.
    order_port: str = "tcp://127.0.0.1:5040"
    # username -> password for the kdb+ port; empty means no check.
    users: dict[str, str] = field(default_factory=dict)
    # The backends' query addresses, one per shard (tickdb up passes its own).
    rdb_addresses: list[str] = field(default_factory=list)
    hdb_addresses: list[str] = field(default_factory=list)
    # The tickerplant the gateway takes orders through (with orders.enabled); empty: none.
    tp_address: str = ""
    # Rows one backend may send for a merge; beyond it the query fails.
    scan_rows: int = 5_000_000
    # Seconds between the backends' info() calls.
    refresh_s: float = 1.0
    # Requests outstanding per backend; 0: half the cores, at least one.
    in_flight: int = 0
    # Nice steps below normal priority, so ingest on the same host wins.
    nice: int = 0


@dataclass(frozen=True, kw_only=True)
class OrdersConfig:
    # tickdb up starts a matching venue per shard and the gateway takes orders.
    enabled: bool = True
    # Tradable syms; empty means any sym.
    syms: list[str] = field(default_factory=list)
    tick_size: float = 0.01
    # Per-sym tick sizes overriding tick_size.
    tick_sizes: dict[str, float] = field(default_factory=dict)
    # Self-trade prevention: which order of a would-be self trade is canceled.
    stp: Literal["cancel_incoming", "cancel_resting"] = "cancel_incoming"
    # Resting orders also fill against the live quotes (paper trading).
    paper: bool = False
    # How long a submit, cancel or replace waits for the venue's answer.
    submit_timeout_s: float = 2.0
    # Venue state snapshots (orders.snapshot): a restart replays the journal only after the
    # newest one. Every this many inputs and/or seconds (0: that trigger off; both 0: none).
    snapshot_every_inputs: int = 20_000
    snapshot_every_s: float = 60.0
    # Where they are written; empty: <data_dir>/snapshots. Snapshots kept per venue.
    snapshot_dir: str = ""
    snapshot_keep: int = 2
    # The gateway's order-state snapshots (gateway.order_snapshot), in the same directory:
    # every this many order-flow records and/or seconds (0: that trigger off; both 0: none).
    gateway_snapshot_every_records: int = 0
    gateway_snapshot_every_s: float = 0.0


@dataclass(frozen=True, kw_only=True)
class FixConfig:
    # The gateway's FIX 4.4 acceptor (docs/fix.md): off unless enabled.
    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 9878
    # Sequence numbers and sent messages of every session; empty: <data_dir>/fix.
    store_dir: str = ""
    max_message_bytes: int = 64 * 1024
    max_connections: int = 64
    logon_timeout_s: float = 10.0
    max_latency_s: float = 120.0
    # [fix.sessions.NAME]: a client session (CompIDs, account, password), fix.settings.
    sessions: dict[str, dict[str, object]] = field(default_factory=dict)
    # [fix.venues.NAME]: a shard routed to an external FIX venue (shard, host, port,
    # CompIDs, password), orders.fix_venue.
    venues: dict[str, dict[str, object]] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class StackConfig:
    shards: int = 1
    demo_rate: int = 1000
    # RDBs and HDBs per shard, all serving queries (docs/architecture.md, Failover).
    replicas: int = 1
    # Restart a component that exits, after a backoff doubling from restart_backoff_s up
    # to restart_backoff_max_s, back to the start once it stayed up restart_reset_s.
    restart: bool = True
    restart_backoff_s: float = 0.1
    restart_backoff_max_s: float = 5.0
    restart_reset_s: float = 30.0
    # A hot standby beside each venue, taking over when it dies (docs/architecture.md).
    venue_standby: bool = False
    # Active-active gateways sharing every order and ClOrdID (docs/architecture.md).
    gateways: int = 1


@dataclass(frozen=True, kw_only=True)
class CpusConfig:
    # CPU affinity of each component's process, in taskset's list syntax ("0", "0-3",
    # "0,2"); "" leaves it to the OS (tickdb/affinity.py, docs/config.md).
    tickerplant: str = ""
    rdb: str = ""
    hdb: str = ""
    gateway: str = ""
    venue: str = ""


@dataclass(frozen=True, kw_only=True)
class Config:
    data_dir: str = "./tickdb-data"
    tickerplant: TickerplantConfig = field(default_factory=TickerplantConfig)
    journal: JournalConfig = field(default_factory=JournalConfig)
    replication: ReplicationConfig = field(default_factory=ReplicationConfig)
    eod: EodConfig = field(default_factory=EodConfig)
    rdb: RdbConfig = field(default_factory=RdbConfig)
    hdb: HdbConfig = field(default_factory=HdbConfig)
    gateway: GatewayConfig = field(default_factory=GatewayConfig)
    stack: StackConfig = field(default_factory=StackConfig)
    orders: OrdersConfig = field(default_factory=OrdersConfig)
    fix: FixConfig = field(default_factory=FixConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    tls: TlsConfig = field(default_factory=TlsConfig)
    curve: CurveConfig = field(default_factory=CurveConfig)
    cpus: CpusConfig = field(default_factory=CpusConfig)
    # [risk.defaults] and [risk.accounts.NAME] (docs/risk.md), validated by orders.risk_limits.
    risk: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, TableSchema] = field(
        default_factory=lambda: {
            n: TableSchema.from_mapping(n, c) for n, c in DEFAULT_TABLES.items()
        }
    )

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)

    @property
    def journal_dir(self) -> Path:
        return self.data_path / "journal"

    @property
    def hdb_dir(self) -> Path:
        return self.data_path / "hdb"

    @property
    def intraday_dir(self) -> Path:
        return self.data_path / "intraday"

    def with_data_dir(self, data_dir: str | Path | None) -> Config:
        return self if data_dir is None else dataclasses.replace(self, data_dir=str(data_dir))


def kdb_limits(section: TickerplantConfig | GatewayConfig) -> ServerLimits:
    """The bounds of a kdb+ port from its section's ``kdb_<limit>`` settings."""
    from qipc.limits import ServerLimits

    values = {
        f.name: getattr(section, "kdb_" + f.name)
        for f in dataclasses.fields(ServerLimits)
        if hasattr(section, "kdb_" + f.name)
    }
    return ServerLimits(**values)


def _check_value(key: str, value: Any, annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin is Literal:
        allowed = typing.get_args(annotation)
        if value not in allowed:
            raise ConfigError(
                f"{key}: expected one of {', '.join(map(str, allowed))}, got {value!r}"
            )
        return value
    if origin is list:
        (item,) = typing.get_args(annotation)
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        return [_check_value(f"{key}[{i}]", v, item) for i, v in enumerate(value)]
    if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
        return _build_section(annotation, key, value)  # a nested table: [auth.identities.X]
    if origin is dict:
        _, item = typing.get_args(annotation)
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a table, got {value!r}")
        return {str(k): _check_value(f"{key}.{k}", v, item) for k, v in value.items()}
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(annotation, type) and (
        not isinstance(value, annotation) or (annotation is int and isinstance(value, bool))
    ):
        raise ConfigError(f"{key}: expected {annotation.__name__}, got {value!r}")
    return value


def _build_section(cls: type, key: str, raw: Any) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"{key}: expected a table of settings, got {raw!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for name, value in raw.items():
        if name not in known:
            raise ConfigError(f"{key}.{name}: unknown setting (known: {', '.join(sorted(known))})")
        kwargs[name] = _check_value(f"{key}.{name}", value, hints[name])
    return cls(**kwargs)


def _validate(config: Config) -> None:
    for section, names in (
        (
            "tickerplant",
            ("batch_interval_ms", "max_message_bytes", "subscriber_buffer", "heartbeat_ms"),
        ),
        ("journal", ("fsync_interval_ms",)),
        ("replication", ("lease_ttl_ms", "standby_timeout_ms")),
        ("stack", ("shards", "demo_rate", "replicas", "restart_backoff_s", "restart_reset_s")),
        ("gateway", ("scan_rows", "refresh_s", "max_query_chars", "max_nesting", "client_queries")),
    ):
        obj = getattr(config, section)
        for name in names:
            if getattr(obj, name) <= 0:
                raise ConfigError(f"{section}.{name}: must be positive")
    if config.replication.mode != "off" and not config.replication.lease_dir:
        raise ConfigError("replication.lease_dir: required when replication.mode is not off")
    if config.stack.restart_backoff_max_s < config.stack.restart_backoff_s:
        raise ConfigError("stack.restart_backoff_max_s: must not be below restart_backoff_s")
    if config.stack.gateways <= 0:
        raise ConfigError("stack.gateways: must be positive")
    for name in ("in_flight", "nice"):
        if getattr(config.gateway, name) < 0:
            raise ConfigError(f"gateway.{name}: must not be negative")
    for name in (
        "snapshot_every_inputs",
        "snapshot_every_s",
        "gateway_snapshot_every_records",
        "gateway_snapshot_every_s",
    ):
        if getattr(config.orders, name) < 0:
            raise ConfigError(f"orders.{name}: must not be negative (0: off)")
    if config.orders.snapshot_keep < 1:
        raise ConfigError("orders.snapshot_keep: at least 1")
    try:
        ZoneInfo(config.eod.timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"eod.timezone: unknown time zone {config.eod.timezone!r}") from exc
    from tickerplant.ingest_limits import MIN_REQUEST_FRAME, check_frame_cap

    try:
        check_frame_cap(
            config.tickerplant.max_message_bytes, config.tickerplant.ingest_max_frame_bytes
        )
    except ValueError as exc:
        raise ConfigError(f"tickerplant.ingest_max_frame_bytes: {exc}") from exc
    for name in ("publish_max_frame_bytes", "replay_max_frame_bytes"):
        if getattr(config.tickerplant, name) < MIN_REQUEST_FRAME:
            raise ConfigError(f"tickerplant.{name}: at least {MIN_REQUEST_FRAME} bytes")
    from tickerplant.clock import parse_roll_time

    try:
        parse_roll_time(config.eod.roll_time)
    except ValueError as exc:
        raise ConfigError(f"eod.roll_time: {exc}") from exc
    if config.orders.tick_size <= 0 or any(t <= 0 for t in config.orders.tick_sizes.values()):
        raise ConfigError("orders.tick_size, orders.tick_sizes: must be positive")
    for kdb_section in ("tickerplant", "gateway"):
        try:
            kdb_limits(getattr(config, kdb_section))
        except ValueError as exc:
            raise ConfigError(f"{kdb_section}.kdb_{exc}") from exc
    from tickdb.affinity import parse_cpus

    for component, setting in dataclasses.asdict(config.cpus).items():
        try:
            parse_cpus(setting)
        except ValueError as exc:
            raise ConfigError(f"cpus.{component}: {exc}") from exc
    for name in config.rdb.tables:
        if name not in config.tables:
            raise ConfigError(f"rdb.tables: unknown table {name!r}")
    from fix.settings import check_fix_config

    try:
        check_fix_config(config.fix, config.auth)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    try:
        check_auth_config(config.auth, tables=config.tables)
        check_tls_config(config.tls)
        check_curve_config(config.curve, config.auth)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc


_SECTIONS = {
    f.name: f for f in dataclasses.fields(Config) if f.name not in ("data_dir", "tables", "risk")
}


def config_from_dict(raw: dict[str, Any]) -> Config:
    kwargs: dict[str, Any] = {}
    hints = typing.get_type_hints(Config)
    for name, value in raw.items():
        if name == "data_dir":
            kwargs[name] = _check_value(name, value, str)
        elif name == "tables":
            if not isinstance(value, dict) or not value:
                raise ConfigError("tables: expected one or more [tables.NAME] sections")
            tables = {}
            for tname, cols in value.items():
                if not isinstance(cols, dict):
                    raise ConfigError(f'tables.{tname}: expected column = "qtype" pairs')
                try:
                    tables[tname] = TableSchema.from_mapping(tname, cols)
                except SchemaError as exc:
                    raise ConfigError(f"tables.{tname}: {exc}") from exc
            kwargs[name] = tables
        elif name == "risk":
            from orders.risk_limits import limits_from_config

            if not isinstance(value, dict):
                raise ConfigError("risk: expected [risk.defaults] and [risk.accounts.NAME] tables")
            try:
                limits_from_config(value)
            except ValueError as exc:
                raise ConfigError(str(exc)) from exc
            kwargs[name] = value
        elif name in _SECTIONS:
            section_type = hints[name]
            if isinstance(section_type, types.UnionType):  # pragma: no cover - not used
                raise ConfigError(name)
            kwargs[name] = _build_section(section_type, name, value)
        else:
            known = ", ".join(["data_dir", "tables", "risk", *_SECTIONS])
            raise ConfigError(f"{name}: unknown setting (known: {known})")
    config = Config(**kwargs)
    _validate(config)
    return config


def load_config(path: str | Path | None = None, data_dir: str | Path | None = None) -> Config:
    """Load ``path`` (or the defaults when None) and apply a ``--data-dir`` override."""
    if path is None:
        config = Config()
        _validate(config)
    else:
        try:
            raw = tomllib.loads(Path(path).read_text())
        except FileNotFoundError as exc:
            raise ConfigError(f"config file {path} does not exist") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path}: {exc}") from exc
        config = config_from_dict(raw)
    return config.with_data_dir(data_dir)
