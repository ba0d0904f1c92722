"""A trading stack with the gateway's FIX acceptor on, and helpers to talk FIX raw."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

from fix.codec import Framer, Message, decode, encode, fix_time
from fix.session_types import SessionSettings
from support.order_stack import OrderStack, start_order_stack

SYMS = ["AAPL", "MSFT", "GOOG", "TSLA", "BAC", "META"]


def fix_toml(store_dir: Path, sessions: dict[str, tuple[str, str, str]]) -> str:
    """``sessions``: name -> (client CompID, account, password); our CompID is TICKDB."""
    lines = [
        "[fix]",
        "enabled = true",
        "port = 0",
        f'store_dir = "{store_dir}"',
        "logon_timeout_s = 3.0",
        "max_message_bytes = 4096",
    ]
    for name, (comp, account, password) in sessions.items():
        lines += [
            f"[fix.sessions.{name}]",
            f'sender_comp_id = "{comp}"',
            'target_comp_id = "TICKDB"',
            f'account = "{account}"',
            f'password = "{password}"',
        ]
    return "\n".join(lines)


RISK = """
[risk.defaults]
max_order_qty = 10000
duplicate_window_s = 0
max_messages_per_s = 100000
"""


def start_fix_stack(
    workdir: Path, sessions: dict[str, tuple[str, str, str]], shards: int = 1, risk: str = ""
) -> OrderStack:
    risk = risk or RISK
    accounts = "".join(
        f"\n[risk.accounts.{acct}]"
        for _, acct, _ in sessions.values()
        if f"[risk.accounts.{acct}]" not in risk
    )
    return start_order_stack(
        workdir,
        shards=shards,
        orders={"syms": SYMS},
        extra_toml=risk + accounts + "\n" + fix_toml(workdir / "fix", sessions),
    )


def fix_port(stack: OrderStack) -> int:
    assert stack.gateway is not None
    return int(stack.gateway.info["fix_port"])


class RawFix:
    """A hand-driven FIX connection: send any bytes, read frames, no session logic."""

    def __init__(self, port: int, sender: str, target: str = "TICKDB") -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sender, self.target = sender, target
        self.seq = 1
        self.framer = Framer(1 << 20)
        self.inbox: list[Message] = []

    def frame(self, msg_type: str, body: list[Any], seq: int | None = None, **hdr: Any) -> bytes:
        seq = self.seq if seq is None else seq
        header: list[Any] = [(49, self.sender), (56, self.target), (34, seq)]
        if hdr.get("poss_dup"):
            header.append((43, "Y"))
            header.append((122, fix_time()))
        header.append((52, hdr.get("sending_time", fix_time())))
        return encode(msg_type, header, body)

    def send(self, msg_type: str, body: list[Any], seq: int | None = None, **hdr: Any) -> None:
        self.sock.sendall(self.frame(msg_type, body, seq, **hdr))
        if seq is None:
            self.seq += 1

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def logon(self, password: str, reset: bool = True, hb: int = 30) -> Message:
        body: list[Any] = [(98, 0), (108, hb), (554, password)]
        if reset:
            body.append((141, "Y"))
        self.send("A", body)
        return self.expect(lambda m: m.msg_type in ("A", "5"))

    def read(self, timeout: float = 10.0) -> Message | None:
        """The next message, or None if the connection closed."""
        self.sock.settimeout(timeout)
        while not self.inbox:
            data = self.sock.recv(65536)
            if not data:
                return None
            for f in self.framer.feed(data):
                if isinstance(f, bytes):
                    self.inbox.append(decode(f))
        return self.inbox.pop(0)

    def expect(self, match: Any, timeout: float = 10.0) -> Message:
        deadline = time.monotonic() + timeout
        seen = []
        while time.monotonic() < deadline:
            msg = self.read(max(0.01, deadline - time.monotonic()))
            if msg is None:
                raise AssertionError(f"connection closed; seen {seen}")
            if match(msg):
                return msg
            seen.append(msg)
        raise AssertionError(f"no matching message; seen {seen}")

    def closed(self, timeout: float = 10.0) -> bool:
        """True once the peer closed the connection (reading what comes before)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.read(max(0.01, deadline - time.monotonic())) is None:
                    return True
            except (ConnectionResetError, TimeoutError):
                return True
        return False

    def close(self) -> None:
        self.sock.close()


def nos(clordid: str, sym: str = "AAPL", side: int = 1, qty: int = 100, price: str = "100") -> list:
    body: list[Any] = [(11, clordid), (55, sym), (54, side), (38, qty), (40, 2), (44, price)]
    return [*body, (59, 0), (60, fix_time())]


def client_settings(store: Path, comp: str) -> SessionSettings:
    return SessionSettings(name="c", sender_comp_id=comp, target_comp_id="TICKDB", store_dir=store)
