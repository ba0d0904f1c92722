"""A tickerplant, two RDB and two HDB replicas of one (unsharded) backend each, and a
gateway over them; every replica on a fixed port, so a killed one comes back on the same
address. Yesterday (rolled, in the HDBs) and today (in the RDBs) both hold rows, so a
count over ``trade`` asks an RDB replica and an HDB replica.
"""

from __future__ import annotations

import functools
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway.client import Client, GatewayError
from queries.service import QueryClient, QueryError
from support.harness import Proc, free_port, wait_until
from support.rdb_stack import Stack, publish_trades, roll
from tickdb.launch import Launched, launch

DAY_ROWS = 3_000  # rows of the rolled day, in the HDBs
TODAY_ROWS = 2_000  # rows of today, in the RDBs
COUNT_SQL = "SELECT count(*) AS n FROM trade"


class ReplicaStack:
    def __init__(self, tmp: Path, procs: list[Proc], replicas: int = 2) -> None:
        self.tmp = tmp
        self.base = Stack(tmp, procs)
        self.procs = procs
        self.rdb_addresses = [f"tcp://127.0.0.1:{free_port()}" for _ in range(replicas)]
        self.hdb_addresses = [f"tcp://127.0.0.1:{free_port()}" for _ in range(replicas)]
        self.hdbs: list[Proc | Launched] = [self.start_hdb(r) for r in range(replicas)]
        self.rdbs: list[Proc | Launched] = [self.start_rdb(r) for r in range(replicas)]
        self.rows = 0  # every row published (journaled)
        self.today = 0  # of which today's, held by the RDBs
        self.held: list[Launched] = []
        self.publish(DAY_ROWS)
        self.wait_rdbs(lambda r: self.rdb_rows(r) == DAY_ROWS, "the day")
        roll(self.base.address)
        self.today = 0
        # Written, every HDB reloaded, and only then dropped from the RDB.
        self.wait_rdbs(lambda r: len(self.rdb_info(r)["dates"]) == 1, "handed the day over")
        self.publish(TODAY_ROWS)
        self.wait_rdbs(lambda r: self.rdb_rows(r) == self.today, "today")
        args = ["gateway", "--port", "0", "--refresh", "0.2", "--timeout", "10"]
        args += ["--rdb", ",".join(self.rdb_addresses), "--hdb", ",".join(self.hdb_addresses)]
        self.gateway = Proc(args, tmp, "gateway")
        procs.append(self.gateway)
        self.url = str(self.gateway.info["url"])
        self.client = Client(self.url, timeout_s=30)  # closed by close()
        wait_until(lambda: self.serving() == 2 * replicas, 30, "every replica serving")

    # -- processes -------------------------------------------------------------------------

    def start_hdb(self, replica: int) -> Proc:
        args = ["hdb", "--config", str(self.base.config), "--data-dir", str(self.base.data)]
        args += ["--shard", "all", "--address", self.hdb_addresses[replica]]
        proc = Proc(args, self.tmp, f"hdb-r{replica}")
        self.procs.append(proc)
        return proc

    def rdb_args(self, replica: int) -> list[str]:
        args = ["rdb", "--config", str(self.base.config), "--data-dir", str(self.base.data)]
        args += ["--tp", self.base.address, "--replica", str(replica)]
        args += ["--address", self.rdb_addresses[replica]]
        for address in self.hdb_addresses:
            args += ["--hdb", address]
        return args

    def start_rdb(self, replica: int) -> Proc:
        proc = Proc(self.rdb_args(replica), self.tmp, f"rdb-r{replica}")
        self.procs.append(proc)
        return proc

    def start_rdb_held(self, replica: int, release: Path) -> Launched:
        """Replica ``replica`` restarted and held before it applies its backlog until
        ``release`` exists (``tickdb.failpoints``): it answers INFO, not yet current."""
        held = launch(
            self.rdb_args(replica),
            name=f"rdb-r{replica}-held",
            log_path=self.tmp / f"rdb-r{replica}-held.log",
            env={"TICKDB_HOLD_RDB_REPLAY": str(release)},
        )
        self.rdbs[replica] = held
        self.held.append(held)
        return held

    def wait_rdbs(self, condition: Callable[[int], bool], what: str) -> None:
        for r in range(len(self.rdb_addresses)):
            wait_until(functools.partial(condition, r), 30, f"rdb replica {r}: {what}")

    def publish(self, rows: int) -> None:
        publish_trades(self.base.address, self.rows, rows)
        self.rows += rows
        self.today += rows

    def close(self) -> None:
        self.client.close()
        for held in self.held:
            held.stop()
        for proc in reversed(self.procs):
            proc.stop()

    # -- what the backends and the gateway say --------------------------------------------

    def rdb_info(self, replica: int) -> dict[str, Any]:
        with QueryClient(self.rdb_addresses[replica], timeout_s=5) as c:
            return c.info()

    def rdb_rows(self, replica: int) -> int:
        with QueryClient(self.rdb_addresses[replica], timeout_s=5) as c:
            return int(c.query("SELECT count(*) FROM trade").table.column(0)[0].as_py())

    def replicas(self) -> dict[str, dict[str, Any]]:
        """Every replica's entry in the gateway's /health, by name."""
        health = self.client.health()
        return {r["name"]: r for b in health["backends"] for r in b["replicas"]}

    def replica(self, role: str, index: int) -> dict[str, Any]:
        addresses = self.rdb_addresses if role == "rdb" else self.hdb_addresses
        return self.replicas()[f"{role}:{addresses[index]}"]

    def serving(self) -> int:
        return sum(r["up"] and r["current"] for r in self.replicas().values())

    def count(self) -> int:
        return int(self.client.query(COUNT_SQL).column("n")[0].as_py())


def freeze(proc: Proc | Launched) -> None:
    """SIGSTOP: the process keeps its connections and answers nothing (a query sent to it
    stays in flight until it is killed)."""
    os.killpg(proc.popen.pid, signal.SIGSTOP)


def kill(proc: Proc | Launched) -> None:
    """SIGKILL, as a crash."""
    if isinstance(proc, Proc):
        proc.kill9()
    else:
        proc.kill()


class Load:
    """Clients querying the gateway in a loop; every answer and error is kept."""

    def __init__(self, stack: ReplicaStack, clients: int = 4) -> None:
        self.stack = stack
        self.answers: list[int] = []
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]

    def _run(self) -> None:
        with Client(self.stack.url, timeout_s=30) as client:
            while not self._stop.is_set():
                try:
                    n = int(client.query(COUNT_SQL).column("n")[0].as_py())
                except (GatewayError, QueryError) as exc:
                    with self._lock:
                        self.errors.append(exc)
                    continue
                with self._lock:
                    self.answers.append(n)

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def answered(self) -> int:
        with self._lock:
            return len(self.answers)

    def wait_more(self, more: int, timeout: float = 30) -> None:
        target = self.answered() + more
        wait_until(lambda: self.answered() >= target or self.errors, timeout, f"{more} answers")
