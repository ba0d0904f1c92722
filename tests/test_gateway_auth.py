"""Every HTTP route of a real gateway with ``[auth] mode = "on"``: 401 without valid
credentials, 403 without the role, the answer with it; ``read:TABLE`` and ``trade:ACCOUNT``
narrow what a query may read and which orders an identity sees and touches; logins,
refusals, admin and order actions land in the audit log, which only admins may read.

Two stacks: the query stack (``support.gateway_q``: real query services behind a gateway
process, its kdb+ port on) and a trading stack (tickerplant, venue, gateway with orders and
its FIX acceptor).
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.auth_config import auth_sections, auth_toml, bearer, identity
from support.fix_stack import RISK, SYMS
from support.gateway_q import DATA, start_q_stack
from support.gateway_stack import stop_stack
from support.order_stack import OrderStack, start_order_stack

from gateway.client import Client, GatewayError, OrderRejected
from qipc import QClient

# -- the query stack -----------------------------------------------------------------------
TOKENS = {
    "analyst": "tdb_analyst",
    "trades_only": "tdb_trades_only",
    "ops": "tdb_ops",
    "trader1": "tdb_trader1",
    "trader2": "tdb_trader2",
    "anytrader": "tdb_anytrader",
    "watcher": "tdb_watcher",
}
QUERY_AUTH = auth_sections(
    {
        "analyst": identity(["read"], TOKENS["analyst"]),
        "trades_only": identity(["read:trade"], TOKENS["trades_only"], password="pw-t"),
        "ops": identity(["admin"], TOKENS["ops"]),
    }
)


@pytest.fixture(scope="module")
def qstack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    running = start_q_stack(tmp_path_factory.mktemp("gateway_auth_q"), sections=QUERY_AUTH)
    yield running
    stop_stack(running)


def as_(who: str | None) -> dict[str, str]:
    return bearer(TOKENS[who]) if who else {}


def query(url: str, who: str | None, path: str = "/query", **body: Any) -> httpx.Response:
    return httpx.post(url + path, json=body, headers=as_(who), timeout=30)


def assert_401(reply: httpx.Response) -> None:
    assert reply.status_code == 401, reply.text
    assert reply.headers["WWW-Authenticate"].startswith("Bearer")
    assert reply.json()["error"] == "unauthorized"


def assert_403(reply: httpx.Response, message: str = "") -> None:
    assert reply.status_code == 403, reply.text
    assert reply.json()["error"] == "forbidden"
    assert message in reply.json()["message"]


QUERY_ROUTES = [
    ("POST", "/query", {"sql": "select count(*) n from trade"}),
    ("POST", "/query", {"q": "select n:count i from trade"}),
    ("POST", "/query/plan", {"sql": "select count(*) n from trade"}),
    ("GET", "/tables", None),
    ("GET", "/tables/trade", None),
    ("GET", "/metrics", None),
    ("GET", "/audit", None),
]


def call(url: str, method: str, path: str, body: Any, headers: dict[str, str]) -> httpx.Response:
    return httpx.request(method, url + path, json=body, headers=headers, timeout=30)


@pytest.mark.parametrize(("method", "path", "body"), QUERY_ROUTES)
def test_query_and_catalog_routes_need_credentials(qstack, method, path, body):
    url = qstack["url"]
    assert_401(call(url, method, path, body, {}))
    assert_401(call(url, method, path, body, bearer("tdb_guess")))


def test_queries_need_read_on_every_table_they_touch(qstack):
    url = qstack["url"]
    n_trade = DATA["trade"].num_rows
    assert_403(query(url, "ops", sql="select 1"), "'ops' may not read")
    ok = query(url, "trades_only", sql="select count(*) n from trade")
    assert ok.status_code == 200 and ok.json()["data"] == [[n_trade]]
    assert query(url, "trades_only", q="select n:count i from trade").json()["data"] == [[n_trade]]
    refused = [
        {"sql": "select count(*) from quote"},
        {"sql": "select * from trade t join quote q on t.sym = q.sym"},
        {"sql": "select * from trade where sym in (select sym from quote)"},
        {"sql": "with t as (select * from quote) select count(*) from t"},
        {"q": "select from quote"},
        {"q": "aj[`sym`time; select from trade where sym=`IBM; select from quote where sym=`IBM]"},
    ]
    for body in refused:
        assert_403(query(url, "trades_only", **body), "'trades_only' may not read quote")
        assert_403(query(url, "trades_only", "/query/plan", **body), "may not read quote")
    # A table macro's table named by an expression is refused for everyone: no check could
    # see which table it reads (before, it ran on the gateway's empty catalog: 0 rows).
    computed = "select count(*) n from quote_metrics('qu' || 'ote')"
    for who in ("trades_only", "analyst"):
        reply = query(url, who, sql=computed)
        assert reply.status_code == 400 and "names a table" in reply.json()["message"]
    join = "select count(*) n from trade t join quote q on t.sym = q.sym and t.time = q.time"
    assert query(url, "analyst", sql=join).status_code == 200
    # Basic with the password works as the token does; a query that is not one is still 400.
    basic = "Basic " + base64.b64encode(b"trades_only:pw-t").decode()
    reply = httpx.post(url + "/query", json={"sql": "select 1 x"}, headers={"Authorization": basic})
    assert reply.status_code == 200
    assert query(url, "trades_only", sql="select", q="x").status_code == 400
    # A malformed body carrying the same q text changes nothing for the next, valid one.
    assert query(url, "trades_only", sql=5, q="select from quote").status_code == 400
    assert_403(query(url, "trades_only", q="select from quote"), "may not read quote")
    assert_403(query(url, "trades_only", q="select from quote"), "may not read quote")


def test_a_limited_reader_whose_query_cannot_be_read(qstack):
    """A body that is not JSON, or q that does not translate, runs nothing: the route's own
    400. SQL the gateway cannot parse might read anything: 403 for a reader of some tables,
    the parse error for a reader of all."""
    url = qstack["url"]
    raw = httpx.post(
        url + "/query",
        content=b"{not json",
        headers={**as_("trades_only"), "Content-Type": "application/json"},
    )
    assert raw.status_code == 400 and raw.json()["error"] == "bad_query"
    q = query(url, "trades_only", q="select nope from trade")
    assert q.status_code == 400 and "nope" in q.json()["message"]
    garbage = "select from where ("
    assert_403(query(url, "trades_only", sql=garbage), "a query the gateway cannot read")
    assert query(url, "analyst", sql=garbage).status_code == 400


def test_the_catalog_lists_only_readable_tables(qstack):
    url = qstack["url"]

    def names(who: str) -> list[str]:
        reply = httpx.get(url + "/tables", headers=as_(who))
        assert reply.status_code == 200, reply.text
        return [t["name"] for t in reply.json()]

    assert names("trades_only") == ["trade"]
    assert {"trade", "quote"} <= set(names("analyst"))
    assert httpx.get(url + "/tables/trade", headers=as_("trades_only")).status_code == 200
    assert_403(httpx.get(url + "/tables/quote", headers=as_("trades_only")), "may not read quote")
    assert httpx.get(url + "/tables/nope", headers=as_("analyst")).status_code == 404
    assert_403(httpx.get(url + "/tables", headers=as_("ops")), "'ops' may not read")


def test_health_says_only_its_status_without_credentials(qstack):
    url = qstack["url"]
    bare = httpx.get(url + "/health")
    assert bare.status_code == 200 and bare.json() == {"status": "ok"}
    assert httpx.get(url + "/health", headers=as_("ops")).json()["backends"]  # admin
    full = httpx.get(url + "/health", headers=as_("trades_only")).json()
    assert full["status"] == "ok" and len(full["backends"]) == 6
    assert_401(httpx.get(url + "/health", headers=bearer("tdb_guess")))


def test_metrics_need_read_or_admin(qstack):
    url = qstack["url"]
    for who in ("analyst", "ops"):
        reply = httpx.get(url + "/metrics", headers=as_(who))
        assert reply.status_code == 200 and "tickdb_gateway" in reply.text


def test_kdb_logins_and_http_refusals_are_audited(qstack):
    url = qstack["url"]
    intruder = {"user": "kdb-intruder", "password": "x"}
    with pytest.raises(OSError), QClient("127.0.0.1", qstack["kdb_port"], **intruder) as q:
        q.sync("")
    with QClient("127.0.0.1", qstack["kdb_port"], user="trades_only", password="pw-t") as q:
        q.sync("tables[]")
    query(url, "trades_only", sql="select * from quote")
    audit = httpx.get(url + "/audit", headers=as_("ops")).json()
    records = audit["records"]
    refused = [r for r in records if r["who"] == "kdb-intruder"]
    assert len(refused) == 1 and refused[0]["action"] == "login" and not refused[0]["ok"]
    assert refused[0]["port"] == "gateway-kdb" and refused[0]["where"].startswith("127.0.0.1:")
    kdb_ok = [r for r in records if r["port"] == "gateway-kdb" and r["who"] == "trades_only"]
    assert kdb_ok and kdb_ok[-1]["ok"]
    denied = [r for r in records if r["action"] == "denied" and r["who"] == "trades_only"]
    assert denied and denied[-1]["wanted"] == "read quote"
    assert denied[-1]["route"] == "POST /query"
    assert_403(httpx.get(url + "/audit", headers=as_("analyst")), "may not admin")


# -- the trading stack ----------------------------------------------------------------------
FIX_TOML = """
[fix]
enabled = true
port = 0
logon_timeout_s = 3.0
store_dir = "{store}"
[fix.sessions.s1]
sender_comp_id = "C1"
target_comp_id = "TICKDB"
account = "F1"
identity = "fixdesk"
"""
ORDER_AUTH = auth_toml(
    {
        "trader1": identity(["trade:A1"], TOKENS["trader1"]),
        "trader2": identity(["trade:A2", "read:trade"], TOKENS["trader2"], password="pw2"),
        "anytrader": identity(["trade:*"], TOKENS["anytrader"]),
        "ops": identity(["admin"], TOKENS["ops"]),
        "watcher": identity(["read"], TOKENS["watcher"]),
        "fixdesk": identity(["trade:F1"], "tdb_fixdesk"),
    }
)
ACCOUNTS = "".join(f"\n[risk.accounts.{a}]" for a in ("A1", "A2", "A3", "A4", "F1"))


@pytest.fixture(scope="module")
def ostack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrderStack]:
    workdir = tmp_path_factory.mktemp("gateway_auth_orders")
    fix = FIX_TOML.format(store=workdir / "fix")
    running = start_order_stack(
        workdir,
        orders={"syms": SYMS},
        extra_toml=RISK + ACCOUNTS + "\n" + fix + ORDER_AUTH,
    )
    yield running
    running.stop()


def client(stack: OrderStack, who: str) -> Client:
    return Client(stack.url, timeout_s=30, token=TOKENS[who])


ORDER = {"sym": "AAPL", "side": "buy", "qty": 10, "price": 100.0}
ORDER_ROUTES = [
    ("POST", "/orders", {"account": "A1", **ORDER}),
    ("POST", "/orders/cancel", {"account": "A1", "orig_clordid": "x"}),
    ("POST", "/orders/replace", {"account": "A1", "orig_clordid": "x", "qty": 5}),
    ("POST", "/orders/cancel-all", {"account": "A1"}),
    ("GET", "/orders", None),
    ("GET", "/orders/A1/x", None),
    ("GET", "/positions", None),
    ("GET", "/orders-stream", None),
]
ADMIN_ROUTES = [
    ("GET", "/risk", None),
    ("POST", "/risk/limits", {"account": "A3", "changes": {"max_order_qty": 500}}),
    ("POST", "/risk/state", {"state": "active", "account": "A3"}),
    ("POST", "/risk/kill", {"account": "A3"}),
    ("POST", "/risk/resume", {"account": "A3"}),
    ("GET", "/fix/sessions", None),
    ("POST", "/fix/sessions/s1/reset", {}),
    ("GET", "/audit", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ORDER_ROUTES + ADMIN_ROUTES)
def test_order_admin_and_fix_routes_need_credentials(ostack, method, path, body):
    assert_401(call(ostack.url, method, path, body, {}))
    assert_401(call(ostack.url, method, path, body, bearer("tdb_guess")))
    basic = "Basic " + base64.b64encode(b"trader2:wrong").decode()
    assert_401(call(ostack.url, method, path, body, {"Authorization": basic}))


@pytest.mark.parametrize(("method", "path", "body"), ORDER_ROUTES)
def test_order_routes_need_trade(ostack, method, path, body):
    assert_403(call(ostack.url, method, path, body, as_("watcher")), "'watcher' may not trade")
    assert_403(call(ostack.url, method, path, body, as_("ops")), "'ops' may not trade")


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_ROUTES)
def test_risk_fix_and_audit_routes_need_admin(ostack, method, path, body):
    for who in ("trader1", "anytrader", "watcher"):
        assert_403(call(ostack.url, method, path, body, as_(who)), f"'{who}' may not admin")
    assert call(ostack.url, method, path, body, as_("ops")).status_code == 200


def test_a_trader_trades_only_its_accounts(ostack):
    t1, t2 = client(ostack, "trader1"), client(ostack, "trader2")
    anyone = client(ostack, "anytrader")
    mine = t1.submit("A1", "MSFT", "buy", 10, 50.0, clordid="t1-own")
    assert mine["status"] == "new"
    theirs = t2.submit("A2", "MSFT", "buy", 10, 49.0, clordid="t2-own")
    url = ostack.url
    other = {"account": "A2", "orig_clordid": "t2-own"}
    for method, path, body in [
        ("POST", "/orders", {**ORDER, "account": "A2"}),
        ("POST", "/orders/cancel", other),
        ("POST", "/orders/replace", {**other, "qty": 5}),
        ("POST", "/orders/cancel-all", {"account": "A2"}),
        ("GET", "/orders?account=A2", None),
        ("GET", "/orders/A2/t2-own", None),
        ("GET", "/positions?account=A2", None),
    ]:
        assert_403(call(url, method, path, body, as_("trader1")), "'trader1' may not trade A2")
    # Lists without an account hold only the caller's accounts.
    assert {o["account"] for o in t1.orders()} == {"A1"}
    assert {o["account"] for o in t2.orders()} == {"A2"}
    assert {"A1", "A2"} <= {o["account"] for o in anyone.orders()}
    assert t1.order("A1", "t1-own")["clordid"] == "t1-own"
    # A cancel-all without an account cancels only the caller's orders.
    assert t1.cancel_all()["canceled"] >= 1
    assert t1.order("A1", "t1-own")["status"] == "canceled"
    assert t2.order("A2", theirs["clordid"])["status"] == "new"
    t2.cancel("A2", "t2-own")
    # Fill two accounts against each other: positions are filtered the same way.
    t2.submit("A2", "GOOG", "sell", 7, 30.0, clordid="pos-sell")
    assert t1.submit("A1", "GOOG", "buy", 7, 30.0, clordid="pos-buy")["status"] == "filled"
    assert {p["account"] for p in t1.positions()} == {"A1"}
    assert {p["account"] for p in t2.positions()} == {"A2"}
    assert {"A1", "A2"} <= {p["account"] for p in anyone.positions()}
    assert t1.order_request("GET", "/orders-stream")["tables"] == ["order", "fill"]


def test_admin_requests_and_fix_ops_work_for_admin(ostack):
    ops = client(ostack, "ops")
    assert "A1" in ops.risk()["accounts"]
    sessions = ops.get("/fix/sessions").json()
    assert [s["name"] for s in sessions["sessions"]] == ["s1"]


def records(stack: OrderStack, **params: Any) -> list[dict[str, Any]]:
    reply = httpx.get(stack.url + "/audit", params=params, headers=as_("ops"), timeout=30)
    assert reply.status_code == 200, reply.text
    return list(reply.json()["records"])


def test_a_failed_login_a_kill_switch_and_an_order_each_leave_one_record(ostack):
    url = ostack.url
    basic = "Basic " + base64.b64encode(b"intruder-7:guess").decode()
    assert_401(httpx.get(url + "/orders", headers={"Authorization": basic}))
    client(ostack, "ops").kill(account="A4")
    client(ostack, "trader1").submit("A1", "TSLA", "buy", 3, 20.0, clordid="audited-1")

    failed = records(ostack, who="intruder-7")
    assert len(failed) == 1
    assert failed[0]["action"] == "login" and failed[0]["ok"] is False
    assert failed[0]["route"] == "GET /orders" and failed[0]["port"] == "http"

    kills = [r for r in records(ostack, action="admin.kill") if r.get("account") == "A4"]
    assert len(kills) == 1
    assert kills[0]["who"] == "ops" and kills[0]["ok"] is True

    orders = [r for r in records(ostack, action="order.new") if r.get("clordid") == "audited-1"]
    assert len(orders) == 1
    order = orders[0]
    assert order["who"] == "trader1" and order["account"] == "A1" and order["sym"] == "TSLA"
    assert order["result"] == "new" and order["ok"] is True
    for record in (failed[0], kills[0], order):
        assert record["ts"].endswith("Z") and record["where"].startswith("127.0.0.1:")
    client(ostack, "ops").resume(account="A4")
    # A refused order is recorded with its reason; a refused role as denied.
    with pytest.raises(OrderRejected):
        client(ostack, "trader1").submit("A1", "NOPE", "buy", 1, 1.0, clordid="audited-2")
    bad = [r for r in records(ostack, action="order.new") if r.get("clordid") == "audited-2"]
    assert len(bad) == 1 and bad[0]["ok"] is False and bad[0]["result"]
    denied = records(ostack, action="denied", who="trader1")
    assert any(r["wanted"] == "trade A2" for r in denied)


def test_non_admins_cannot_read_the_audit(ostack):
    for who in ("trader1", "anytrader", "watcher", "trader2"):
        with pytest.raises(GatewayError) as refused:
            client(ostack, who).audit()
        assert refused.value.status == 403
    logins = records(ostack, action="login", who="trader1")
    assert logins and logins[0]["ok"] is True
    assert records(ostack, since="2999-01-01") == []
    reply = httpx.get(ostack.url + "/audit?since=someday", headers=as_("ops"))
    assert reply.status_code == 400 and "ISO 8601" in reply.json()["message"]


def test_the_client_and_cli_send_a_token(ostack):
    with pytest.raises(GatewayError) as unauthenticated:
        Client(ostack.url, token="").orders()
    assert unauthenticated.value.status == 401
    env = {**os.environ, "TICKDB_TOKEN": TOKENS["trader1"]}
    os.environ["TICKDB_TOKEN"] = TOKENS["trader1"]
    try:
        assert {o["account"] for o in Client(ostack.url).orders()} == {"A1"}
    finally:
        del os.environ["TICKDB_TOKEN"]
    listed = run_cli("order", "list", "--url", ostack.url, env=env)
    assert listed.returncode == 0, listed.stderr
    audit = run_cli(
        "audit", "--json", "--action", "admin.", "--url", ostack.url, "--token", TOKENS["ops"]
    )
    assert audit.returncode == 0, audit.stderr
    assert '"action": "admin.kill"' in audit.stdout
    refused = run_cli("risk", "kill", "--url", ostack.url, env=env)
    assert refused.returncode == 1 and "may not admin" in refused.stderr
    status = run_cli("status", "--url", ostack.url, env={**os.environ})
    assert status.returncode == 0 and "backends shown only with a token" in status.stdout


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tickdb.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=Path(__file__).parent.parent,
    )


def test_mode_none_needs_nothing(tmp_path: Path):
    """The same trading stack without [auth]: every route open, as before, and no audit."""
    stack = start_order_stack(tmp_path, orders={"syms": SYMS}, extra_toml=RISK + ACCOUNTS)
    try:
        with Client(stack.url, timeout_s=30, token="") as c:
            assert c.submit("A1", "AAPL", "buy", 1, 10.0)["status"] == "new"
            assert c.risk()
            assert c.audit() == {"enabled": False, "records": [], "truncated": False}
            assert "backends" in c.health()
        assert not (tmp_path / "data" / "audit").exists()
    finally:
        stack.stop()


def test_the_console_uses_the_same_identities_and_table_rights(qstack):
    url = qstack["url"]
    assert_401(httpx.get(f"{url}/console/session", timeout=30))
    session = httpx.get(f"{url}/console/session", headers=as_("trades_only"), timeout=30)
    assert session.status_code == 200 and session.json()["user"] == "trades_only"
    assert session.json()["roles"] == ["read"]
    export = "/console/export"
    ok = query(url, "trades_only", export, sql="select sym from trade limit 3", format="csv")
    assert ok.status_code == 200 and ok.text.splitlines()[0] == '"sym"'
    assert_403(query(url, "trades_only", export, sql="select * from quote"), "read quote")
    # No tickerplant here: a readable stream is 503 after the check, an unreadable one 403.
    live = f"{url}/console/live"
    assert_403(httpx.get(live, params={"tables": "quote"}, headers=as_("trades_only")))
    assert (
        httpx.get(live, params={"tables": "trade"}, headers=as_("trades_only")).status_code == 503
    )
