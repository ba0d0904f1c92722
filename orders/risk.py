"""Pre-trade risk: every order request is checked here before it reaches a venue.

The gateway owns one :class:`RiskEngine`. It calls :meth:`~RiskEngine.check_new`,
:meth:`~RiskEngine.check_replace` and :meth:`~RiskEngine.check_cancel` for each request, and
feeds back the venues' order events (:meth:`~RiskEngine.on_event`), fills
(:meth:`~RiskEngine.on_fill`) and live prices (:meth:`~RiskEngine.on_price`). Time is passed
in (``now_ns``, ns since the epoch); nothing here reads a clock or does I/O.

A new order is first validated (account, sym, quantity, price, tick), then runs the checks
of ``orders.risk_checks.NEW_ORDER_CHECKS`` in order, stopping at the first reject. A passed
order is recorded as working at once, so the next check counts it, and its message counts
for the rate limit. Working orders then follow the events; positions follow the fills.

Accounts: the keys of ``accounts`` are the known accounts, each with its own limits; an
order for any other account is rejected (``unknown_account``). If ``accounts`` is empty,
every account is accepted and uses the defaults. An account follows the defaults for every
limit it does not override (a value that differs from the default's), also when an admin
changes the defaults later.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter, deque
from collections.abc import Collection, Mapping
from typing import Any

from orders.model import Event, EventType, Fill, NewOrder, Order, ReplaceRequest, Side
from orders.positions import PositionBook
from orders.risk_book import RiskBook
from orders.risk_checks import (
    _NS,
    NEW_ORDER_CHECKS,
    REPLACE_CHECKS,
    AccountRisk,
    Ask,
    Controls,
    RejectCode,
    RiskReject,
    TradingState,
    _num,
    rate_reject,
    validate,
)
from orders.risk_limits import LIMIT_KEYS, RiskLimits, limits_from_config, limits_with

__all__ = [
    "RejectCode",
    "RiskEngine",
    "RiskLimits",
    "RiskReject",
    "TradingState",
    "limits_with",
    "risk_engine",
]


def _plain(value: object) -> object:
    """A limit's value as JSON has it (tuples as lists)."""
    return list(value) if isinstance(value, tuple) else value


