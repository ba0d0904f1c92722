"""``tickdb up``: a whole stack from one command.

Starts, in dependency order, the tickerplant, the HDBs and RDBs of each shard
(``stack.replicas`` of each, all serving queries), the venues, the gateway (or
``stack.gateways`` active-active ones, each on the configured ports ``+ i``) and (with
``--demo``) the synthetic feed, each as its own process, waiting for each to announce its
endpoints in a ready file. Then it supervises them (``tickdb.supervise``): a component that
exits is started again after a backoff, on the addresses it bound first. Ctrl-C (or
SIGTERM, SIGHUP) stops everything in reverse order. Every process logs to
``<data-dir>/logs/<name>.log``.
With ``[curve]`` on, the components read it from the config; the demo feed and strategy,
clients without a config, are given the components' keys in their environment.

Each component gets a process group of its own (a terminal's Ctrl-C reaches only ``tickdb
up``, which stops the rest in order) but stays in this session, so the kernel schedules the
stack as one group and ingest outranks queries: ``tickdb.launch`` starts them, and says why.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from pathlib import Path

from tickdb.config import Config
from tickdb.launch import Launched, launch
from tickdb.stack_status import status_path
from tickdb.supervise import RestartPolicy, Supervised, Supervisor
from tickdb.types import Shard

_ADDRESS = ("--address", "address")  # restarts bind the address the first run bound
# A gateway's other ports, which clients given several gateways come back to after a restart.
_GATEWAY_PORTS = (
    ("--kdb-port", "kdb_port"),
    ("--order-port", "order_port"),
    ("--fix-port", "fix_port"),
)
_CHECK_S = 0.05  # how often the supervisor looks at its components
_TP_LEASE = "tickerplant.lease"  # the pair's lease file (``tickerplant.standby.KEY``)


def _port_plus(address: str, offset: int) -> str:
    """``tcp://127.0.0.1:5020`` + 2 -> ``tcp://127.0.0.1:5022`` (port 0 stays ephemeral)."""
    head, _, port = address.rpartition(":")
    return address if port in ("0", "*") else f"{head}:{int(port) + offset}"


def replica_name(kind: str, shard: int, replica: int) -> str:
    """``rdb-0`` for replica 0 of shard 0 (a stack without replicas), ``rdb-0-r1`` next."""
    return f"{kind}-{shard}" if replica == 0 else f"{kind}-{shard}-r{replica}"


def gateway_name(i: int) -> str:
    """``gateway`` for the first (a stack with one), ``gateway-1`` for the next."""
    return "gateway" if i == 0 else f"gateway-{i}"


