"""The publish (XPUB) and replay sockets read no frame over their caps (ZeroMQ MAXMSGSIZE),
against a real tickerplant process: the ingest socket's bound (test_tickerplant_frame_cap)
for subscriptions and replay requests.

Before the caps, a subscription or a replay request of any announced size was buffered in
full before the tickerplant saw it. Here both caps are ``CAP``: a client announcing 300 MiB
is cut off at the frame's header, and while it tries to send it the tickerplant's peak
resident memory may grow by at most ``RSS_GROWTH_CAP``; a subscriber and a replay that were
there all along carry on.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq
from support import zmtp_raw
from support.harness import Proc, peak_rss, start_tp, wait_until

from tickerplant.discovery import request
from tickerplant.protocol import END, ERR, HELLO, REPLAY, STATS
from tickerplant.publisher import Publisher
from tickerplant.subscriber import Subscriber, SubscriptionError, Update

CAP = 4096
ANNOUNCED = 300 << 20  # what the hostile client says its frame holds
RSS_GROWTH_CAP = 64 << 20  # the most the tickerplant's peak memory may grow meanwhile


@pytest.fixture(scope="module")
def tp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    caps = {"publish_max_frame_bytes": CAP, "replay_max_frame_bytes": CAP}
    proc = start_tp(tmp_path_factory.mktemp("tp"), tickerplant=caps)
    yield proc
    assert proc.alive(), proc.log()
    proc.stop()


def ask(tp: Proc, tag: bytes) -> dict[str, Any]:
    ctx: zmq.Context[Any] = zmq.Context()
    try:
        return dict(json.loads(request(ctx, tp.info["address"], [tag], 5)[1]))
    finally:
        ctx.term()


def publish_one(tp: Proc, sym: str) -> None:
    with Publisher(tp.info["address"]) as pub:
        pub.publish("trade", sym=sym, price=1.0, size=1)
        pub.flush()


def next_syms(sub: Subscriber) -> list[str]:
    message = sub.poll(5)
    while message is not None and not isinstance(message, Update):
        message = sub.poll(5)
    assert message is not None, "no update"
    return list(message.data.column("sym").to_pylist())


def replay(endpoint: str, body: bytes) -> list[bytes]:
    ctx: zmq.Context[Any] = zmq.Context()
    try:
        dealer = ctx.socket(zmq.DEALER)
        dealer.linger = 0
        dealer.connect(endpoint)
        dealer.send_multipart([REPLAY, body])
        frames: list[bytes] = []
        while dealer.poll(5000):
            frames = dealer.recv_multipart()
            if frames[0] in (END, ERR):
                return frames
        raise AssertionError(f"no END or ERR (last: {frames[:1]!r})")
    finally:
        ctx.destroy(linger=0)


def test_hello_names_both_caps(tp: Proc) -> None:
    hello = ask(tp, HELLO)
    assert hello["max_subscription_bytes"] == CAP
    assert hello["max_replay_request_bytes"] == CAP


@pytest.mark.parametrize("port, socket_type", [("publish", b"SUB"), ("replay", b"DEALER")])
def test_a_300_mib_frame_is_cut_off_at_its_header(tp: Proc, port: str, socket_type: bytes) -> None:
    hello = ask(tp, HELLO)
    sub = Subscriber(tp.info["address"], tables=["trade"])
    publish_one(tp, "A")
    assert next_syms(sub) == ["A"]
    memory_before = peak_rss(tp.popen.pid)

    sent = zmtp_raw.send_oversized(hello[port], ANNOUNCED, socket_type)
    # What the kernels' socket buffers took before the close is all that went.
    assert sent < RSS_GROWTH_CAP, f"{sent >> 20} MiB went to the {port} port before the close"
    assert peak_rss(tp.popen.pid) - memory_before < RSS_GROWTH_CAP

    # The subscriber that was there all along goes on, and replay answers.
    publish_one(tp, "B")
    assert next_syms(sub) == ["B"]
    sub.close()
    assert replay(hello["replay"], b'{"after": 0}')[0] == END
    assert tp.alive(), tp.log()


def test_one_byte_over_the_replay_cap_disconnects_and_below_it_an_error_answers(
    tp: Proc,
) -> None:
    endpoint = ask(tp, HELLO)["replay"]
    # Under the cap, not a request: an error to the sender, as before.
    refused = replay(endpoint, b"x" * (CAP - 100))
    assert refused[0] == ERR and b"bad replay request" in refused[1]
    ctx: zmq.Context[Any] = zmq.Context()
    try:
        dealer = ctx.socket(zmq.DEALER)
        monitor = dealer.get_monitor_socket(zmq.EVENT_DISCONNECTED)
        dealer.connect(endpoint)
        dealer.send(bytes(CAP + 1))  # one frame over the cap: closed, nothing answers
        assert monitor.poll(5000), "the tickerplant did not close the connection"
        assert not dealer.poll(200)
    finally:
        ctx.destroy(linger=0)
    assert replay(endpoint, b'{"after": 0}')[0] == END


def test_a_subscription_over_the_cap_is_disconnected(tp: Proc) -> None:
    ctx: zmq.Context[Any] = zmq.Context()
    try:
        sub = ctx.socket(zmq.SUB)
        monitor = sub.get_monitor_socket(zmq.EVENT_DISCONNECTED)
        sub.connect(ask(tp, HELLO)["publish"])
        sub.subscribe(b"upd/trade/syms=" + b"S," * CAP)
        assert monitor.poll(5000), "the tickerplant did not close the connection"
    finally:
        ctx.destroy(linger=0)
    topics = ask(tp, STATS)["topics"]
    publish_one(tp, "C")  # the tickerplant goes on
    wait_until(lambda: ask(tp, STATS)["seq"] >= 1, what="the row journaled")
    assert ask(tp, STATS)["topics"] == topics  # the cut-off subscription never arrived


def test_the_subscriber_refuses_a_selection_over_the_caps_before_sending(tp: Proc) -> None:
    many = [f"SYM{i:05d}" for i in range(CAP // 8)]
    with pytest.raises(SubscriptionError, match="over the tickerplant's max_subscription_bytes"):
        Subscriber(tp.info["address"], tables=["trade"], syms=many)
    few = Subscriber(tp.info["address"], tables=["trade"], syms=many[:10])
    few.close()


def test_a_cap_below_the_minimum_is_a_config_error(tmp_path: Path) -> None:
    from tickdb.config import ConfigError, load_config

    config = tmp_path / "tp.toml"
    for name in ("publish_max_frame_bytes", "replay_max_frame_bytes"):
        config.write_text(f"[tickerplant]\n{name} = 100\n")
        with pytest.raises(ConfigError, match=rf"tickerplant\.{name}: at least 1024"):
            load_config(config)
