"""``tickdb up``: a whole stack from one command.

Starts, in dependency order, the tickerplant, an HDB and an RDB per shard, the gateway and
(with ``--demo``) the synthetic feed, each as its own process, waiting for each to announce
its endpoints in a ready file. Ctrl-C (or SIGTERM, SIGHUP, or any component dying) stops
everything in reverse order. Every process logs to ``<data-dir>/logs/<name>.log``.
With ``[curve]`` on, the components read it from the config; the demo feed and strategy,
clients without a config, are given the components' keys in their environment.

Each component gets a process group of its own (a terminal's Ctrl-C reaches only ``tickdb
up``, which stops the rest in order) but stays in this session, so the kernel schedules the
stack as one group and ingest outranks queries: ``tickdb.launch`` starts them, and says why.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

from tickdb.config import Config
from tickdb.launch import Launched, launch
from tickdb.types import Shard


def _port_plus(address: str, offset: int) -> str:
    """``tcp://127.0.0.1:5020`` + 2 -> ``tcp://127.0.0.1:5022`` (port 0 stays ephemeral)."""
    head, _, port = address.rpartition(":")
    return address if port in ("0", "*") else f"{head}:{int(port) + offset}"


class Stack:
    def __init__(
        self,
        config: Config,
        config_path: Path | None,
        shards: int,
        demo: bool,
        demo_rate: int,
        ready_timeout_s: float = 60.0,
        env: dict[str, str] | None = None,
    ) -> None:
        self.config = config
        # Added to every component's environment (the demo's API token for its strategy).
        self.env = dict(env or {})
        self.config_path = config_path
        self.shards = shards
        self.demo = demo
        self.demo_rate = demo_rate
        self.ready_timeout_s = ready_timeout_s
        self.components: list[Launched] = []
        self.run_dir = config.data_path / "run"
        self.log_dir = config.data_path / "logs"

    def _common(self) -> list[str]:
        args = ["--data-dir", str(self.config.data_path)]
        if self.config_path is not None:
            args += ["--config", str(self.config_path)]
        return args

    def _start(
        self, name: str, args: list[str], ready: bool = True, env: dict[str, str] | None = None
    ) -> Launched:
        ready_file = self.run_dir / f"{name}.json" if ready else None
        component = launch(
            args,
            name=name,
            log_path=self.log_dir / f"{name}.log",
            ready_file=ready_file,
            ready_timeout_s=self.ready_timeout_s,
            env={**self.env, **(env or {})},
        )
        self.components.append(component)
        return component

    def start(self) -> None:
        cfg = self.config
        tp = self._start("tickerplant", ["tp", *self._common()])
        tp_address = str(tp.info["address"])
        hdbs, rdbs = [], []
        for k in range(self.shards):
            shard = str(Shard(k, self.shards))
            hdb = self._start(
                f"hdb-{k}",
                [
                    "hdb",
                    *self._common(),
                    "--shard",
                    shard,
                    "--address",
                    _port_plus(cfg.hdb.address, k),
                ],
            )
            hdbs.append(str(hdb.info["address"]))
        for k in range(self.shards):
            shard = str(Shard(k, self.shards))
            rdb = self._start(
                f"rdb-{k}",
                [
                    "rdb",
                    *self._common(),
                    "--tp",
                    tp_address,
                    "--shard",
                    shard,
                    "--hdb",
                    hdbs[k],
                    "--address",
                    _port_plus(cfg.rdb.address, k),
                ],
            )
            rdbs.append(str(rdb.info["address"]))
        orders = cfg.orders.enabled
        if orders:
            for k in range(self.shards):
                venue_args = ["venue", *self._common(), "--tp", tp_address]
                venue_args += ["--shard", str(Shard(k, self.shards))]
                if self.demo:
                    venue_args.append("--paper")  # the demo strategy trades on the demo quotes
                self._start(f"venue-{k}", venue_args)
        # --data-dir too: the gateway keeps its FIX sessions' sequence numbers under it.
        gateway_args = ["gateway", *self._common(), "--port", str(cfg.gateway.port)]
        if orders:
            gateway_args += ["--tp", tp_address]
        for address in rdbs:
            gateway_args += ["--rdb", address]
        for address in hdbs:
            gateway_args += ["--hdb", address]
        self._start("gateway", gateway_args)
        if self.demo:
            env = self._client_env()
            self._start(
                "feed",
                ["feed", "--demo", "--address", tp_address, "--rate", str(self.demo_rate)],
                ready=False,
                env=env,
            )
            if orders:
                strategy = ["strategy", "--demo", "--url", self.gateway_url()]
                self._start("strategy", strategy, ready=False, env=env)

    def _client_env(self) -> dict[str, str] | None:
        """What a client without a config connects with: the components' own keys."""
        curve = self.config.curve
        if curve.mode == "off":
            return None
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
        """The gateway's HTTP address (empty before it is up)."""
        urls = [str(c.info.get("url", "")) for c in self.components if c.name == "gateway"]
        return urls[0] if urls else ""

    def wait(self) -> str:
        """Block until Ctrl-C, SIGTERM, SIGHUP or a component exits; returns why."""
        stop = {"why": ""}

        def on_signal(signum: int, _frame: object) -> None:
            stop["why"] = signal.Signals(signum).name

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        # A closed terminal: the components share its session, so stop them as for Ctrl-C.
        signal.signal(signal.SIGHUP, on_signal)
        while not stop["why"]:
            for c in self.components:
                if c.popen.poll() is not None:
                    return f"{c.name} exited with code {c.popen.returncode} (see {c.log_path})"
            time.sleep(0.2)
        return stop["why"]

    def stop(self, timeout_s: float = 15.0) -> None:
        for c in reversed(self.components):
            c.stop(grace_s=timeout_s)
