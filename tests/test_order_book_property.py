"""The matching engine against a naive reference matcher (lists and linear scans), on random
flows of new orders, cancels, replaces, mass cancels and ends of day; and determinism.

Prices are drawn in cents: sym A trades on a 0.01 tick, sym B on 0.05, so some B prices are
off tick. Both sides report the same events (type, order id, status, reason, fill size and
price in cents) in the same order and end with the same books.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from orders.book import MatchingEngine
from orders.model import (
    CancelRequest,
    Event,
    MassCancel,
    NewOrder,
    OrdType,
    ReplaceRequest,
    Side,
    StpMode,
    TimeInForce,
)

TICK_CENTS = {"A": 1, "B": 5}
ACCOUNTS = ("a", "b", "c")
CLORDIDS = tuple(f"k{i}" for i in range(4))

Row = tuple[str, str, str, str, int, int]  # event, order id, status, reason, last qty, last px
Book = tuple[tuple[str, str, int, str, int], ...]  # sym, side, price cents, order id, leaves


@dataclass
class RefOrder:
    oid: int
    account: str
    sym: str
    clordid: str
    side: Side
    qty: int
    ticks: int | None
    tif: TimeInForce
    strategy: str
    status: str = "new"
    cum: int = 0
    time: int = 0  # priority: lower first at the same price

    @property
    def leaves(self) -> int:
        return self.qty - self.cum


class Reference:
    """The matching rules, written the slow and obvious way."""

    def __init__(self, stp: StpMode) -> None:
        self.stp = stp
        self.seq = 0
        self.clock = 0
        self.resting: list[RefOrder] = []
        self.done: dict[tuple[str, str], RefOrder] = {}
        self.out: list[Row] = []

    def emit(self, event: str, o: RefOrder | None, reason: str = "", qty: int = 0, px: int = 0):
        if o is None:
            self.out.append((event, "", "rejected", reason, 0, 0))
        else:
            self.out.append((event, f"V{o.oid}", o.status, reason, qty, px))

    def live(self, account: str, clordid: str) -> RefOrder | None:
        return next((o for o in self.resting if (o.account, o.clordid) == (account, clordid)), None)

    def contra(self, taker: RefOrder) -> list[RefOrder]:
        """Resting orders the taker could trade with, best first."""
        rows = [o for o in self.resting if o.sym == taker.sym and o.side is not taker.side]
        if taker.ticks is not None:
            if taker.side is Side.BUY:
                rows = [o for o in rows if o.ticks <= taker.ticks]  # type: ignore[operator]
            else:
                rows = [o for o in rows if o.ticks >= taker.ticks]  # type: ignore[operator]
        sign = 1 if taker.side is Side.BUY else -1
        return sorted(rows, key=lambda o: (sign * o.ticks, o.time))  # type: ignore[operator]

    def finish(self, o: RefOrder, status: str, event: str, reason: str) -> None:
        o.status = status
        if o in self.resting:
            self.resting.remove(o)
        self.done[(o.account, o.clordid)] = o
        self.emit(event, o, reason)

    def take(self, o: RefOrder, stp: StpMode) -> None:
        if o.tif is TimeInForce.FOK:
            avail = 0
            for r in self.contra(o):
                if r.account == o.account:
                    if stp is StpMode.CANCEL_INCOMING:
                        break
                    continue
                avail += r.leaves
            if avail < o.leaves:
                self.finish(o, "canceled", "canceled", "fok_unfillable")
                return
        while o.leaves:
            rows = self.contra(o)
            if not rows:
                break
            r = rows[0]
            if r.account == o.account:
                if stp is StpMode.CANCEL_INCOMING:
                    self.finish(o, "canceled", "canceled", "self_trade")
                    return
                self.finish(r, "canceled", "canceled", "self_trade")
                continue
            qty = min(o.leaves, r.leaves)
            for x in (o, r):
                x.cum += qty
                x.status = "filled" if x.cum == x.qty else "partially_filled"
            px = r.ticks * TICK_CENTS[o.sym]  # type: ignore[operator]
            self.emit("fill", o, qty=qty, px=px)
            self.emit("fill", r, qty=qty, px=px)
            if r.status == "filled":
                self.resting.remove(r)
                self.done[(r.account, r.clordid)] = r
        if not o.leaves:
            self.done[(o.account, o.clordid)] = o
        elif o.ticks is None:
            self.finish(o, "canceled", "canceled", "no_liquidity")
        elif o.tif is TimeInForce.IOC:
            self.finish(o, "canceled", "canceled", "ioc_remainder")
        else:
            self.clock += 1
            o.time = self.clock
            if o not in self.resting:
                self.resting.append(o)

    def new(self, req: NewOrder, cents: int | None, stp: StpMode | None) -> None:
        tick = TICK_CENTS[req.sym]
        reason = ""
        if req.qty <= 0:
            reason = "bad_quantity"
        elif req.ord_type is OrdType.MARKET:
            reason = "bad_price" if cents is not None else ""
        elif cents is None:
            reason = "bad_price"
        elif cents % tick:
            reason = "off_tick"
        if not reason and (
            self.live(req.account, req.clordid) or (req.account, req.clordid) in self.done
        ):
            reason = "duplicate_clordid"  # a ClOrdID of the day, live or done
        if reason:
            self.emit("rejected", None, reason)
            return
        self.seq += 1
        ticks = None if cents is None else cents // tick
        o = RefOrder(
            self.seq, req.account, req.sym, req.clordid, req.side, req.qty, ticks, req.tif,
            req.strategy,
        )  # fmt: skip
        self.emit("accepted", o)
        self.take(o, self.stp if stp is None else stp)

    def refuse(self, event: str, account: str, sym: str, orig: str) -> None:
        o = self.done.get((account, orig))
        if o is not None and o.sym == sym:
            self.emit(event, o, "too_late")
        else:
            self.emit(event, None, "unknown_order")

    def cancel(self, req: CancelRequest) -> None:
        o = self.live(req.account, req.orig_clordid)
        if o is None or o.sym != req.sym:
            self.refuse("cancel_rejected", req.account, req.sym, req.orig_clordid)
            return
        self.finish(o, "canceled", "canceled", "user")

    def replace(self, req: ReplaceRequest, cents: int | None) -> None:
        o = self.live(req.account, req.orig_clordid)
        if o is None or o.sym != req.sym:
            self.refuse("replace_rejected", req.account, req.sym, req.orig_clordid)
            return
        qty = o.qty if req.qty is None else req.qty
        tick = TICK_CENTS[o.sym]
        reason = ""
        if qty <= o.cum:
            reason = "qty_not_above_filled"
        elif cents is not None and cents % tick:
            reason = "off_tick"
        elif req.clordid != req.orig_clordid and self.live(req.account, req.clordid):
            reason = "duplicate_clordid"
        if reason:
            self.emit("replace_rejected", o, reason)
            return
        ticks = o.ticks if cents is None else cents // tick
        keeps = ticks == o.ticks and qty <= o.qty
        self.done[(o.account, o.clordid)] = o
        o.clordid, o.qty, o.ticks, o.status = req.clordid, qty, ticks, "replaced"
        self.emit("replaced", o)
        if not keeps:
            self.resting.remove(o)
            self.take(o, self.stp)

    def mass_cancel(self, req: MassCancel) -> None:
        for o in sorted(self.resting, key=lambda o: o.oid):
            if (
                (not req.account or o.account == req.account)
                and (not req.strategy or o.strategy == req.strategy)
                and (not req.sym or o.sym == req.sym)
            ):
                self.finish(o, "canceled", "canceled", "mass_cancel")

    def end_of_day(self) -> None:
        for o in sorted(self.resting, key=lambda o: o.oid):
            if o.tif is TimeInForce.DAY:
                self.finish(o, "expired", "expired", "eod")
        self.done.clear()

    def book(self) -> Book:
        rows = []
        for sym in sorted({o.sym for o in self.resting}):
            for side, sign in ((Side.BUY, -1), (Side.SELL, 1)):
                orders = [o for o in self.resting if o.sym == sym and o.side is side]
                orders.sort(key=lambda o: (sign * o.ticks, o.time))  # type: ignore[operator]
                for o in orders:
                    price = o.ticks * TICK_CENTS[sym]  # type: ignore[operator]
                    rows.append((sym, side.value, price, f"V{o.oid}", o.leaves))
        return tuple(rows)


# ---- random flows -------------------------------------------------------------------------

# Mostly on both syms' grid (multiples of 5 cents), around 1.00, so orders cross often.
price_st = st.one_of(
    st.integers(min_value=19, max_value=21).map(lambda n: 5 * n),
    st.integers(min_value=98, max_value=102),
)
cents_st = st.one_of(st.none(), price_st)
new_st = st.tuples(
    st.just("new"),
    st.sampled_from(ACCOUNTS),
    st.sampled_from(("A", "B")),
    st.sampled_from(CLORDIDS),
    st.sampled_from(list(Side)),
    st.integers(min_value=0, max_value=6),
    st.sampled_from([OrdType.LIMIT] * 4 + [OrdType.MARKET]),
    price_st,
    st.sampled_from([TimeInForce.DAY, TimeInForce.GTC] * 2 + [TimeInForce.IOC, TimeInForce.FOK]),
    st.sampled_from(("s1", "s2")),
    st.sampled_from([None, *StpMode]),
    st.integers(min_value=0, max_value=9),  # 0: send a market's price / drop a limit's
)
cancel_st = st.tuples(
    st.just("cancel"),
    st.sampled_from(ACCOUNTS),
    st.sampled_from(("A", "B")),
    st.sampled_from(CLORDIDS),
)
replace_st = st.tuples(
    st.just("replace"),
    st.sampled_from(ACCOUNTS),
    st.sampled_from(("A", "B")),
    st.sampled_from(CLORDIDS),
    st.sampled_from(CLORDIDS),
    st.one_of(st.none(), st.integers(min_value=0, max_value=8)),
    cents_st,
)
mass_st = st.tuples(
    st.just("mass"),
    st.sampled_from(("", *ACCOUNTS)),
    st.sampled_from(("", "s1", "s2")),
    st.sampled_from(("", "A", "B")),
)
# A cancel or replace of the i-th live order (in order-id order), so that most hit one.
live_st = st.tuples(
    st.sampled_from(("cancel_live", "replace_live")),
    st.integers(min_value=0, max_value=50),
    st.sampled_from(CLORDIDS),
    st.one_of(st.none(), st.integers(min_value=0, max_value=8)),
    cents_st,
)
eod_st = st.tuples(st.just("eod"))
# Weighted: mostly new orders, few mass cancels and ends of day (they empty the books).
op_st = st.integers(min_value=0, max_value=39).flatmap(
    lambda k: (
        new_st
        if k < 20
        else live_st
        if k < 26
        else cancel_st
        if k < 30
        else replace_st
        if k < 37
        else mass_st
        if k < 39
        else eod_st
    )
)
flow_st = st.lists(op_st, min_size=10, max_size=80)


def run_engine(eng: MatchingEngine, flow: list[tuple]) -> list[Row]:
    rows: list[Row] = []
    for op in flow:
        if op[0].endswith("_live"):
            live = eng.open_orders()
            if not live:
                continue
            target = live[op[1] % len(live)]
            if op[0] == "cancel_live":
                op = ("cancel", target.account, target.sym, target.clordid)
            else:
                op = ("replace", target.account, target.sym, op[2], target.clordid, *op[3:])
        if op[0] == "new":
            _, account, sym, clordid, side, qty, ord_type, cents, tif, strategy, stp, odd = op
            price: float | None = cents / 100
            if (ord_type is OrdType.MARKET) == (odd != 0):
                price = None
            req = NewOrder(account, sym, clordid, side, qty, ord_type, price, tif, strategy)
            out = eng.new(req, stp=stp)
        elif op[0] == "cancel":
            _, account, sym, orig = op
            out = eng.cancel(CancelRequest(account, sym, "x", orig))
        elif op[0] == "replace":
            _, account, sym, clordid, orig, qty, cents = op
            price = None if cents is None else cents / 100
            out = eng.replace(ReplaceRequest(account, sym, clordid, orig, qty, price))
        elif op[0] == "mass":
            _, account, strategy, sym = op
            out = eng.mass_cancel(MassCancel(account, strategy, sym, "m"))
        else:
            out = eng.end_of_day()
        for e in out:
            if isinstance(e, Event):
                px = round(e.last_px * 100)
                row = (e.event.value, e.order_id, e.status.value, e.reason, e.last_qty, px)
                rows.append(row)
    return rows


def run_reference(ref: Reference, flow: list[tuple]) -> list[Row]:
    for op in flow:
        if op[0].endswith("_live"):
            live = sorted(ref.resting, key=lambda o: o.oid)
            if not live:
                continue
            target = live[op[1] % len(live)]
            if op[0] == "cancel_live":
                op = ("cancel", target.account, target.sym, target.clordid)
            else:
                op = ("replace", target.account, target.sym, op[2], target.clordid, *op[3:])
        if op[0] == "new":
            _, account, sym, clordid, side, qty, ord_type, cents, tif, strategy, stp, odd = op
            price_cents: int | None = cents
            if (ord_type is OrdType.MARKET) == (odd != 0):
                price_cents = None
            req = NewOrder(account, sym, clordid, side, qty, ord_type, None, tif, strategy)
            ref.new(req, price_cents, stp)
        elif op[0] == "cancel":
            _, account, sym, orig = op
            ref.cancel(CancelRequest(account, sym, "x", orig))
        elif op[0] == "replace":
            _, account, sym, clordid, orig, qty, cents = op
            ref.replace(ReplaceRequest(account, sym, clordid, orig, qty, None), cents)
        elif op[0] == "mass":
            _, account, strategy, sym = op
            ref.mass_cancel(MassCancel(account, strategy, sym, "m"))
        else:
            ref.end_of_day()
    return ref.out


def engine_book(eng: MatchingEngine) -> Book:
    return tuple(
        (sym, side, round(price * 100), oid, leaves)
        for sym, side, price, oid, leaves in eng.snapshot()
    )


def new_engine(stp: StpMode) -> MatchingEngine:
    return MatchingEngine(id_prefix="V", tick_sizes={"B": 0.05}, stp=stp)


@settings(max_examples=200, deadline=None)
@given(flow=flow_st, stp=st.sampled_from(list(StpMode)))
def test_engine_matches_the_reference_matcher(flow: list[tuple], stp: StpMode) -> None:
    eng = new_engine(stp)
    assert run_engine(eng, flow) == run_reference(Reference(stp), flow)
    ref = Reference(stp)
    run_reference(ref, flow)
    assert engine_book(eng) == ref.book()
    for sym in ("A", "B"):
        depth = eng.depth(sym, levels=100)
        for name, side in (("bids", "buy"), ("asks", "sell")):
            rows = [r for r in ref.book() if r[0] == sym and r[1] == side]
            assert sum(q for _, q, _ in depth[name]) == sum(r[4] for r in rows)
            assert sum(n for _, _, n in depth[name]) == len(rows)


@settings(max_examples=50, deadline=None)
@given(flow=flow_st, stp=st.sampled_from(list(StpMode)))
def test_replaying_the_same_input_gives_the_same_output(flow: list[tuple], stp: StpMode) -> None:
    first, second = new_engine(stp), new_engine(stp)
    assert run_engine(first, flow) == run_engine(second, flow)
    assert first.snapshot() == second.snapshot()
    assert [vars(o) for o in first.open_orders()] == [vars(o) for o in second.open_orders()]
