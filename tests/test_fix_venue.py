"""The FIX initiator venue adapter: shard 0 of a stack routes its orders over FIX to an
"external exchange", which is a second tickdb stack (its gateway's FIX acceptor with the
built-in venue behind it). A FIX client of the external exchange (STREET) trades against
what the adapter sends. Orders, cancels, replaces and mass cancels go through; killing the
adapter and dropping its connection never sends an order twice."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.fix_stack import RISK, fix_toml
from support.harness import free_port, wait_until
from support.order_stack import OrderStack, start_order_stack

from fix.client import FixClient
from fix.codec import Field, fix_time
from gateway.client import Client
from tickerplant.subscriber import Subscriber, Update

SYMS = ["AAPL", "MSFT", "GOOG"]
EXT_SESSIONS = {"adapter": ("OURS", "X1", "xpw"), "street": ("STREET", "X2", "spw")}


def ext_toml(workdir: Path, port: int) -> str:
    accounts = "\n[risk.accounts.X1]\n[risk.accounts.X2]\n"
    fix = fix_toml(workdir / "fix", EXT_SESSIONS).replace("port = 0", f"port = {port}")
    return RISK + accounts + "\n" + fix


def our_toml(workdir: Path, port: int) -> str:
    return (
        RISK
        + "\n[risk.accounts.A1]\n[risk.accounts.A2]\n"
        + f'\n[fix]\nstore_dir = "{workdir / "fix"}"\n'
        + '\n[fix.venues.ext]\nshard = 0\nhost = "127.0.0.1"\n'
        + f"port = {port}\n"
        + 'sender_comp_id = "OURS"\ntarget_comp_id = "TICKDB"\npassword = "xpw"\n'
        + "reconnect_s = 0.2\n"
    )


class Pair:
    def __init__(self, root: Path) -> None:
        self.fix_port = free_port()
        for side in ("ext", "ours"):
            (root / side).mkdir()
        self.ext = start_order_stack(
            root / "ext", orders={"syms": SYMS}, extra_toml=ext_toml(root / "ext", self.fix_port)
        )
        try:
            self.ours = start_order_stack(
                root / "ours",
                orders={"syms": SYMS},
                extra_toml=our_toml(root / "ours", self.fix_port),
            )
        except Exception:
            self.ext.stop()
            raise

    def stop(self) -> None:
        self.ours.stop()
        self.ext.stop()


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    running = Pair(tmp_path_factory.mktemp("fixvenue"))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def street(pair: Pair) -> Iterator[FixClient]:
    c = FixClient("127.0.0.1", pair.fix_port, "STREET", "TICKDB", password="spw")
    c.wait_logged_on()
    yield c
    c.close()


def rows(stack: OrderStack, table: str = "order", **match: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    with Subscriber(stack.tp_address, tables=[table], start="journal") as sub:
        while (message := sub.poll(0)) is not None:
            if isinstance(message, Update):
                found += [
                    r for r in message.data.to_pylist() if all(r[k] == v for k, v in match.items())
                ]
    return found


def ext_requests(pair: Pair) -> Counter[str]:
    """How many times each ClOrdID reached the external exchange as a new order."""
    reqs = rows(pair.ext, "order_request", account="X1", request="new")
    return Counter(r["clordid"] for r in reqs)


def order_state(client: Client, account: str, clordid: str, status: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        o = client.order(account, clordid)
        return o if o["status"] == status else None

    result: dict[str, Any] = wait_until(check, 20, f"{clordid} {status}")
    return result


def street_sell(street: FixClient, clordid: str, qty: int, price: str, sym: str = "AAPL") -> None:
    body: list[Field] = [(11, clordid), (55, sym), (54, 2), (38, qty), (40, 2), (44, price)]
    body.append((59, 0))
    street.send("D", [*body, (60, fix_time())])


def test_an_order_is_accepted_and_filled_through_the_counterparty(
    pair: Pair, street: FixClient
) -> None:
    with pair.ours.client() as client:
        new = client.submit("A1", "AAPL", "buy", 100, 100.0, clordid="v-1")
        assert new["status"] == "new"
        assert new["order_id"].startswith("F0-")  # the counterparty's id, prefixed
        street_sell(street, "s-1", 40, "100")
        part = order_state(client, "A1", "v-1", "partially_filled")
        assert part["cum_qty"] == 40 and part["avg_px"] == 100.0
        street_sell(street, "s-2", 60, "99.5")
        done = order_state(client, "A1", "v-1", "filled")
        assert done["cum_qty"] == 100
    fills = rows(pair.ours, "fill", clordid="v-1")
    assert [f["qty"] for f in fills] == [40, 60]
    assert {f["venue"] for f in fills} == {"0/1"}
    events = rows(pair.ours, "order", clordid="v-1")
    assert [e["event"] for e in events] == ["accepted", "fill", "fill"]
    assert len({e["in_seq"] for e in events}) == 1  # all answer the one request
    # At the counterparty it is one order of the adapter's session (account X1).
    assert ext_requests(pair)["A1:v-1:" + str(events[0]["in_seq"])] == 1


def test_cancel_and_replace_go_through_the_counterparty(pair: Pair) -> None:
    with pair.ours.client() as client:
        client.submit("A1", "AAPL", "buy", 100, 90.0, clordid="v-2")
        replaced = client.replace("A1", "v-2", qty=150, price=91.0, new_clordid="v-2b")
        assert replaced["clordid"] == "v-2b" and replaced["qty"] == 150
        assert replaced["price"] == 91.0
        canceled = client.cancel("A1", "v-2b")
        assert canceled["status"] == "canceled"
    ext = rows(pair.ext, "order", account="X1")
    assert {"replaced", "canceled"} <= {e["event"] for e in ext}


def test_a_mass_cancel_cancels_the_working_orders(pair: Pair) -> None:
    with pair.ours.client() as client:
        client.submit("A2", "AAPL", "buy", 10, 80.0, clordid="m-1")
        client.submit("A2", "AAPL", "buy", 10, 81.0, clordid="m-2")
        client.cancel_all(account="A2")
        order_state(client, "A2", "m-1", "canceled")
        order_state(client, "A2", "m-2", "canceled")


def test_kill_9_of_the_adapter_sends_no_order_twice(pair: Pair) -> None:
    ours = pair.ours
    with ours.client() as client:
        client.submit("A1", "AAPL", "buy", 5, 70.0, clordid="k-1")
        ours.venues[0].kill9()
        # Entered while the adapter is down: journaled, sent once it is back.
        for i in range(2, 5):
            client.post(
                "/orders",
                {
                    "account": "A1",
                    "sym": "AAPL",
                    "side": "buy",
                    "qty": 5,
                    "price": 70.0,
                    "type": "limit",
                    "clordid": f"k-{i}",
                    "wait": False,
                },
            )
        ours.start_venue(0)
        for i in range(1, 5):
            order_state(client, "A1", f"k-{i}", "new")
        ours.venues[0].kill9()
        ours.start_venue(0)
        client.submit("A1", "AAPL", "buy", 5, 70.0, clordid="k-5")
    counts = ext_requests(pair)
    sent = {c: n for c, n in counts.items() if ":k-" in c}
    assert len(sent) == 5 and set(sent.values()) == {1}, sent
    accepted = Counter(e["clordid"] for e in rows(ours, "order", event="accepted"))
    assert all(accepted[f"k-{i}"] == 1 for i in range(1, 6)), accepted


def test_a_dropped_connection_sends_no_order_twice(pair: Pair) -> None:
    ours, ext = pair.ours, pair.ext
    assert ext.gateway is not None
    ext.gateway.kill9()  # the counterparty goes away mid-session
    with ours.client() as client:
        for i in range(1, 4):
            client.post(
                "/orders",
                {
                    "account": "A2",
                    "sym": "AAPL",
                    "side": "sell",
                    "qty": 5,
                    "price": 120.0,
                    "type": "limit",
                    "clordid": f"d-{i}",
                    "wait": False,
                },
            )
        ext.start_gateway()
        for i in range(1, 4):
            order_state(client, "A2", f"d-{i}", "new")
        client.submit("A2", "AAPL", "sell", 5, 120.0, clordid="d-4")
    counts = ext_requests(pair)
    sent = {c: n for c, n in counts.items() if ":d-" in c}
    assert len(sent) == 4 and set(sent.values()) == {1}, sent
    info = json.loads((ours.workdir / "venue-0.ready.json").read_text())
    assert info["fix"] == "OURS-TICKDB"


def test_fix_sessions_lists_the_adapter_and_the_counterparty(pair: Pair) -> None:
    import subprocess
    import sys

    assert pair.ext.gateway is not None
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "tickdb.cli",
            "fix",
            "sessions",
            "--url",
            pair.ext.url,
            "--config",
            str(pair.ours.config),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    listed = {r["name"]: r for r in json.loads(out.stdout)}
    assert listed["adapter"]["state"] == "logged_on"  # the counterparty's view of us
    venue = listed["ext"]
    assert venue["role"].startswith("venue 0 -> 127.0.0.1:")
    assert (venue["sender_comp_id"], venue["target_comp_id"]) == ("OURS", "TICKDB")
    # Both ends agree on the numbers (what one sends next, the other expects next).
    assert venue["next_sender_seq"] >= listed["adapter"]["next_target_seq"] - 1


def test_fix_venues_config_is_checked(tmp_path: Path) -> None:
    from tickdb.config import ConfigError, load_config

    path = tmp_path / "bad.toml"
    base = '[fix.venues.x]\nshard = 0\nhost = "h"\nsender_comp_id = "A"\ntarget_comp_id = "B"\n'
    path.write_text(base)
    with pytest.raises(ConfigError, match=r"fix\.venues\.x\.port"):
        load_config(path)
    path.write_text(base + "port = 9000\n[fix.venues.y]\n" + base.split("\n", 1)[1] + "port = 1\n")
    with pytest.raises(ConfigError, match="another FIX venue"):
        load_config(path)
    path.write_text(base + "port = 9000\nretry = 1\n")
    with pytest.raises(ConfigError, match="unknown setting"):
        load_config(path)


def test_a_fill_while_the_adapter_is_down_is_published_once(pair: Pair, street: FixClient) -> None:
    ours = pair.ours
    with ours.client() as client:
        client.submit("A1", "MSFT", "buy", 10, 100.0, clordid="w-1")
        ours.venues[0].kill9()
        street_sell(street, "s-w1", 10, "100", sym="MSFT")
        street.wait_for(lambda m: m.get(11) == "s-w1" and m.get(39) == "2")
        ours.start_venue(0)  # the counterparty resends the reports it sent meanwhile
        try:
            done = order_state(client, "A1", "w-1", "filled")
        except AssertionError as exc:  # what each side of the session said, for a rerun
            assert pair.ext.gateway is not None
            logs = {"adapter": ours.venues[0].log(), "external gateway": pair.ext.gateway.log()}
            tails = "\n".join(f"--- {name}:\n{text[-4000:]}" for name, text in logs.items())
            raise AssertionError(f"{exc}\n{tails}") from None
        assert done["cum_qty"] == 10
        ours.venues[0].kill9()
        ours.start_venue(0)
        client.submit("A1", "MSFT", "buy", 1, 1.0, clordid="w-2")  # the adapter is live again
    assert len(rows(ours, "fill", clordid="w-1")) == 1
    assert [e["event"] for e in rows(ours, "order", clordid="w-1")] == ["accepted", "fill"]
