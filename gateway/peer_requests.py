"""Active-active gateways: every gateway applies every live ``order_request`` row.

Several gateways may take orders over the same tickerplant and venues. Each one registers
its own requests when it sends them; the rows other gateways sent reach it only through the
tickerplant. ``PeerRequests`` reads each live ``order_request`` record (its own rows
included: a record does not say who published it) so that every gateway knows every order
and every ClOrdID, and a retry sent to another gateway is answered with the existing order.

The sequence decides a race. When the same (account, ClOrdID) is sent to two gateways at
once, each registers it locally and publishes it; the tickerplant sequences both rows, and
the first one in sequence is the order (the venue refuses the second as
``duplicate_clordid``, ``orders/book.py``). So here the first row seen for a key wins:

- a key not known yet: another gateway's order; it is registered (pending_new);
- a key known and not yet sequenced, from the same request: nothing to do (this gateway's
  own row, or an identical one that came first: the same order either way);
- a key known and not yet sequenced, from a different request: another gateway's request
  came first. It becomes the order; this gateway's own one is refused as
  ``duplicate_clordid``, which wakes its waiting client;
- a key already sequenced: a later duplicate, which the venue refuses; ignored.

The venue's ``duplicate_clordid`` refusal of that later row names the same key as the order
that won: ``stale_refusal`` recognises it so that it is not applied to the winner.

Cancels and replaces register their ClOrdID on the order they name (``known_request``); the
venue's events change the order's state on every gateway alike.
"""

from __future__ import annotations

import logging

from gateway.order_router import OrderRouter, _same_request
from gateway.replay_rows import Columns
from orders.model import Event, EventType, NewOrder, Order, OrdStatus, RequestType
from orders.rows import request_from_row
from tickerplant.payload_rows import read_columns

log = logging.getLogger(__name__)


class PeerRequests:
    """Applies live ``order_request`` records to a router (called with its lock held)."""

    def __init__(self, router: OrderRouter) -> None:
        self.router = router
        # (account, ClOrdID) of every new order seen in sequence today.
        self._sequenced: set[tuple[str, str]] = set()
        self.adopted = 0  # orders first learnt from another gateway's row
        self.lost_races = 0  # own requests another gateway's identical key came before

    def apply(self, payload: bytes | memoryview, read: Columns | None = None) -> None:
        """One ``order_request`` record's payload (``Update.payload``), or its columns
        ``read`` already (a rebuild reads many records together, ``replay_rows``). Read
        without pyarrow (``payload_rows``): a record is usually this gateway's own single
        row, and a reader and ``to_pylist`` cost ~90 µs of it hot, several times that woken
        from idle, on a wake-up that competes with the venue for the CPU."""
        names, columns = read_columns(payload) if read is None else read
        by_name = dict(zip(names, columns, strict=True))
        kinds, accounts, clordids = by_name["request"], by_name["account"], by_name["clordid"]
        wanted: list[int] = []
        for i, (kind, account, clordid) in enumerate(zip(kinds, accounts, clordids, strict=True)):
            if kind == RequestType.MASS_CANCEL:
                continue  # its events reach every gateway; nothing to register
            key = (str(account), str(clordid))
            if kind == RequestType.NEW:
                if key in self._sequenced:
                    continue  # a later duplicate: the venue refuses it
                self._sequenced.add(key)
            elif key in self.router._by_clordid:
                continue  # a cancel or replace this gateway sent or already knows
            wanted.append(i)
        for i in wanted:
            row = {name: column[i] for name, column in by_name.items()}
            try:
                req = request_from_row(row)
            except (ValueError, TypeError, KeyError) as exc:
                log.error("unusable order_request row %r: %s", row, exc)
                continue
            if isinstance(req, NewOrder):
                self._new(req)
            else:
                self.router.known_request(req)

    def _new(self, req: NewOrder) -> None:
        key = (req.account, req.clordid)
        by_clordid = self.router._by_clordid
        known = by_clordid.get(key)
        if known is None:
            by_clordid[key] = req.to_order()
            self.adopted += 1
            return
        if _same_request(known, req):
            return
        if known.status is OrdStatus.PENDING_NEW and not known.order_id:
            # Another gateway's different request with this ClOrdID was sequenced first:
            # it is the order; this gateway's own is the duplicate the venue refuses.
            by_clordid[key] = req.to_order()
            known.status = OrdStatus.REJECTED
            known.reason = "duplicate_clordid"
            self.lost_races += 1
            log.warning(
                "ClOrdID %r of account %r was sent to another gateway first: ours refused",
                req.clordid,
                req.account,
            )

    def new_day(self) -> None:
        self._sequenced.clear()


def stale_refusal(router: OrderRouter, event: Event) -> bool:
    """A venue's ``duplicate_clordid`` refusal of a new order whose ClOrdID names an order
    the venue accepted (the loser of a race between gateways): not about that order."""
    if event.event is not EventType.REJECTED or event.reason != "duplicate_clordid":
        return False
    known: Order | None = router._by_clordid.get((event.account, event.clordid))
    return known is not None and bool(known.order_id) and known.order_id != event.order_id
