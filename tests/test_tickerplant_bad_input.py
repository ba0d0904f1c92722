"""Bad input gets a clear error to the sender, is counted and logged; everyone else carries on."""

from __future__ import annotations

import json
import os

import pyarrow as pa
import pytest
import zmq
from support.harness import start_tp

from tickerplant.discovery import request
from tickerplant.ingest import encode_stream
from tickerplant.protocol import ERR, UPD, encode_upd
from tickerplant.publisher import Publisher, PublishError
from tickerplant.subscriber import Subscriber, SubscriptionError, Update


def send_raw(address: str, frames: list[bytes]) -> list[bytes]:
    ctx = zmq.Context()
    try:
        return request(ctx, address, frames, 5)
    finally:
        ctx.term()


def upd(batch: int, table: bytes, payload: bytes) -> list[bytes]:
    # A fresh publisher id each time, so no case is mistaken for a resend of another.
    return [encode_upd(os.urandom(16), batch, batch, table, payload)]


def stream(columns: dict[str, pa.Array]) -> bytes:
    table = pa.table(columns)
    return encode_stream(table, table.schema)


GOOD = {"sym": pa.array(["AAPL"]), "price": pa.array([1.0]), "size": pa.array([1], pa.int64())}
CASES = {
    "unknown table": (upd(1, b"trades", stream(GOOD)), "unknown table 'trades'"),
    "missing column": (
        upd(1, b"trade", stream({k: v for k, v in GOOD.items() if k != "size"})),
        "missing columns ['size']",
    ),
    "wrong type": (
        upd(1, b"trade", stream({**GOOD, "size": pa.array(["x"])})),
        "column 'size' must be long",
    ),
    "extra column": (
        upd(1, b"trade", stream({**GOOD, "venue": pa.array(["X"])})),
        "unknown columns ['venue']",
    ),
    "not arrow": (upd(1, b"trade", b"sym=AAPL,price=1.0"), "not a valid Arrow IPC stream"),
    "truncated arrow": (upd(1, b"trade", stream(GOOD)[:-40]), "not a valid Arrow IPC stream"),
    # Over max_message_bytes (1 MB here) but under the ingest frame cap, which is 64 KiB
    # more: refused with an error. A frame over the cap closes the connection instead
    # (tests/test_tickerplant_frame_cap.py).
    "oversized": (
        upd(
            1,
            b"trade",
            stream(
                {
                    "sym": pa.array(["A" * 1010] * 1000),
                    "price": pa.array([1.0] * 1000),
                    "size": pa.array([1] * 1000, pa.int64()),
                }
            ),
        ),
        "exceeds max_message_bytes",
    ),
    "short UPD frame": ([UPD + b"short"], "malformed UPD"),
    "tag and body in two frames": ([UPD, b"short"], "malformed UPD"),
    "extra frames": ([UPD, b"a", b"b"], "malformed UPD"),
    "unknown request": ([b"DROP TABLE"], "unknown request"),
}


@pytest.fixture(scope="module", params=["c", "python"])
def tp(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A tickerplant with the C row packer, and one with its pure-Python fallback."""
    from tickerplant.rowpack import PURE_PYTHON_ENV, compiled

    if request.param == "c" and compiled() is None:
        pytest.skip("tickerplant._rowpack is not built")
    workdir = tmp_path_factory.mktemp("badinput")
    with pytest.MonkeyPatch.context() as env:
        env.setenv(PURE_PYTHON_ENV, "1" if request.param == "python" else "0")
        proc = start_tp(workdir, tickerplant={"max_message_bytes": 1_000_000})
    yield proc
    proc.stop()


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_gets_a_clear_error_and_the_tickerplant_keeps_serving(tp, case: str) -> None:  # type: ignore[no-untyped-def]
    frames, message = CASES[case]
    address = tp.info["address"]
    before = json.loads(send_raw(address, [b"STATS"])[1])
    reply = send_raw(address, frames)
    assert reply[0] == ERR
    assert message in reply[2].decode()
    after = json.loads(send_raw(address, [b"STATS"])[1])
    assert after["rejected"] + after["malformed"] == before["rejected"] + before["malformed"] + 1
    assert message in tp.log()
    # A well-behaved publisher and subscriber are unaffected.
    sub = Subscriber(address, tables=["trade"])
    with Publisher(address) as pub:
        pub.publish("trade", {"sym": "IBM", "price": 2.0, "size": 7})
    got = sub.poll(5)
    assert isinstance(got, Update) and got.data.column("size").to_pylist() == [7]
    assert after["seq"] == before["seq"]  # nothing bad reached the journal
    sub.close()


def test_publisher_raises_refusals_on_flush(tp) -> None:  # type: ignore[no-untyped-def]
    with Publisher(tp.info["address"]) as pub:
        pub.publish_ipc("trade", b"garbage")
        pub.publish("trade", {"sym": "IBM", "price": 2.0, "size": 7})
        with pytest.raises(PublishError, match=r"batch 1: .*not a valid Arrow IPC stream"):
            pub.flush()
        assert pub.acked == 2  # the refusal does not hold back the good batch behind it


def test_client_side_type_errors_name_the_column(tp) -> None:  # type: ignore[no-untyped-def]
    with Publisher(tp.info["address"]) as pub, pytest.raises(ValueError, match="'price'"):
        pub.publish("trade", {"sym": "IBM", "price": "cheap", "size": 7})


def test_subscription_to_unknown_table_is_refused(tp) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SubscriptionError, match="unknown tables"):
        Subscriber(tp.info["address"], tables=["nope"])
