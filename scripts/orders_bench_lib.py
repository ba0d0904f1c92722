"""The stack, the orders and the counting shared by the order benchmarks
(``bench_orders.py``): real processes on loopback, started as ``tickdb up`` starts them."""

from __future__ import annotations

import dataclasses
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_layout import Layout, layout_config  # noqa: E402
from proc_cpu import cpu_ns  # noqa: E402

from gateway.client import Client  # noqa: E402
from gateway.order_client import OrderRejected  # noqa: E402
from tickdb.config import GatewayConfig  # noqa: E402
from tickdb.launch import Launched, launch  # noqa: E402
from tickerplant.publisher import Publisher  # noqa: E402
from tickerplant.subscriber import Subscriber, Update  # noqa: E402

ACCOUNTS = [f"A{i}" for i in range(10)]
SYMS = [f"S{i:03d}" for i in range(100)]
REFERENCE = 15.0
PAYLOAD = 200  # bytes of the raw baseline's message, about one order's JSON
CONFIG = """
[tickerplant]
address = "tcp://127.0.0.1:0"
publish_address = "tcp://127.0.0.1:0"
replay_address = "tcp://127.0.0.1:0"
kdb_port = 0

[journal]
fsync = "interval"

[risk.defaults]
max_messages_per_s = 0
duplicate_window_s = 0
max_open_orders = 0
max_open_orders_per_sym = 0
price_collar_pct = 50
"""


# -- processes -------------------------------------------------------------------------------
def start(args: Sequence[str], workdir: Path, name: str) -> Launched:
    """``python -m tickdb.cli ARGS --ready-file F``; returns once it wrote its endpoints."""
    return launch(
        args,
        name=name,
        log_path=workdir / f"{name}.log",
        ready_file=workdir / f"{name}.ready.json",
        env={"PYTHONUNBUFFERED": "1"},
        cwd=ROOT,
    )


@dataclass
class Stack:
    workdir: Path
    tp: Launched
    venues: list[Launched] = field(default_factory=list)
    gateway: Launched | None = None

    @property
    def tp_address(self) -> str:
        return str(self.tp.info["address"])

    @property
    def url(self) -> str:
        assert self.gateway is not None
        return str(self.gateway.info["url"])

    @property
    def port_address(self) -> str:
        """The gateway's order port (``tickdb.Orders``)."""
        assert self.gateway is not None
        return str(self.gateway.info["order_port"])

    def cpu_ns(self) -> dict[str, int]:
        """CPU time each component has used so far, all its threads (ns): the gateway, the
        venues together, the tickerplant."""
        assert self.gateway is not None
        return {
            "gateway": cpu_ns(self.gateway.pid),
            "venues": sum(cpu_ns(v.pid) for v in self.venues),
            "tp": cpu_ns(self.tp.pid),
        }

    def stop(self) -> None:
        for proc in [self.gateway, *self.venues, self.tp]:
            if proc is not None:
                proc.stop()


def start_stack(workdir: Path, shards: int, layout: Layout | None = None) -> Stack:
    config = workdir / "stack.toml"
    text = CONFIG + layout_config(layout or {})
    if "order_port" in {f.name for f in dataclasses.fields(GatewayConfig)}:
        text += '\n[gateway]\norder_port = "tcp://127.0.0.1:0"\n'  # a free port
    config.write_text(text)
    cfg = ["--config", str(config)]
    tp = start(["tp", *cfg, "--data-dir", str(workdir / "data")], workdir, "tp")
    stack = Stack(workdir, tp)
    try:
        for k in range(shards):
            venue = ["venue", *cfg, "--tp", stack.tp_address, "--shard", f"{k}/{shards}"]
            stack.venues.append(start(venue, workdir, f"venue-{k}"))
        gateway = ["gateway", *cfg, "--tp", stack.tp_address, "--port", "0", "--kdb-port", "0"]
        stack.gateway = start(gateway, workdir, "gateway")
        set_reference_prices(stack)
    except Exception:
        stack.stop()
        raise
    return stack


def set_reference_prices(stack: Stack) -> None:
    """A trade in every sym, then wait until the gateway's collar uses it."""
    publisher = Publisher(stack.tp_address)
    publisher.publish(
        "trade", {"sym": SYMS, "price": [REFERENCE] * len(SYMS), "size": [1] * len(SYMS)}
    )
    publisher.close()
    client = Client(stack.url, timeout_s=30)
    deadline = time.monotonic() + 30
    for n in range(10**6):
        try:  # 1.00 is 93% from the reference: refused once the gateway knows it
            client.submit("A0", SYMS[-1], "buy", 1, 1.0, clordid=f"probe{n}")
        except OrderRejected as exc:
            if exc.code == "price_collar":
                break
        if time.monotonic() > deadline:
            raise RuntimeError("the gateway never received the reference prices")
        time.sleep(0.05)
    client.close()


# -- the orders ------------------------------------------------------------------------------
def order_for(seq: int) -> tuple[str, str, str, int, float]:
    """Account, sym, side, qty, price of the ``seq``-th order: never crosses."""
    account = ACCOUNTS[seq % len(ACCOUNTS)]
    sym = SYMS[(seq * 7 + seq // len(ACCOUNTS)) % len(SYMS)]
    side = "buy" if seq % 2 else "sell"
    base = 10.0 if side == "buy" else 20.0
    return account, sym, side, 1 + seq % 10, round(base + (seq % 50) / 100, 2)


# -- the order table, counted ------------------------------------------------------------------
class EventCounter:
    """Counts ``order`` rows of one event kind (optionally one account), in a thread."""

    def __init__(self, tp_address: str, event: str, account: str | None = None) -> None:
        self.event = event
        self.account = account
        self.count = 0
        self.last_mono_ns = 0
        self.last_stamp_ns = 0  # the tickerplant's ``time`` of the latest matching row
        self._target = 0
        self._done = threading.Event()
        self._stop = threading.Event()
        accounts = [account] if account else None
        self._sub = Subscriber(tp_address, tables=["order"], accounts=accounts)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            message = self._sub.poll(0.05)
            if not isinstance(message, Update):
                continue
            data: pa.Table = message.data
            mask = pc.equal(data["event"], self.event)
            if self.account:
                mask = pc.and_(mask, pc.equal(data["account"], self.account))
            hits = data.filter(mask)
            if hits.num_rows == 0:
                continue
            self.count += hits.num_rows
            self.last_mono_ns = time.monotonic_ns()
            stamp = pc.max(hits["time"].cast(pa.int64())).as_py()
            self.last_stamp_ns = max(self.last_stamp_ns, stamp)
            if self._target and self.count >= self._target:
                self._done.set()

    def wait_for(self, n: int, timeout_s: float) -> bool:
        self._target = n
        if self.count >= n:
            return True
        return self._done.wait(timeout_s) or self.count >= n

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sub.close()
