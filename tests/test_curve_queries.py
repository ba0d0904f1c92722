"""CURVE on the RDB's and the HDB's query ports, against real processes: no key or an
unknown key gets nothing (logged and counted), an identity without a read role cannot
connect, one without read on a table is refused its queries, the right role works."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import zmq
from support.curve_clients import nothing_arrives, raw_socket, wait_for_log
from support.curve_keys import COMPONENT, STRANGER, CurveKeys
from support.harness import EPHEMERAL_TP, Proc, wait_until, write_config
from support.rdb_stack import trades

from hdb.protocol import RELOAD, RELOADED
from queries.service import QueryClient, QueryError
from queries.service_protocol import INFO, encode_request
from tickerplant.publisher import Publisher

ROLES = {
    "feed": ["publish:trade"],
    "reader": ["read:trade"],
    "quoter": ["read:quote"],
    "trader": ["trade:A1"],
}
PORTS = ["rdb", "hdb"]


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> CurveKeys:
    return CurveKeys(tmp_path_factory.mktemp("keys"), ROLES)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, keys: CurveKeys) -> Iterator[dict[str, Proc]]:
    tmp = tmp_path_factory.mktemp("stack")
    config = write_config(
        tmp / "stack.toml",
        {
            "tickerplant": dict(EPHEMERAL_TP),
            "rdb": {"address": "tcp://127.0.0.1:0"},
            "hdb": {"address": "tcp://127.0.0.1:0"},
            **keys.sections(),
        },
    )
    common = ["--config", str(config), "--data-dir", str(tmp / "data")]
    procs: dict[str, Proc] = {}
    try:
        procs["tp"] = Proc(["tp", *common], tmp, "tp")
        procs["hdb"] = Proc(["hdb", *common, "--shard", "all"], tmp, "hdb")
        tp_address = str(procs["tp"].info["address"])
        hdb_address = str(procs["hdb"].info["address"])
        procs["rdb"] = Proc(["rdb", *common, "--tp", tp_address, "--hdb", hdb_address], tmp, "rdb")
        with Publisher(tp_address, curve=keys.client("feed"), timeout_s=10) as pub:
            pub.publish("trade", trades(0, 10))
            pub.flush()
        yield procs
    finally:
        for proc in reversed(procs.values()):
            proc.stop()


def client(stack: dict[str, Proc], port: str, keys: CurveKeys, who: str) -> QueryClient:
    return QueryClient(str(stack[port].info["address"]), timeout_s=5.0, curve=keys.client(who))


def info(stack: dict[str, Proc], port: str, keys: CurveKeys) -> dict[str, Any]:
    with client(stack, port, keys, COMPONENT) as components:
        return dict(components.info()["query_service"])


def test_the_components_and_a_reader_query(stack: dict[str, Proc], keys: CurveKeys) -> None:
    with client(stack, "rdb", keys, "reader") as reader:
        count = lambda: reader.query("select count(*) as n from trade").table["n"][0].as_py()  # noqa: E731
        wait_until(lambda: count() == 10, what="the RDB's ten trades")
    with client(stack, "hdb", keys, "reader") as reader:
        assert reader.query("select 42 as x").table["x"][0].as_py() == 42
    # The RDB subscribed, as the components' identity; the HDB answers its RELOAD.
    with client(stack, "hdb", keys, COMPONENT) as components:
        assert components.call(RELOAD)[0] == RELOADED


@pytest.mark.parametrize("port", PORTS)
def test_a_table_without_read_is_refused(stack: dict[str, Proc], keys: CurveKeys, port: str):
    with (
        client(stack, port, keys, "quoter") as quoter,
        pytest.raises(QueryError, match="'quoter' may not read trade") as refused,
    ):
        quoter.query("select count(*) from (select * from trade) t")
    assert refused.value.kind == "forbidden"
    with client(stack, port, keys, "quoter") as quoter:
        quoter.query("select count(*) from quote")  # its own table is fine


def test_reload_needs_admin(stack: dict[str, Proc], keys: CurveKeys) -> None:
    with (
        client(stack, "hdb", keys, "reader") as reader,
        pytest.raises(QueryError, match="'reader' may not ask for RELOAD"),
    ):
        reader.call(RELOAD)


@pytest.mark.parametrize("port", PORTS)
def test_an_identity_without_a_read_role_cannot_connect(
    stack: dict[str, Proc], keys: CurveKeys, port: str
) -> None:
    denied = info(stack, port, keys)["zap_denied_role"]
    endpoint = str(stack[port].info["address"])
    with raw_socket(zmq.DEALER, endpoint, keys.client("trader")) as sock:
        sock.send_multipart(encode_request("select 1", 1.0, None))
        wait_until(lambda: info(stack, port, keys)["zap_denied_role"] > denied, what="denial")
        assert nothing_arrives(sock)
    wait_for_log(stack[port].log, "'trader' has no read role")


@pytest.mark.parametrize("port", PORTS)
@pytest.mark.parametrize("who", [None, STRANGER])
def test_no_key_or_an_unknown_key_gets_nothing(
    stack: dict[str, Proc], keys: CurveKeys, port: str, who: str | None
) -> None:
    counter = "handshake_failed" if who is None else "zap_denied"
    before = info(stack, port, keys)[counter]
    endpoint = str(stack[port].info["address"])
    with raw_socket(zmq.DEALER, endpoint, keys.client(who) if who else None) as sock:
        sock.send(INFO)
        wait_until(lambda: info(stack, port, keys)[counter] > before, what=counter)
        assert nothing_arrives(sock)
    expected = (
        f"denied CURVE key {keys.pairs[STRANGER].public}"
        if who
        else "failed the CURVE handshake on the"
    )
    wait_for_log(stack[port].log, expected)


def test_the_client_says_why_it_got_no_reply(stack: dict[str, Proc], keys: CurveKeys) -> None:
    with (
        QueryClient(
            str(stack["rdb"].info["address"]), timeout_s=0.3, curve=keys.client(STRANGER)
        ) as stranger,
        pytest.raises(QueryError, match="CURVE key refused"),
    ):
        stranger.info()


def test_the_rdb_subscribes_as_the_components(stack: dict[str, Proc]) -> None:
    wait_for_log(stack["tp"].log, "is 'tickdb'")