class RiskEngine:
    def __init__(
        self,
        defaults: RiskLimits,
        accounts: Mapping[str, RiskLimits],
        *,
        syms: Collection[str] | None = None,
        tick_sizes: Mapping[str, float] | None = None,
        default_tick: float = 0.01,
        positions: PositionBook | None = None,
    ) -> None:
        """``syms``: the tradable syms (None: any). ``tick_sizes``: per-sym price grid, the
        others on ``default_tick`` (0: any price). ``positions``: a book this engine feeds
        from :meth:`on_fill` (a new one if None); do not feed it fills elsewhere."""
        self._defaults = defaults
        self._any_account = not accounts
        self._overrides: dict[str, dict[str, object]] = {
            name: {
                key: getattr(limits, key)
                for key in LIMIT_KEYS
                if getattr(limits, key) != getattr(defaults, key)
            }
            for name, limits in accounts.items()
        }
        self._syms = None if syms is None else frozenset(syms)
        self._ticks = dict(tick_sizes or {})
        self._default_tick = default_tick
        self.positions = positions if positions is not None else PositionBook()
        self._book = RiskBook()
        self._controls = Controls()
        self._refs: dict[str, float] = {}  # sym -> reference price (last trade or mid)
        self._accounts: dict[str, AccountRisk] = {}
        for name in accounts:
            self._accounts[name] = AccountRisk(self._effective(name), self._book.account(name))
        # Counters, for status() and tests.
        self.checked = 0  # requests checked today (new, replace, cancel)
        self.passed = 0
        self.rejects: Counter[str] = Counter()  # reject code -> count today
        self.throttle_halts = 0

    # -- checks -------------------------------------------------------------------------

    def check_new(self, req: NewOrder, now_ns: int, *, intended: bool = False) -> RiskReject | None:
        """None if ``req`` may go to the venue (it is then counted as working), else why not.

        ``intended``: the sender confirms a repeat of a recent identical order, which skips
        the duplicate-content check (not the duplicate ClOrdID check).
        """
        self.checked += 1
        acct = self._account(req.account)
        if acct is None:
            return self._refuse(self._unknown_account(req.account))
        tick = self._ticks.get(req.sym, self._default_tick)
        known = self._syms is None or req.sym in self._syms
        reject = validate(known, req.sym, req.qty, req.ord_type, req.price, tick)
        if reject is not None:
            return self._refuse(reject)
        ask = Ask(
            req.account,
            acct,
            self._controls,
            req.sym,
            req.side,
            req.qty,
            req.price,
            self._refs.get(req.sym),
            self.positions.qty(req.account, req.sym),
            now_ns,
        )
        ask.strategy = req.strategy
        ask.clordid = req.clordid
        ask.intended = intended
        for check in NEW_ORDER_CHECKS:
            reject = check(ask)
            if reject is not None:
                return self._refuse(reject)
        acct.messages.append(now_ns)
        acct.clordids.add(req.clordid)
        if acct.limits.duplicate_window_s:
            content = (req.sym, req.side, req.qty, req.price)
            acct.recent[content] = now_ns
            acct.recent_order.append((now_ns, content))
        unit = ask.unit if ask.unit is not None else 0.0
        self._book.add(req.account, req.sym, req.clordid, req.side, req.qty, unit)
        self.passed += 1
        return None

    def check_replace(self, req: ReplaceRequest, now_ns: int, order: Order) -> RiskReject | None:
        """None if the replace of ``order`` may go to the venue.

        A replace that adds risk (more leaves, or a new price) is checked like a new order of
        its new size and price, with the order's own working quantity replaced, but without
        the duplicate and open-order checks. One that only lowers the quantity is treated
        like a cancel: only the rate limit applies. Until the venue answers, the order counts
        at the larger of its old and new sizes.
        """
        self.checked += 1
        acct = self._account(req.account)
        if acct is None:
            return self._refuse(self._unknown_account(req.account))
        if not order.is_open or order.account != req.account or order.sym != req.sym:
            return self._refuse(
                RiskReject(
                    RejectCode.UNKNOWN_ORDER,
                    f"order {req.orig_clordid} is not open for account {req.account} in {req.sym}",
                )
            )
        qty = req.qty if req.qty is not None else order.qty
        price = req.price if req.price is not None else order.price
        tick = self._ticks.get(req.sym, self._default_tick)
        reject = validate(True, req.sym, qty, order.ord_type, price, tick)
        if reject is None and qty <= order.cum_qty:
            reject = RiskReject(
                RejectCode.BAD_QUANTITY,
                f"new quantity {qty} is not above the {order.cum_qty} already filled",
            )
        if reject is not None:
            return self._refuse(reject)
        leaves = qty - order.cum_qty
        ref = self._refs.get(req.sym)
        unit = price if price is not None else ref
        working = self._book.find(order.account, order.clordid, order.order_id)
        if working is None:  # an order risk never saw pass (e.g. sent before a restart)
            working = self._book.add(
                order.account,
                order.sym,
                order.clordid,
                order.side,
                order.leaves_qty,
                unit if unit is not None else 0.0,
                order.order_id,
            )
        if leaves > order.leaves_qty or price != order.price:
            ask = Ask(
                req.account,
                acct,
                self._controls,
                req.sym,
                order.side,
                qty,
                price,
                ref,
                self.positions.qty(req.account, req.sym),
                now_ns,
            )
            ask.leaves = leaves
            ask.old_leaves = working.leaves
            ask.old_notional = working.notional
            ask.strategy = order.strategy
            for check in REPLACE_CHECKS:
                reject = check(ask)
                if reject is not None:
                    return self._refuse(reject)
        else:
            reject = rate_reject(req.account, acct, now_ns)
            if reject is not None:
                return self._refuse(reject)
        acct.messages.append(now_ns)
        acct.clordids.add(req.clordid)
        self._book.begin_replace(
            working, req.clordid, qty, leaves, unit if unit is not None else 0.0
        )
        self.passed += 1
        return None

    def check_cancel(self, account: str, now_ns: int) -> RiskReject | None:
        """A cancel passes every state, kill and limit but the rate limit, and counts for it."""
        self.checked += 1
        acct = self._account(account)
        if acct is None:
            return self._refuse(self._unknown_account(account))
        reject = rate_reject(account, acct, now_ns)
        if reject is not None:
            return self._refuse(reject)
        acct.messages.append(now_ns)
        self.passed += 1
        return None

    # -- feed ---------------------------------------------------------------------------

    def on_event(self, event: Event, now_ns: int | None = None) -> RiskReject | None:
        """Keep the working orders in step with a venue's order event.

        With ``now_ns``, a FILL event also moves its execution into the position (as
        :meth:`on_fill`), in the same step: a venue publishes an execution's events and its
        fill rows as two records, and a check made between them must not see the filled
        quantity gone from the working orders and not yet in the position."""
        self._book.on_event(event, self._refs.get(event.sym))
        if now_ns is None or event.event is not EventType.FILL or event.last_qty <= 0:
            return None
        return self.on_execution(event, now_ns)

    def on_closed(self, account: str, clordid: str, order_id: str, orig_clordid: str) -> None:
        """``on_event`` of an event that ends an order (canceled, expired), from its keys
        alone: a mass cancel's thousands of rows, without an ``Event`` each."""
        self._book.close(account, clordid, order_id, orig_clordid)

    def on_execution(self, event: Event, now_ns: int) -> RiskReject | None:
        """A FILL event's execution into the position, without touching working orders (an
        event of an order this engine never counted)."""
        return self._execute(
            event.account, event.sym, event.side, event.last_qty, event.last_px,
            event.exec_id, now_ns,
        )  # fmt: skip

    def on_fill(self, fill: Fill, now_ns: int) -> RiskReject | None:
        """Apply a fill to the positions and run the repeated-execution throttle.

        Returns a ``fill_throttle`` notice when this fill makes more than
        ``max_fills_per_window`` fills for its account and sym within ``fill_window_s``: the
        account is halted from then on, until :meth:`resume`. Only the fill that trips the
        throttle returns a notice.
        """
        return self._execute(
            fill.account, fill.sym, fill.side, fill.qty, fill.price, fill.exec_id, now_ns
        )

    def _execute(
        self, account: str, sym: str, side: Side, qty: int, price: float, exec_id: str, now_ns: int
    ) -> RiskReject | None:
        self.positions.execute(account, sym, side, qty, price, exec_id)
        self._revalue(account, sym)
        acct = self._account(account)
        if acct is None:
            return None
        limits = acct.limits
        if not limits.max_fills_per_window:
            return None
        fills = acct.fills.get(sym)
        if fills is None:
            fills = acct.fills[sym] = deque()
        horizon = now_ns - int(limits.fill_window_s * _NS)
        while fills and fills[0] <= horizon:
            fills.popleft()
        fills.append(now_ns)
        if len(fills) > limits.max_fills_per_window and not acct.throttled:
            acct.throttled = (
                f"{len(fills)} fills in {sym} within {_num(limits.fill_window_s)} s exceed "
                f"max_fills_per_window {limits.max_fills_per_window} for account "
                f"{account}: trading halted until resumed"
            )
            self.throttle_halts += 1
            return RiskReject(RejectCode.FILL_THROTTLE, acct.throttled)
        return None

    def on_price(self, sym: str, price: float) -> None:
        """The reference price of ``sym`` (last trade or mid): collars, market orders'
        notional and the positions' value are measured against it."""
        if not math.isfinite(price) or price <= 0:
            raise ValueError(f"reference price {price!r} for {sym} is not a positive number")
        self._refs[sym] = price
        self.positions.mark(sym, price)
        for account in list(self._book.holders.get(sym, ())):
            self._revalue(account, sym)

    def new_day(self) -> None:
        """Forget the day's ClOrdIDs, duplicate and rate windows, throttle windows and
        counters. Working orders (GTC), positions, states and kills stay."""
        for acct in self._accounts.values():
            acct.clordids.clear()
            acct.recent.clear()
            acct.recent_order.clear()
            acct.messages.clear()
            acct.fills.clear()
        self.checked = self.passed = 0
        self.rejects.clear()

    # -- admin: each returns what changed, for the journal ------------------------------

    def set_limits(self, account: str | None, changes: Mapping[str, object]) -> dict[str, object]:
        """Change the defaults (``account`` None) or one account's limits; raises
        ``ValueError`` for an unknown key, a bad value or an unknown account."""
        if account is None:
            old = self._defaults
            new = self._defaults = limits_with(old, changes, "risk.defaults")
            for name, acct in self._accounts.items():
                acct.use(self._effective(name))
        else:
            acct_or_none = self._account(account)
            if acct_or_none is None:
                raise ValueError(f"unknown account {account}")
            old = acct_or_none.limits
            new = limits_with(old, changes, f"risk.accounts.{account}")
            overrides = self._overrides.setdefault(account, {})
            overrides.update({key: getattr(new, key) for key in changes})
            acct_or_none.use(new)
        return {
            "action": "set_limits",
            "account": account,
            "changes": {
                key: {"old": _plain(getattr(old, key)), "new": _plain(getattr(new, key))}
                for key in changes
            },
        }

    def set_trading_state(
        self, state: TradingState | str, account: str | None = None
    ) -> dict[str, object]:
        """Set the global (``account`` None) or one account's trading state. The stricter of
        the two applies."""
        new = TradingState(state)
        if account is None:
            old = self._controls.state
            self._controls.state = new
        else:
            acct = self._known(account)
            old = acct.state
            acct.state = new
        return {"action": "set_trading_state", "account": account, "old": old, "new": new}

    def kill(self, account: str | None = None, strategy: str | None = None) -> dict[str, object]:
        """No new order or replace passes for the scope from now on (``killed``): an account,
        a strategy (in every account, or in ``account``), or everything (both None).
        Working orders stay: canceling them is the gateway's mass cancel."""
        if account is not None:
            self._known(account)
        scope = (account or "", strategy or "")
        was = scope in self._controls.kills
        self._controls.kills.add(scope)
        return {"action": "kill", "account": account, "strategy": strategy, "was_killed": was}

    def resume(self, account: str | None = None, strategy: str | None = None) -> dict[str, object]:
        """Lift the kill of exactly this scope and, for an account, its throttle halt."""
        scope = (account or "", strategy or "")
        cleared_kill = scope in self._controls.kills
        self._controls.kills.discard(scope)
        cleared_throttle = ""
        if account is not None and strategy is None:
            acct = self._known(account)
            cleared_throttle, acct.throttled = acct.throttled, ""
        return {
            "action": "resume",
            "account": account,
            "strategy": strategy,
            "cleared_kill": cleared_kill,
            "cleared_throttle": cleared_throttle,
        }

    def status(self) -> dict[str, object]:
        """Limits, states, kills and counters, as an admin GET returns them."""
        accounts: dict[str, object] = {}
        for name, acct in sorted(self._accounts.items()):
            totals = acct.totals
            accounts[name] = {
                "limits": {k: _plain(v) for k, v in dataclasses.asdict(acct.limits).items()},
                "overrides": {k: _plain(v) for k, v in self._overrides.get(name, {}).items()},
                "state": acct.state,
                "throttled": acct.throttled,
                "open_orders": totals.open_orders,
                "working_notional": totals.working_notional,
                "position_value": totals.position_value,
                "gross_exposure": totals.working_notional + totals.position_value,
                "messages_in_window": len(acct.messages),
            }
        return {
            "defaults": {k: _plain(v) for k, v in dataclasses.asdict(self._defaults).items()},
            "any_account": self._any_account,
            "state": self._controls.state,
            "kills": [
                {"account": a or None, "strategy": s or None}
                for a, s in sorted(self._controls.kills)
            ],
            "accounts": accounts,
            "counters": {
                "checked": self.checked,
                "passed": self.passed,
                "rejects": dict(self.rejects),
                "throttle_halts": self.throttle_halts,
            },
        }

    # -- internals ----------------------------------------------------------------------

    def _effective(self, account: str) -> RiskLimits:
        overrides = self._overrides.get(account)
        return dataclasses.replace(self._defaults, **overrides) if overrides else self._defaults  # type: ignore[arg-type]

    def _account(self, account: str) -> AccountRisk | None:
        acct = self._accounts.get(account)
        if acct is None and self._any_account:
            acct = self._accounts[account] = AccountRisk(
                self._effective(account), self._book.account(account)
            )
        return acct

    def _known(self, account: str) -> AccountRisk:
        acct = self._account(account)
        if acct is None:
            raise ValueError(f"unknown account {account}")
        return acct

    def _unknown_account(self, account: str) -> RiskReject:
        return RiskReject(RejectCode.UNKNOWN_ACCOUNT, f"account {account!r} is not configured")

    def _refuse(self, reject: RiskReject) -> RiskReject:
        self.rejects[reject.code] += 1
        return reject

    def _revalue(self, account: str, sym: str) -> None:
        """|position| at the reference price (the average cost until there is one)."""
        qty = self.positions.qty(account, sym)
        price = self._refs.get(sym)
        if price is None and qty:
            price = self.positions.position(account, sym).avg_price
        self._book.set_position_value(account, sym, abs(qty) * (price or 0.0))


def risk_engine(cfg: Any) -> RiskEngine:
    """The engine a gateway's config (``[risk]``, ``[orders]``) describes."""
    defaults, accounts = limits_from_config(cfg.risk)
    return RiskEngine(
        defaults,
        accounts,
        syms=cfg.orders.syms or None,
        tick_sizes=cfg.orders.tick_sizes,
        default_tick=cfg.orders.tick_size,
    )
