"""FIX logons through ``[auth]``: a session names an identity, whose password or token the
client sends in Password (554); a refused logon is a Logout with Text and an audit record,
and an address that keeps failing waits before its next logon is checked. Hand-built frames
over loopback, as in ``test_fix_session.py``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.auth_config import auth_sections, auth_toml, bearer, identity
from support.fix_stack import RISK, SYMS, RawFix, fix_port, nos
from support.harness import wait_until
from support.order_stack import OrderStack, start_order_stack

from fix.codec import Message
from tickdb.config import ConfigError, config_from_dict

IDENTITIES = {
    "desk1": identity(["trade:F1"], "tdb_desk1", password="pw-desk1"),
    "desk2": identity(["trade:F2", "trade:F3"], "tdb_desk2"),
    "ops": identity(["admin"], "tdb_ops"),
}
SESSIONS = {"s1": ("C1", "F1", "desk1"), "s2": ("C2", "F2", "desk2")}


def fix_toml(store: Path) -> str:
    lines = ["[fix]", "enabled = true", "port = 0", f'store_dir = "{store}"']
    for name, (comp, account, who) in SESSIONS.items():
        lines += [
            f"[fix.sessions.{name}]",
            f'sender_comp_id = "{comp}"',
            'target_comp_id = "TICKDB"',
            f'account = "{account}"',
            f'identity = "{who}"',
        ]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrderStack]:
    workdir = tmp_path_factory.mktemp("fix_auth")
    accounts = "".join(f"\n[risk.accounts.{a}]" for _, a, _ in SESSIONS.values())
    running = start_order_stack(
        workdir,
        orders={"syms": SYMS},
        extra_toml=RISK + accounts + "\n" + fix_toml(workdir / "fix") + auth_toml(IDENTITIES),
    )
    yield running
    running.stop()


def logon(
    stack: OrderStack, comp: str, password: str | None, username: str | None = None
) -> tuple[RawFix, Message]:
    """A Logon with Password (554) and Username (553) when given, and its answer."""
    fix = RawFix(fix_port(stack), comp)
    body: list[Any] = [(98, 0), (108, 30), (141, "Y")]
    if password is not None:
        body.append((554, password))
    if username is not None:
        body.append((553, username))
    fix.send("A", body)
    return fix, fix.expect(lambda m: m.msg_type in ("A", "5"))


def logon_once_allowed(stack: OrderStack, comp: str, password: str) -> tuple[RawFix, Message]:
    """Log on, waiting out the backoff an earlier refusal from this address left."""
    tries: list[tuple[RawFix, Message]] = []

    def attempt() -> bool:
        if tries:
            tries[-1][0].close()
        tries.append(logon(stack, comp, password))
        return "too many failed logons" not in tries[-1][1].get(58, "")

    wait_until(attempt, timeout=15, what="the logon backoff to pass")
    return tries[-1]


def audit(stack: OrderStack, **params: Any) -> list[dict[str, Any]]:
    reply = httpx.get(stack.url + "/audit", params=params, headers=bearer("tdb_ops"))
    assert reply.status_code == 200, reply.text
    return [r for r in reply.json()["records"] if r["port"] == "fix"]


def test_a_logon_with_the_identitys_password_or_token(stack):
    fix, reply = logon_once_allowed(stack, "C1", "pw-desk1")
    assert reply.msg_type == "A"
    fix.send("D", nos("auth-1", qty=10))
    report = fix.expect(lambda m: m.msg_type == "8" and m.get(11) == "auth-1")
    assert report.get(1) == "F1" and report.get(150) == "0"
    fix.send("5", [])
    fix.expect(lambda m: m.msg_type == "5")
    assert fix.closed()
    fix.close()
    fix, reply = logon_once_allowed(stack, "C2", "tdb_desk2")  # a token as the password
    assert reply.msg_type == "A"
    fix.close()
    ok = [r for r in audit(stack, action="login") if r["ok"]]
    assert {(r["who"], r["session"], r["account"]) for r in ok} >= {
        ("desk1", "s1", "F1"),
        ("desk2", "s2", "F2"),
    }


@pytest.mark.parametrize(
    ("password", "username"),
    [
        ("wrong", None),
        (None, None),  # no Password (554) at all
        ("tdb_desk2", None),  # another identity's token
        ("pw-desk1", "desk2"),  # Username (553) naming someone else
    ],
)
def test_a_refused_logon_is_a_logout_with_text_and_an_audit_record(stack, password, username):
    tries: list[RawFix] = []

    def refused_for_credentials() -> bool:
        if tries:
            tries[-1].close()
        fix, reply = logon(stack, "C1", password, username)
        tries.append(fix)
        assert reply.msg_type == "5"
        return "invalid username or password" in reply.get(58)

    before = len([r for r in audit(stack, action="login") if not r["ok"]])
    wait_until(refused_for_credentials, timeout=15, what="a checked (not throttled) refusal")
    assert tries[-1].closed()
    tries[-1].close()
    refusals = [r for r in audit(stack, action="login") if not r["ok"]]
    assert len(refusals) > before
    last = refusals[-1]
    assert last["session"] == "s1" and last["account"] == "F1"
    assert last["reason"] == "Logon refused: invalid username or password"
    assert last["where"].startswith("127.0.0.1:") and last["ts"].endswith("Z")
    assert last["who"] == (username or "desk1")


def test_failures_from_an_address_are_throttled_then_forgiven(stack):
    fix, reply = logon_once_allowed(stack, "C2", "wrong")
    assert reply.msg_type == "5"
    fix.close()
    # Right away, even the right token is refused unchecked: the address must wait.
    fix, reply = logon(stack, "C2", "tdb_desk2")
    fix.close()
    if reply.msg_type == "5":  # unless the machine was slow enough for the wait to pass
        assert "too many failed logons" in reply.get(58)
        throttled = [r for r in audit(stack, action="login") if r.get("reason") == "throttled"]
        assert throttled and throttled[-1]["who"] == "desk2"
    fix, reply = logon_once_allowed(stack, "C2", "tdb_desk2")
    assert reply.msg_type == "A"
    fix.close()


def test_the_gateway_log_names_refused_logons(stack):
    assert stack.gateway is not None
    assert "logon from 127.0.0.1:" in stack.gateway.log()


# -- the config ------------------------------------------------------------------------------
def config_with(session: dict[str, str]) -> Any:
    raw: dict[str, Any] = {"fix": {"sessions": {"s": session}}, "auth": {"mode": "on"}}
    raw["auth"]["identities"] = {
        name.split(".")[-1]: entry
        for name, entry in auth_sections(IDENTITIES).items()
        if name.startswith("auth.identities.")
    }
    return config_from_dict(raw)


BASE = {"sender_comp_id": "C", "target_comp_id": "T", "account": "F1"}


@pytest.mark.parametrize(
    ("session", "message"),
    [
        (BASE, "fix.sessions.s.identity: required with [auth]"),
        ({**BASE, "identity": "nobody"}, "no [auth.identities.nobody]"),
        ({**BASE, "identity": "desk2"}, "'desk2' may not trade account 'F1'"),
        ({**BASE, "identity": "desk1", "password": "x"}, "fix.sessions.s.password: not used"),
    ],
)
def test_with_auth_on_a_session_names_an_identity_that_may_trade_its_account(session, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        config_with(session)
    assert config_with({**BASE, "identity": "desk1"}).fix.sessions["s"]["identity"] == "desk1"
