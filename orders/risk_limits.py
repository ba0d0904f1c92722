"""Pre-trade risk limits: one frozen set per account, validated strictly.

Field names are the TOML keys of ``[risk.defaults]`` and ``[risk.accounts.NAME]`` and the
keys an admin sends to change a limit at run time, so one validator (:func:`limits_with`)
serves both. A 0 (or an empty list) switches a limit off; ``docs/risk.md`` lists what each
limit checks and the reject code it gives.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class RiskLimits:
    # Largest quantity of one order (a replace's new total quantity).
    max_order_qty: int = 100_000
    # Largest qty * price of one order; a market order is valued at the reference price.
    max_order_notional: float = 10_000_000.0
    # A limit price may be at most this % away from the reference price (last trade or mid).
    price_collar_pct: float = 10.0
    # Working (sent, not yet done) orders of one account, across syms.
    max_open_orders: int = 1000
    # Working orders of one account in one sym.
    max_open_orders_per_sym: int = 200
    # Per sym: position + working buys + this buy must stay at or below this.
    max_long_position: int = 1_000_000
    # Per sym, a positive number: -position + working sells + this sell stays at or below it.
    max_short_position: int = 1_000_000
    # Per account credit limit: sum of |position| * reference + working orders' notional.
    max_gross_exposure: float = 100_000_000.0
    # New orders, replaces and cancels of one account in any 1 s window.
    max_messages_per_s: int = 1000
    # Same account, sym, side, qty and price again within this many seconds is a duplicate.
    duplicate_window_s: float = 1.0
    # Syms this account may not trade (a list in TOML).
    restricted_syms: tuple[str, ...] = ()
    # More fills than this for one account and sym within fill_window_s halt the account.
    max_fills_per_window: int = 1000
    # The repeated-execution throttle's window, in seconds.
    fill_window_s: float = 1.0


LIMIT_KEYS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(RiskLimits))


def _coerce(key: str, current: object, value: object) -> object:
    """``value`` as the type of the field whose current value is ``current``."""
    if isinstance(current, bool):  # no bool limits today; refuse to guess if one appears
        raise TypeError(key)
    if isinstance(current, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{key}: expected an integer, got {value!r}")
        if value < 0:
            raise ValueError(f"{key}: must be 0 (no limit) or positive, got {value}")
        return value
    if isinstance(current, float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{key}: expected a number, got {value!r}")
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{key}: must be 0 (no limit) or a positive number, got {value}")
        return float(value)
    if isinstance(current, tuple):
        if not isinstance(value, list | tuple) or not all(isinstance(s, str) for s in value):
            raise ValueError(f"{key}: expected a list of strings, got {value!r}")
        return tuple(value)
    raise TypeError(key)


def limits_with(base: RiskLimits, changes: Mapping[str, object], where: str) -> RiskLimits:
    """``base`` with ``changes`` applied, each key and value checked.

    ``where`` prefixes the key in error messages (``risk.defaults``,
    ``risk.accounts.A1``, ``admin``): an unknown key raises ``ValueError`` naming
    ``where.key`` and the known keys; a wrong type or a negative number names the key.
    Integers are accepted for float limits.
    """
    values: dict[str, object] = {}
    for key, value in changes.items():
        if key not in LIMIT_KEYS:
            raise ValueError(f"{where}.{key}: unknown risk limit; known: {', '.join(LIMIT_KEYS)}")
        values[key] = _coerce(f"{where}.{key}", getattr(base, key), value)
    return dataclasses.replace(base, **values)  # type: ignore[arg-type]


def limits_from_config(
    risk: Mapping[str, object], where: str = "risk"
) -> tuple[RiskLimits, dict[str, RiskLimits]]:
    """The defaults and per-account limits of a ``[risk]`` TOML table.

    ``{"defaults": {...}, "accounts": {"A1": {...}}}``: each account starts from the
    defaults and overrides what its table names.
    """
    for key in risk:
        if key not in ("defaults", "accounts"):
            raise ValueError(f"{where}.{key}: unknown section; known: defaults, accounts")
    defaults_table = risk.get("defaults", {})
    accounts_table = risk.get("accounts", {})
    if not isinstance(defaults_table, Mapping):
        raise ValueError(f"{where}.defaults: expected a table")
    if not isinstance(accounts_table, Mapping):
        raise ValueError(f"{where}.accounts: expected a table of accounts")
    defaults = limits_with(RiskLimits(), defaults_table, f"{where}.defaults")
    accounts: dict[str, RiskLimits] = {}
    for name, table in accounts_table.items():
        if not isinstance(table, Mapping):
            raise ValueError(f"{where}.accounts.{name}: expected a table")
        accounts[name] = limits_with(defaults, table, f"{where}.accounts.{name}")
    return defaults, accounts
