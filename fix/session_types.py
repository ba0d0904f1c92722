"""The FIX session layer's vocabulary: settings, states, reject reasons, the transport.

Kept apart from ``fix.session`` so that the engine, the client, the settings loader and the
venue adapter can name them without the session's machinery.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol


class SessionRejectReason:
    """SessionRejectReason (373) values used here."""

    INVALID_TAG = 0
    REQUIRED_TAG_MISSING = 1
    VALUE_INCORRECT = 5
    INCORRECT_FORMAT = 6
    COMP_ID_PROBLEM = 9
    SENDING_TIME_ACCURACY = 10
    INVALID_MSG_TYPE = 11


class State(StrEnum):
    DISCONNECTED = "disconnected"
    AWAITING_LOGON = "awaiting_logon"  # connected; a Logon is expected (or was sent)
    LOGGED_ON = "logged_on"
    LOGOUT_SENT = "logout_sent"


@dataclass(frozen=True, kw_only=True)
class SessionSettings:
    name: str
    sender_comp_id: str  # ours
    target_comp_id: str  # the counterparty's
    store_dir: Path
    account: str = ""  # acceptor: the account this session trades for
    password: str = ""  # acceptor: required in 554; initiator: sent in 554
    username: str = ""  # acceptor: required in 553 when set; initiator: sent in 553
    identity: str = ""  # acceptor with [auth] on: the identity the client logs on as
    heartbeat_s: int = 30  # initiator: HeartBtInt sent; acceptor: the client's is used
    reset_on_logon: bool = False  # initiator: send ResetSeqNumFlag=Y on every logon
    max_latency_s: float = 120.0
    logon_timeout_s: float = 10.0

    @property
    def key(self) -> str:
        return f"{self.sender_comp_id}-{self.target_comp_id}"


class Transport(Protocol):
    peer: str  # "host:port" of the other end, for logs and the audit

    def send(self, data: bytes) -> None: ...

    def close(self) -> None: ...


class Disconnect(Exception):
    """Close the connection (after whatever was already sent)."""
