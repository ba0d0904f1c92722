"""CURVE on the tickerplant's three ZeroMQ ports (ingest, publish, replay), against a real
tickerplant process: no key or an unknown key gets nothing (and is logged and counted), a
known key without the role is refused, the right role works."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq
from support.auth_config import FAST
from support.curve_clients import nothing_arrives, raw_socket, request, wait_for_log
from support.curve_keys import STRANGER, CurveKeys
from support.harness import Proc, free_port, start_tp, wait_until

from qipc import QClient, Symbol
from tickerplant.discovery import TickerplantRefused, TickerplantUnavailable, answer
from tickerplant.discovery import request as tp_request
from tickerplant.protocol import ERR, HELLO, REPLAY, ROLL, STATS, encode_upd, topic_for
from tickerplant.publisher import Publisher
from tickerplant.subscriber import Subscriber, SubscriptionError, Update

ROLES = {
    "feed": ["publish:trade"],
    "reader": ["read:trade"],
    "quoter": ["read:quote"],
    "trader": ["trade:A1"],  # no read, publish or admin role
    "venue": ["publish:fill"],
    "admin": ["admin"],
    "qfeed": ["publish:trade", "read:trade"],  # a q feedhandler, on the kdb+ port
}
TRADE = {"sym": "AAPL", "price": 189.5, "size": 100}


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> CurveKeys:
    return CurveKeys(tmp_path_factory.mktemp("keys"), ROLES)


@pytest.fixture(scope="module")
def tp(tmp_path_factory: pytest.TempPathFactory, keys: CurveKeys) -> Iterator[Proc]:
    sections = keys.sections()
    sections["auth.identities.qfeed"]["password"] = FAST.hash("pw")
    sections["tickerplant"] = {"kdb_port": free_port()}
    proc = start_tp(tmp_path_factory.mktemp("tp"), **sections)
    yield proc
    proc.stop()


def stats(tp: Proc, keys: CurveKeys) -> dict[str, Any]:
    ctx: zmq.Context[Any] = zmq.Context()
    try:
        reply = tp_request(ctx, tp.info["address"], [STATS], 10.0, keys.client("admin"))
    finally:
        ctx.term()
    return dict(json.loads(answer(reply, "tp")))


def test_the_right_roles_publish_subscribe_replay_and_ask(tp: Proc, keys: CurveKeys) -> None:
    address = tp.info["address"]
    with Publisher(address, curve=keys.client("feed"), timeout_s=10) as pub:
        assert pub.hello.raw["access"] == {
            "identity": "feed",
            "read": [],
            "publish": ["trade"],
            "trade": [],
            "admin": False,
        }
        live = Subscriber(address, tables=["trade"], curve=keys.client("reader"))
        wait_until(lambda: counted_topics(tp, keys), what="the reader's subscription")
        pub.publish("trade", **TRADE)
        pub.flush()
        message = live.poll(10)
        assert isinstance(message, Update) and message.data.column("sym").to_pylist() == ["AAPL"]
        live.close()
    # A replay from the start of the session, over the replay port.
    with Subscriber(
        address, tables=["trade"], start="session", curve=keys.client("reader")
    ) as replayed:
        assert replayed.replayed_records >= 1
    assert stats(tp, keys)["zap_allowed"] >= 3


def counted_topics(tp: Proc, keys: CurveKeys) -> bool:
    return int(stats(tp, keys)["topics"]) >= 1


# -- a known key without the role -------------------------------------------------------------
def test_publishing_a_table_without_its_role_is_refused(tp: Proc, keys: CurveKeys) -> None:
    with (
        Publisher(tp.info["address"], curve=keys.client("feed"), timeout_s=10) as pub,
        pytest.raises(PermissionError, match="'feed' may not publish quote"),
    ):
        pub.publish("quote", sym="AAPL", bid=1.0, ask=1.1, bsize=1, asize=1)
    # A client that does not ask first is refused by the tickerplant, with the reason.
    with raw_socket(zmq.DEALER, tp.info["address"], keys.client("feed")) as dealer:
        frame = encode_upd(b"p" * 16, 1, 1, b"quote", b"not even arrow")
        reply = request(dealer, [frame])
        assert reply[0] == ERR and b"'feed' may not publish quote" in reply[-1]
    wait_for_log(tp.log, "'feed' may not publish quote")


@pytest.mark.parametrize(("who", "tag"), [("trader", STATS), ("reader", ROLL), ("feed", ROLL)])
def test_control_requests_need_their_role(tp: Proc, keys: CurveKeys, who: str, tag: bytes):
    ctx: zmq.Context[Any] = zmq.Context()
    try:
        with pytest.raises(TickerplantRefused, match=f"'{who}' may not ask for {tag.decode()}"):
            answer(tp_request(ctx, tp.info["address"], [tag], 10.0, keys.client(who)), "tp")
    finally:
        ctx.term()


def test_a_subscription_to_an_unreadable_table_gets_nothing(tp: Proc, keys: CurveKeys) -> None:
    address = tp.info["address"]
    with pytest.raises(SubscriptionError, match="'quoter' may not read trade"):
        Subscriber(address, tables=["trade"], curve=keys.client("quoter"))
    refused_before = int(stats(tp, keys)["refused_subscriptions"])
    topic = topic_for(["trade"])
    with (
        raw_socket(zmq.SUB, tp.info["publish"], keys.client("quoter"), topic) as sneaky,
        Subscriber(address, tables=["trade"], curve=keys.client("reader")) as reader,
        Publisher(address, curve=keys.client("feed"), timeout_s=10) as pub,
    ):
        wait_until(
            lambda: int(stats(tp, keys)["refused_subscriptions"]) > refused_before,
            what="the refused subscription",
        )
        pub.publish("trade", **TRADE)
        pub.flush()
        assert reader.poll(10) is not None, "the reader of trade gets it"
        assert nothing_arrives(sneaky), "a subscriber that may not read trade got a message"
    wait_for_log(tp.log, "may not read trade")


def test_a_replay_of_an_unreadable_table_is_refused(tp: Proc, keys: CurveKeys) -> None:
    body = json.dumps({"after": 0, "tables": ["trade"]}).encode()
    with raw_socket(zmq.DEALER, tp.info["replay"], keys.client("quoter")) as dealer:
        reply = request(dealer, [REPLAY, body])
    assert reply[0] == ERR and b"forbidden: 'quoter' may not read trade" in reply[1]


@pytest.mark.parametrize("port", ["publish", "replay"])
def test_an_identity_without_a_read_role_cannot_connect(tp: Proc, keys: CurveKeys, port: str):
    denied = int(stats(tp, keys)["zap_denied_role"])
    kind, topic = (zmq.SUB, b"") if port == "publish" else (zmq.DEALER, None)
    with raw_socket(kind, tp.info[port], keys.client("feed"), topic) as sock:
        if port == "replay":
            sock.send_multipart([REPLAY, b"{}"])
        wait_until(lambda: int(stats(tp, keys)["zap_denied_role"]) > denied, what="a denial")
        assert nothing_arrives(sock)
    wait_for_log(tp.log, f"'feed' has no read or trade role, which the {port} port needs")


def fill(account: str, exec_id: str) -> dict[str, Any]:
    return {
        "sym": "AAPL", "account": account, "strategy": "", "side": "buy", "qty": 10,
        "price": 1.5, "exec_id": exec_id, "order_id": "o1", "clordid": "c1",
        "liquidity": "taker", "venue": "0/1", "in_seq": 1,
    }  # fmt: skip


def test_a_trader_follows_its_own_accounts_order_flow_and_no_one_elses(
    tp: Proc, keys: CurveKeys
) -> None:
    address, trader = tp.info["address"], keys.client("trader")
    # Without a read role: only by accounts it trades, never the whole table or another's.
    for refused in ({}, {"accounts": ["A2"]}, {"accounts": ["A1", "A2"]}):
        with pytest.raises(SubscriptionError, match="'trader' may not read fill"):
            Subscriber(address, tables=["fill"], curve=trader, **refused)  # type: ignore[arg-type]
    live = Subscriber(address, tables=["fill"], accounts=["A1"], curve=trader, timeout_s=10)
    with Publisher(address, curve=keys.client("venue"), timeout_s=10) as pub:
        wait_until(lambda: live.live or live.poll(0.05) is not None, what="the subscription")
        pub.publish("fill", fill("A2", "x-other"))
        pub.publish("fill", fill("A1", "x-mine"))
        pub.flush()
    message = live.poll(10)
    assert isinstance(message, Update)
    assert message.data.column("exec_id").to_pylist() == ["x-mine"]
    live.close()
    # The journal too, over the replay port: A1's fills only.
    with Subscriber(
        address, tables=["fill"], accounts=["A1"], start="session", curve=trader
    ) as replayed:
        seen = []
        while (got := replayed.poll(0)) is not None:
            if isinstance(got, Update):
                seen += got.data.column("account").to_pylist()
        assert seen and set(seen) == {"A1"}
    # A raw subscription to every account, which skips the client's check, gets nothing.
    refusals = tp.log().count("refused subscription")
    with raw_socket(zmq.SUB, tp.info["publish"], trader, topic_for(["fill"])) as sock:
        wait_until(lambda: tp.log().count("refused subscription") > refusals, what="refusal")
        with Publisher(address, curve=keys.client("venue"), timeout_s=10) as pub:
            pub.publish("fill", fill("A1", "x-mine-2"))
            pub.flush()
        assert nothing_arrives(sock)


# -- no key, an unknown key ---------------------------------------------------------------------
PORTS = ["address", "publish", "replay"]
NAMES = {"address": "ingest", "publish": "publish", "replay": "replay"}


def _probe(sock: zmq.Socket[Any], port: str) -> None:
    if port == "address":
        sock.send(HELLO)
    elif port == "replay":
        sock.send_multipart([REPLAY, b"{}"])


@pytest.mark.parametrize("port", PORTS)
def test_a_client_without_a_key_gets_nothing(tp: Proc, keys: CurveKeys, port: str) -> None:
    failed = int(stats(tp, keys)["handshake_failed"])
    kind = zmq.SUB if port == "publish" else zmq.DEALER
    with raw_socket(kind, tp.info[port], None, b"" if port == "publish" else None) as sock:
        _probe(sock, port)
        wait_until(lambda: int(stats(tp, keys)["handshake_failed"]) > failed, what="the failure")
        assert nothing_arrives(sock)
    wait_for_log(tp.log, f"failed the CURVE handshake on the {NAMES[port]} port")


@pytest.mark.parametrize("port", PORTS)
def test_an_unknown_key_gets_nothing(tp: Proc, keys: CurveKeys, port: str) -> None:
    denied = int(stats(tp, keys)["zap_denied"])
    kind = zmq.SUB if port == "publish" else zmq.DEALER
    stranger = keys.client(STRANGER)
    with raw_socket(kind, tp.info[port], stranger, b"" if port == "publish" else None) as sock:
        _probe(sock, port)
        wait_until(lambda: int(stats(tp, keys)["zap_denied"]) > denied, what="the ZAP denial")
        assert nothing_arrives(sock)
    wait_for_log(tp.log, f"denied CURVE key {keys.pairs[STRANGER].public}")


def test_the_public_clients_say_why_they_get_no_answer(tp: Proc, keys: CurveKeys) -> None:
    with pytest.raises(TickerplantUnavailable, match="CURVE: is this client's key in"):
        Publisher(tp.info["address"], curve=keys.client(STRANGER), timeout_s=1)


def test_the_environment_gives_a_client_its_keys(
    tp: Proc, keys: CurveKeys, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from tickdb import curve_links

    monkeypatch.setattr(curve_links, "_installed", None)
    for name, value in keys.env("reader").items():
        monkeypatch.setenv(name, value)
    with Subscriber(tp.info["address"], tables=["trade"], start="session") as sub:
        assert sub.hello.raw["access"]["identity"] == "reader"


def test_the_kdb_port_publishes_and_subscribes_as_the_components(tp: Proc, keys: CurveKeys):
    """The kdb+ port's own Publisher and Subscriber reach the ZeroMQ ports with CURVE."""
    port = int(tp.info["kdb_port"])
    row = [Symbol("Q"), np.float64(1), np.int64(7)]
    with (
        QClient("127.0.0.1", port, user="qfeed", password="pw", timeout=10) as sub,
        QClient("127.0.0.1", port, user="qfeed", password="pw", timeout=10) as feed,
    ):
        sub.sync(".u.sub", Symbol("trade"), Symbol(""))
        assert feed.sync(".u.upd", Symbol("trade"), row) is None
        pushed = sub.receive(10)[1]
    assert [str(x) for x in pushed[:2]] == ["upd", "trade"]