class Stack:
    def __init__(
        self,
        config: Config,
        config_path: Path | None,
        shards: int,
        demo: bool,
        demo_rate: int,
        ready_timeout_s: float = 60.0,
        replicas: int | None = None,
        env: dict[str, str] | None = None,
        venue_standby: bool = False,
        gateways: int = 1,
        tp_standby: bool = False,
    ) -> None:
        self.config = config
        # Added to every component's environment (the demo's API token for its strategy),
        # and per component name (the CURVE keys of the demo's clients).
        self.env = dict(env or {})
        self.client_env: dict[str, dict[str, str]] = {}
        self.config_path = config_path
        self.shards = shards
        self.replicas = replicas or config.stack.replicas
        self.venue_standby = venue_standby
        self.gateways = gateways
        self.tp_standby = tp_standby
        self.demo = demo
        self.demo_rate = demo_rate
        self.ready_timeout_s = ready_timeout_s
        self.run_dir = config.data_path / "run"
        self.tp_address = ""  # the tickerplant's (a pair: both nodes', comma-separated)
        self.log_dir = config.data_path / "logs"
        self.supervisor = Supervisor(
            RestartPolicy.of(config.stack), self._relaunch, status_path(config.data_path)
        )
        self._stop = threading.Event()

    @property
    def components(self) -> list[Launched]:
        """Every component's current process."""
        return [c.launched for c in self.supervisor.components]

    def _common(self) -> list[str]:
        args = ["--data-dir", str(self.config.data_path)]
        if self.config_path is not None:
            args += ["--config", str(self.config_path)]
        return args

    def _launch(self, name: str, args: list[str], ready: bool, wait: bool) -> Launched:
        return launch(
            args,
            name=name,
            log_path=self.log_dir / f"{name}.log",
            ready_file=self.run_dir / f"{name}.json" if ready else None,
            ready_timeout_s=self.ready_timeout_s,
            wait=wait,
            env={**self.env, **self.client_env.get(name, {})},
        )

    def _start(
        self,
        name: str,
        args: list[str],
        *,
        role: str = "primary",
        ready: bool = True,
        pin: tuple[str, str] | None = _ADDRESS,
        also_pin: tuple[tuple[str, str], ...] = (),
        lease: Path | None = None,
    ) -> Launched:
        launched = self._launch(name, args, ready, wait=True)
        self.supervisor.add(
            Supervised(name, role, args, launched, pin=pin, also_pin=also_pin, lease=lease)
        )
        return launched

    def _relaunch(self, component: Supervised) -> Launched:
        ready = component.launched.ready_file is not None
        return self._launch(component.name, component.restart_args(), ready, wait=False)

    def start(self) -> None:
        cfg = self.config
        if self.tp_standby:
            tp_address = self._start_tp_pair()
        else:
            tp = self._start("tickerplant", ["tp", *self._common()])
            tp_address = str(tp.info["address"])
        self.tp_address = tp_address
        hdbs: list[list[str]] = []  # per shard, its replicas' addresses
        rdbs: list[list[str]] = []
        for k in range(self.shards):
            shard = str(Shard(k, self.shards))
            hdbs.append([])
            for r in range(self.replicas):
                address = _port_plus(cfg.hdb.address, k + r * self.shards)
                args = ["hdb", *self._common(), "--shard", shard, "--address", address]
                hdb = self._start(replica_name("hdb", k, r), args, role="replica")
                hdbs[k].append(str(hdb.info["address"]))
        for k in range(self.shards):
            shard = str(Shard(k, self.shards))
            rdbs.append([])
            for r in range(self.replicas):
                args = ["rdb", *self._common(), "--tp", tp_address, "--shard", shard]
                for address in hdbs[k]:  # each replica hands its days to every HDB replica
                    args += ["--hdb", address]
                args += ["--address", _port_plus(cfg.rdb.address, k + r * self.shards)]
                if r:
                    args += ["--replica", str(r)]
                rdb = self._start(replica_name("rdb", k, r), args, role="replica")
                rdbs[k].append(str(rdb.info["address"]))
        orders = cfg.orders.enabled
        if orders:
            for k in range(self.shards):
                venue_args = ["venue", *self._common(), "--tp", tp_address]
                venue_args += ["--shard", str(Shard(k, self.shards))]
                if self.demo:
                    venue_args.append("--paper")  # the demo strategy trades on the demo quotes
                if not self.venue_standby:
                    self._start(f"venue-{k}", venue_args, pin=None)
                    continue
                # A pair: whichever holds the lease publishes, the other takes over (a
                # restarted one finds the lease held and waits as the standby).
                lease = self.run_dir / f"venue-{k}-of-{self.shards}.lease"
                self._start(f"venue-{k}", [*venue_args, "--lease"], pin=None, lease=lease)
                standby = [*venue_args, "--standby"]
                self._start(f"venue-{k}-s", standby, role="standby", pin=None, lease=lease)
        # --data-dir too: the gateway keeps its FIX sessions' sequence numbers under it.
        gateway_args = ["gateway", *self._common()]
        if orders:
            gateway_args += ["--tp", tp_address]
        for addresses in rdbs:  # one backend per shard, its replicas comma-separated
            gateway_args += ["--rdb", ",".join(addresses)]
        for addresses in hdbs:
            gateway_args += ["--hdb", ",".join(addresses)]
        for i in range(self.gateways):
            self._start(
                gateway_name(i),
                [*gateway_args, *self._gateway_ports(i)],
                role="active" if self.gateways > 1 else "primary",
                pin=("--port", "port"),
                also_pin=_GATEWAY_PORTS,
            )
        if self.demo:
            # Clients without a config: given the components' keys (a restart too).
            keys = self._client_env()
            self.client_env.update(feed=keys, strategy=keys)
            feed_args = ["feed", "--demo", "--address", tp_address, "--rate", str(self.demo_rate)]
            self._start("feed", feed_args, role="client", ready=False, pin=None)
            if orders:
                strategy_args = ["strategy", "--demo", "--url", self.gateway_url()]
                self._start("strategy", strategy_args, role="client", ready=False, pin=None)

    def _gateway_ports(self, i: int) -> list[str]:
        """Gateway ``i``'s own ports: the config's, each ``+ i`` (0 stays any free port),
        and a FIX store of its own (two acceptors must not share a session's files)."""
        gw = self.config.gateway
        args = ["--port", str(gw.port + i if gw.port else 0)]
        if i == 0:
            return args
        args += ["--kdb-port", str(gw.kdb_port + i if gw.kdb_port else 0)]
        if gw.order_port:
            args += ["--order-port", _port_plus(gw.order_port, i)]
        fix = self.config.fix
        if fix.enabled:
            from fix.settings import store_dir

            args += ["--fix-port", str(fix.port + i if fix.port else 0)]
            args += ["--fix-store-dir", str(store_dir(self.config) / gateway_name(i))]
        return args

    def _start_tp_pair(self) -> str:
        """A tickerplant pair (docs/architecture.md, A tickerplant standby): the second node
        under ``<data>/tp-standby``, its ports 100 above; clients are given both addresses."""
        cfg = self.config
        if cfg.tickerplant.address.endswith(":0"):
            raise ValueError("--tp-standby: tickerplant.address needs a fixed port")
        mode = cfg.replication.mode if cfg.replication.mode != "off" else "sync"
        lease = cfg.replication.lease_dir or str(self.run_dir / "tp-lease")
        pair = ["--replication", mode, "--lease-dir", lease]
        held = Path(lease) / _TP_LEASE  # which node is the primary now
        self._start("tickerplant", ["tp", *self._common(), *pair], pin=None, lease=held)
        config = ["--config", str(self.config_path)] if self.config_path is not None else []
        standby_args = ["tp", "--data-dir", str(cfg.data_path / "tp-standby"), *config, *pair]
        self._start(
            "tickerplant-s",
            [*standby_args, "--port-offset", "100"],
            role="standby",
            pin=None,
            lease=held,
        )
        return ",".join([cfg.tickerplant.address, _port_plus(cfg.tickerplant.address, 100)])

    def _client_env(self) -> dict[str, str]:
        """What a client without a config connects with: the components' own keys."""
        curve = self.config.curve
        if curve.mode == "off":
            return {}
        from tickdb.curve import load_pair
        from tickdb.curve_links import ENV_KEY, ENV_SERVER_KEY

        return {ENV_KEY: curve.client_key, ENV_SERVER_KEY: load_pair(curve.server_key).public}

    def endpoints(self) -> list[tuple[str, str]]:
        rows = []
        for c in self.components:
            where = c.info.get("url") or c.info.get("address") or c.info.get("endpoint") or ""
            extra = c.info.get("kdb_port")
            if extra:
                where = f"{where}  (kdb+ port {extra})"
            rows.append((c.name, str(where) or f"pid {c.popen.pid}"))
        return rows

    def gateway_url(self) -> str:
        """The (first) gateway's HTTP address (empty before it is up)."""
        urls = self.gateway_urls()
        return urls[0] if urls else ""

    def gateway_urls(self) -> list[str]:
        """Every gateway's HTTP address, the first one first (``--gateways``)."""
        names = {gateway_name(i) for i in range(self.gateways)}
        return [str(c.info.get("url", "")) for c in self.components if c.name in names]

    def wait(self, on_event: Callable[[str], None] = lambda event: None) -> str:
        """Supervise until Ctrl-C, SIGTERM or SIGHUP (or, with ``stack.restart`` off, until a
        component exits); returns why. ``on_event`` hears each restart."""
        stop = {"why": ""}

        def on_signal(signum: int, _frame: object) -> None:
            stop["why"] = signal.Signals(signum).name
            self._stop.set()

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        # A closed terminal: the components share its session, so stop them as for Ctrl-C.
        signal.signal(signal.SIGHUP, on_signal)
        while not self._stop.wait(_CHECK_S):
            for event in self.supervisor.check():
                if event.startswith("stop: "):
                    return event.removeprefix("stop: ")
                on_event(event)
        return stop["why"]

    def stop(self, timeout_s: float = 15.0) -> None:
        for c in reversed(self.components):
            c.stop(grace_s=timeout_s)
