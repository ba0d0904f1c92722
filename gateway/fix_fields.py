"""The FIX acceptor's reading of application messages: required tags per message type,
typed values out of tags (a wrong one is a session-level Reject naming the tag), and each
session's state as ``tickdb fix sessions`` and ``/metrics`` show it."""

from __future__ import annotations

import math
from typing import Any

from fix.codec import Message
from fix.session import Session
from fix.session_types import SessionRejectReason


class BadValue(ValueError):
    def __init__(self, tag: int, text: str, reason: int = SessionRejectReason.VALUE_INCORRECT):
        super().__init__(text)
        self.tag = tag
        self.reason = reason


REQUIRED = {
    "D": (11, 55, 54, 38, 40, 60),
    "F": (11, 41, 55, 54, 60),
    "G": (11, 41, 55, 54, 38, 40, 60),
    "H": (11, 55, 54),
    "q": (11, 530, 60),
}


def session_info(s: Session) -> dict[str, Any]:
    return {
        "name": s.settings.name,
        "sender_comp_id": s.settings.sender_comp_id,
        "target_comp_id": s.settings.target_comp_id,
        "account": s.settings.account,
        "state": str(s.state),
        "next_sender_seq": s.store.next_sender,
        "next_target_seq": s.store.next_target,
        "received": s.received,
        "sent": s.sent,
        "dropped": s.dropped,
        "rejects_sent": s.rejects_sent,
        "resend_requests_sent": s.resend_requests_sent,
        "logons": s.logons,
    }


def enum_value(msg: Message, tag: int, table: dict[str, Any], default: str | None = None) -> Any:
    value = msg.get(tag, default or "")
    try:
        return table[value]
    except KeyError:
        known = ", ".join(table)
        raise BadValue(tag, f"tag {tag}: {value!r} is not one of {known}") from None


def qty_value(msg: Message, tag: int) -> int:
    text = msg.get(tag)
    try:
        value = float(text)
    except ValueError:
        raise BadValue(tag, f"tag {tag}: {text!r} is not a number", 6) from None
    if not value.is_integer():  # also inf (1e400) and nan
        raise BadValue(tag, f"tag {tag}: {text!r} is not a whole quantity")
    return int(value)


def price_value(msg: Message, tag: int) -> float | None:
    if tag not in msg.values:
        return None
    text = msg.get(tag)
    try:
        value = float(text)
    except ValueError:
        raise BadValue(tag, f"tag {tag}: {text!r} is not a number", 6) from None
    if not math.isfinite(value):
        raise BadValue(tag, f"tag {tag}: {text!r} is not a finite price")
    return value
