"""How the FIX venue adapter (``orders.fix_venue``) maps tickdb's orders to FIX and back,
what it reads back at start, and its ``[fix.venues.NAME]`` settings."""

from __future__ import annotations

import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from fix.codec import decode
from fix.session_types import SessionSettings
from orders.model import (
    Event,
    EventType,
    NewOrder,
    OrdStatus,
    OrdType,
    RequestType,
    Side,
    TimeInForce,
)
from orders.rows import event_from_row
from tickerplant.subscriber import Subscriber, Update

SIDE = {Side.BUY: "1", Side.SELL: "2"}
ORD_TYPE = {OrdType.MARKET: "1", OrdType.LIMIT: "2"}
TIF = {TimeInForce.DAY: "0", TimeInForce.GTC: "1", TimeInForce.IOC: "3", TimeInForce.FOK: "4"}
STATUS = {
    "0": OrdStatus.NEW,
    "1": OrdStatus.PARTIALLY_FILLED,
    "2": OrdStatus.FILLED,
    "4": OrdStatus.CANCELED,
    "5": OrdStatus.REPLACED,
    "6": OrdStatus.PENDING_CANCEL,
    "8": OrdStatus.REJECTED,
    "A": OrdStatus.PENDING_NEW,
    "C": OrdStatus.EXPIRED,
    "E": OrdStatus.PENDING_REPLACE,
}
# ExecType (150) -> the event it is; others (pending, status, restated) publish nothing.
EXEC_EVENT = {
    "0": EventType.ACCEPTED,
    "F": EventType.FILL,
    "4": EventType.CANCELED,
    "5": EventType.REPLACED,
    "8": EventType.REJECTED,
    "C": EventType.EXPIRED,
}
CXL_REJ_REASON = {"0": "too_late", "1": "unknown_order", "6": "duplicate_clordid"}


@dataclass(frozen=True, kw_only=True)
class FixVenueSettings:
    shard: int
    host: str
    port: int
    session: SessionSettings
    reconnect_s: float = 1.0
    tls: ssl.SSLContext | None = None  # TLS to the venue ([fix.venues.NAME] tls = true)


@dataclass
class VenueOrder:
    account: str
    sym: str
    clordid: str  # the order's current ClOrdID in tickdb
    side: Side
    qty: int
    ord_type: OrdType
    price: float | None
    tif: TimeInForce
    strategy: str
    order_id: str = ""
    status: OrdStatus = OrdStatus.PENDING_NEW
    cum_qty: int = 0
    avg_px: float = 0.0
    ext: str = ""  # its current ClOrdID at the counterparty


@dataclass
class SentRequest:
    kind: RequestType
    seq: int
    order: VenueOrder | None
    clordid: str = ""
    orig_clordid: str = ""
    req: Any = None


def ext_clordid(account: str, clordid: str, seq: int) -> str:
    return f"{account}:{clordid}:{seq}"


def order_event(
    order: VenueOrder,
    event: EventType,
    clordid: str,
    orig: str,
    reason: str,
    text: str,
    last_qty: int = 0,
    last_px: float = 0.0,
    exec_id: str = "",
) -> Event:
    return Event(
        event=event,
        order_id=order.order_id,
        account=order.account,
        sym=order.sym,
        clordid=clordid,
        side=order.side,
        status=order.status,
        qty=order.qty,
        price=order.price,
        cum_qty=order.cum_qty,
        leaves_qty=max(0, order.qty - order.cum_qty) if order.status in _WORKING else 0,
        avg_px=order.avg_px,
        ord_type=order.ord_type,
        tif=order.tif,
        strategy=order.strategy,
        orig_clordid=orig,
        last_qty=last_qty,
        last_px=last_px,
        exec_id=exec_id,
        reason=reason,
        text=text,
    )


_WORKING = frozenset(
    {
        OrdStatus.NEW,
        OrdStatus.PARTIALLY_FILLED,
        OrdStatus.REPLACED,
        OrdStatus.PENDING_CANCEL,
        OrdStatus.PENDING_REPLACE,
        OrdStatus.PENDING_NEW,
    }
)


def refused_new(req: NewOrder) -> Event:
    return Event(
        event=EventType.REJECTED,
        order_id="",
        account=req.account,
        sym=req.sym,
        clordid=req.clordid,
        side=req.side,
        status=OrdStatus.REJECTED,
        qty=req.qty,
        price=req.price,
        cum_qty=0,
        leaves_qty=0,
        avg_px=0.0,
        ord_type=req.ord_type,
        tif=req.tif,
        strategy=req.strategy,
        reason="duplicate_clordid",
    )


def venue_settings(cfg: Any, shard: int) -> FixVenueSettings | None:
    """The ``[fix.venues.NAME]`` entry routing ``shard`` over FIX, if any."""
    from fix.settings import store_dir, venue_tls

    for name, raw in cfg.fix.venues.items():
        if int(raw["shard"]) != shard:
            continue
        session = SessionSettings(
            name=name,
            sender_comp_id=raw["sender_comp_id"],
            target_comp_id=raw["target_comp_id"],
            password=str(raw.get("password", "")),
            username=str(raw.get("username", "")),
            heartbeat_s=int(raw.get("heartbeat_s", 30)),
            store_dir=Path(store_dir(cfg)) / "venues",
            max_latency_s=cfg.fix.max_latency_s,
            logon_timeout_s=cfg.fix.logon_timeout_s,
        )
        return FixVenueSettings(
            shard=shard,
            host=str(raw["host"]),
            port=int(raw["port"]),
            session=session,
            reconnect_s=float(raw.get("reconnect_s", 1.0)),
            tls=venue_tls(f"fix.venues.{name}", raw),
        )
    return None


def read_journal(
    tp_address: str, label: str, timeout_s: float, exec_ids: set[str], answered: set[int]
) -> list[Event]:
    """The venue's journaled events in order; fills ``exec_ids`` and ``answered`` (the
    ``in_seq`` of every request with an answer)."""
    events: list[Event] = []
    with Subscriber(
        tp_address, tables=["order", "fill"], start="journal", timeout_s=timeout_s
    ) as sub:
        while (message := sub.poll(0)) is not None:
            if not isinstance(message, Update):
                continue
            data = message.data
            mine = data.filter(pa.compute.equal(data.column("venue"), label))
            for row in mine.to_pylist():
                if row.get("exec_id"):
                    exec_ids.add(row["exec_id"])
                if message.table == "order":
                    answered.add(int(row["in_seq"]))
                    events.append(event_from_row(row))
    return events


def stored_clordids(messages: Iterable[bytes]) -> set[str]:
    """The ClOrdIDs of the messages a session stored (sent, or numbered for sending)."""
    sent: set[str] = set()
    for raw in messages:
        try:
            clordid = decode(raw).get(11)
        except ValueError:
            continue
        if clordid:
            sent.add(clordid)
    return sent
