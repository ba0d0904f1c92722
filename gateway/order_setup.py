"""Assemble the gateway's order path from the config: risk engine, router, stream."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from gateway.order_port import OrderPort
from gateway.order_router import OrderRouter
from gateway.order_snapshot import snapshots_for
from gateway.order_stream import ORDER_FLOW, OrderStream
from orders.risk import risk_engine
from orders.rows import warm_up
from orders.snapshot import SnapshotSettings
from tickdb import curve_links
from tickdb.audit import AuditLog
from tickdb.auth import Authorizer
from tickdb.gc_pauses import keep_pauses_short
from tickerplant.publisher import Publisher

log = logging.getLogger(__name__)
PROGRESS_EVERY_S = 10.0  # how often a long rebuild says where it is


@dataclass
class OrderPath:
    router: OrderRouter
    stream: OrderStream
    publisher: Publisher
    port: OrderPort | None = None
    fix: Any = None  # gateway.fix_acceptor.FixAcceptor when [fix] is enabled
    snapshotter: Any = None  # gateway.order_snapshotter.Snapshotter when snapshots are on

    @property
    def port_endpoint(self) -> str | None:
        return self.port.endpoint if self.port is not None else None

    def close(self) -> None:
        if self.fix is not None:
            self.fix.close()
        if self.port is not None:
            self.port.close()
        self.stream.close()
        if self.snapshotter is not None:
            self.snapshotter.stop()
        self.publisher.close(flush=False)


def start_fix(
    cfg: Any,
    router: OrderRouter,
    fix_port: int | None,
    authorizer: Authorizer | None = None,
    audit: AuditLog | None = None,
) -> Any:
    """The FIX acceptor (docs/fix.md) when enabled in config or given a port; else None.
    With ``[auth]`` on, its logons are checked by ``authorizer`` and recorded in ``audit``."""
    if fix_port is None and not cfg.fix.enabled:
        return None
    from fix.settings import acceptor_sessions
    from gateway.fix_acceptor import FixAcceptor
    from tickdb.tls import port_tls

    fix = cfg.fix
    tls = port_tls(cfg.tls, "fix")
    return FixAcceptor(
        router,
        acceptor_sessions(cfg),
        host=fix.host,
        port=fix.port if fix_port is None else fix_port,
        max_message_bytes=fix.max_message_bytes,
        max_connections=fix.max_connections,
        logon_timeout_s=fix.logon_timeout_s,
        authorizer=authorizer,
        audit=audit,
        tls=tls.context if tls is not None else None,
    ).start()


def start_order_path(
    cfg: Any,
    tp_address: str,
    port_address: str | None = None,
    stall_timeout_s: float = 120.0,
    fix_port: int | None = None,
    authorizer: Authorizer | None = None,
    audit: AuditLog | None = None,
) -> OrderPath:
    """Connect to the tickerplant, rebuild the order state from its journal, and return
    once the router takes requests; give up if the rebuild makes no progress for
    ``stall_timeout_s``."""
    publisher = Publisher(tp_address)
    missing = sorted(set(ORDER_FLOW) - set(publisher.schemas))
    if missing:
        publisher.close(flush=False)
        raise RuntimeError(f"the tickerplant has no {', '.join(missing)} table: orders are off")
    router = OrderRouter(risk_engine(cfg), publisher, submit_timeout_s=cfg.orders.submit_timeout_s)
    snapshot_settings = SnapshotSettings.for_gateway(cfg)
    snapshots = None if snapshot_settings is None else snapshots_for(snapshot_settings, router.risk)
    stream = OrderStream(router, tp_address, snapshots=snapshots).start()
    if not _rebuilt(stream, stall_timeout_s):
        raise RuntimeError(
            f"the order path's rebuild made no progress for {stall_timeout_s:g}s "
            f"(at seq {stream.last_seq} of the journal)"
        )
    # Once rebuilt (it restores the newest snapshot too, and the rebuild had the CPU).
    from gateway.order_snapshotter import launch

    snapshotter = launch(cfg, tp_address)
    warm_up()  # one-time costs now, not on the first orders
    # The day's orders stay in memory: full collections must not visit them all each time.
    keep_pauses_short()
    address = cfg.gateway.order_port if port_address is None else port_address
    # Its own clients (Orders) prove who they are with CURVE when [curve] is on.
    curve = curve_links.for_config(cfg)
    port = OrderPort(router, address, stream, curve).start() if address else None
    fix = start_fix(cfg, router, fix_port, authorizer, audit)
    return OrderPath(router, stream, publisher, port, fix, snapshotter)


def _rebuilt(stream: OrderStream, stall_timeout_s: float) -> bool:
    """Wait for the stream's rebuild as long as it advances. A long day takes long to
    replay: giving up at a fixed time would only start it over in a supervised restart,
    and the next one, later in the day, would have longer to go."""
    last, moved, told = stream.last_seq, time.monotonic(), time.monotonic()
    while not stream.wait_ready(1.0):
        now = time.monotonic()
        if stream.last_seq != last:
            last, moved = stream.last_seq, now
        elif now - moved > stall_timeout_s:
            return False
        if now - told >= PROGRESS_EVERY_S:
            log.info("order path: rebuilding the day's orders, at seq %d", last)
            told = now
    return True
