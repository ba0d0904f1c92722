"""The gateway's kdb+ port with real clients: PyKX (its own process, unlicensed) and QClient.

The stack is ``test_gateway_q``'s (``support.gateway_q``): a real gateway process, its kdb+
port on a ``free_port()`` from the config and the user table ``USERS``, over real query
services for 3 shards x today/past. Answers must equal the translator's SQL on one DuckDB.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import argon2
import duckdb
import numpy as np
import pytest
from support.gateway_q import BY_SYM, DATA, SELECT_WHERE, TOTALS, USERS, expected, start_q_stack
from support.gateway_stack import one_duckdb, stop_stack
from support.harness import wait_until

from qipc import KeyedTable, QClient, QError, QTable
from tickdb.auth import hash_token

CLIENT = Path(__file__).parent / "qipc_clients" / "pykx_gateway_client.py"
LOGIN = "quant:" + USERS["quant"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    running = start_q_stack(tmp_path_factory.mktemp("gateway_kdb"))
    yield running
    stop_stack(running)


@pytest.fixture(scope="module")
def reference() -> duckdb.DuckDBPyConnection:
    return one_duckdb(DATA)


def pykx(port: int, login: str, command: str, *args: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, str(CLIENT), str(port), login, command, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYKX_UNLICENSED": "true", "PATH": "/usr/bin:/bin", "HOME": str(Path.home())},
    )
    assert out.returncode == 0, out.stderr
    return dict(json.loads(out.stdout.splitlines()[-1]))


def qclient(stack: dict[str, Any]) -> QClient:
    return QClient("127.0.0.1", stack["kdb_port"], user="quant", password=USERS["quant"])


def rows_of(table: Any) -> list[list[Any]]:
    return [[_text(v) for v in row.values()] for row in table.to_pylist()]


def _text(value: Any) -> Any:
    if isinstance(value, dt.datetime):  # as pandas prints it, the PyKX client's text
        return str(value).replace("+00:00", "")
    if isinstance(value, dt.date):
        return f"{value} 00:00:00"
    return value


def test_ready_file_names_the_kdb_port(stack):
    assert isinstance(stack["kdb_port"], int) and stack["kdb_port"] > 0


def test_pykx_gets_typed_tables_keyed_by_results_and_q_errors(stack, reference):
    requests = [
        {"q": SELECT_WHERE},
        {"q": BY_SYM},
        {"call": ".tickdb.q", "arg": TOTALS},
        {"call": ".tickdb.sql", "arg": "SELECT date, sym, price, size FROM trade LIMIT 3"},
        {"q": "select ema[0.5;price] from trade"},
        {"call": ".tickdb.sql", "arg": "SELECT nope FROM trade"},
        {"call": ".tickdb.sql", "arg": "SELECT * FROM read_csv('/etc/passwd')"},
        {"call": ".tickdb.nosuch", "arg": "x"},
        {"q": TOTALS, "async": True},
        {"q": "select from trade"},  # 2000 rows > --max-rows 1500
        {"q": "select n:count i from trade"},  # the port still answers
    ]
    got = pykx(stack["kdb_port"], LOGIN, "run", json.dumps(requests))["results"]
    plain, keyed, totals, sql = got[:4]
    assert plain["type"] == "Table" and plain["keys"] == []
    assert plain["dtypes"] == {"time": "datetime64[ns]", "sym": "str", "price": "float64"}
    assert plain["pytypes"] == {"time": "Timestamp", "sym": "str", "price": "float64"}
    assert plain["rows"] == rows_of(expected(reference, SELECT_WHERE))
    assert keyed["type"] == "KeyedTable" and keyed["keys"] == ["sym"]
    assert keyed["columns"] == ["sym", "vwap", "n"]
    assert keyed["dtypes"]["n"] == "int64" and keyed["dtypes"]["vwap"] == "float64"
    want = rows_of(expected(reference, BY_SYM))
    assert [r[0] for r in keyed["rows"]] == [r[0] for r in want]
    assert [r[2] for r in keyed["rows"]] == [r[2] for r in want]
    assert totals["type"] == "Table" and totals["rows"] == rows_of(expected(reference, TOTALS))
    # SQL: symbols stay symbols, the date column is a q date (not a timestamp).
    assert sql["dtypes"] == {
        "date": "datetime64[s]",
        "sym": "str",
        "price": "float64",
        "size": "int64",
    }
    bad_q, bad_sql, forbidden, unknown, async_, limit, after = got[4:]
    assert "'ema'" in bad_q["error"] and "at character 7" in bad_q["error"]
    assert bad_sql["error"].startswith("bad_query:") and "nope" in bad_sql["error"]
    assert forbidden["error"].startswith("forbidden:") and "read_csv" in forbidden["error"]
    assert ".tickdb.nosuch" in unknown["error"]
    assert async_ == {"type": "async", "after": "None"}
    assert limit["error"].startswith("limit:")
    assert after["rows"] == [[DATA["trade"].num_rows]]


def test_wrong_password_and_unknown_user_are_refused(stack):
    port = stack["kdb_port"]
    assert pykx(port, LOGIN, "login") == {"ok": True}
    for login in ("quant:wrong", "nobody:" + USERS["quant"], "-"):
        assert "error" in pykx(port, login, "login"), login
    # As q does, the port closes a refused login without a word: a ConnectionError.
    with (
        pytest.raises(OSError),
        QClient("127.0.0.1", port, user="quant", password="wrong", timeout=5) as q,
    ):
        q.sync("")


def test_qclient_gets_q_types_and_a_keyed_table(stack, reference):
    with qclient(stack) as q:
        plain = q.sync(SELECT_WHERE)
        keyed = q.sync(".tickdb.q", BY_SYM)
        with pytest.raises(QError, match="at character 7"):
            q.sync("select ema[0.5;price] from trade")
        assert q.sync("tables[]").tolist() == [
            "fill",
            "order",
            "order_request",
            "quote",
            "risk_admin",
            "trade",
        ]
        assert q.sync("") is None
    assert isinstance(plain, QTable)
    assert plain.columns["time"].dtype == np.dtype("M8[ns]")
    assert plain.columns["sym"].dtype == object and plain.columns["price"].dtype == np.float64
    want = expected(reference, SELECT_WHERE)
    assert plain.columns["price"].tolist() == want.column("price").to_pylist()
    assert isinstance(keyed, KeyedTable) and list(keyed.keys.columns) == ["sym"]
    assert keyed.values.columns["n"].dtype == np.int64


def test_many_clients_at_once(stack, reference):
    want = expected(reference, BY_SYM).column("n").to_pylist()

    def one(i: int) -> int:
        with qclient(stack) as q:
            answers = [q.sync(".tickdb.q", BY_SYM) if k % 2 else q.sync(BY_SYM) for k in range(4)]
        assert all(a.values.columns["n"].tolist() == want for a in answers)
        return i

    with ThreadPoolExecutor(12) as pool:  # 24 clients, 12 connected at any time
        assert sorted(pool.map(one, range(24))) == list(range(24))


def test_backend_down_is_a_q_error_naming_it(tmp_path):
    own = start_q_stack(tmp_path, timeout_s=1.0)
    try:
        dead = own["servers"]["hdb1"]
        dead.close()
        with qclient(own) as q:
            with pytest.raises(QError) as err:
                q.sync(TOTALS)
            assert err.value.message.split(":")[0] in ("unavailable", "timeout")
            assert dead.endpoint in err.value.message
            # Today's rows for one shard do not need the dead HDB: the port keeps answering.
            assert isinstance(q.sync(".tickdb.sql", "SELECT 1 AS one"), QTable)
    finally:
        stop_stack(own)


# -- [auth] on the kdb+ port ---------------------------------------------------------------
# The same stack with [auth] on. [gateway] users (USERS) still logs in, deprecated, except
# for a name that is an [auth] identity ("ops" below): that one needs its [auth] password.
FAST = argon2.PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
TOKEN = "tdb_analyst-token"
AUTH = {
    "auth": {"mode": "on"},
    "auth.identities.analyst": {
        "password": FAST.hash("pw-analyst"),
        "tokens": [hash_token(TOKEN)],
        "roles": ["read"],
    },
    "auth.identities.trades_only": {"password": FAST.hash("pw-t"), "roles": ["read:trade"]},
    "auth.identities.feed": {"password": FAST.hash("pw-feed"), "roles": ["publish:trade"]},
    "auth.identities.ops": {"password": FAST.hash("pw-ops"), "roles": ["read", "admin"]},
}


@pytest.fixture(scope="module")
def auth_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    running = start_q_stack(tmp_path_factory.mktemp("gateway_kdb_auth"), sections=AUTH)
    yield running
    stop_stack(running)


def login(stack: dict[str, Any], user: str = "", password: str = "") -> QClient:
    return QClient("127.0.0.1", stack["kdb_port"], user=user, password=password, timeout=10)


def refused(stack: dict[str, Any], user: str = "", password: str = "") -> bool:
    """As q does, the port closes a refused login without a word."""
    try:
        with login(stack, user, password) as q:
            q.sync("")
    except OSError:
        return True
    return False


@pytest.mark.parametrize(
    ("user", "password"),
    [
        ("", ""),  # no credentials
        ("analyst", ""),
        ("analyst", "wrong"),
        ("feed", "pw-feed"),  # a real identity, but no read role
        ("ops", USERS["ops"]),  # [gateway] users does not speak for an [auth] identity
        ("trades_only", TOKEN),  # the analyst's token, not the trades_only's
    ],
)
def test_auth_refuses_without_credentials_or_the_read_role(auth_stack, user, password):
    assert refused(auth_stack, user, password)


@pytest.mark.parametrize(
    ("user", "password"),
    [
        ("analyst", "pw-analyst"),
        ("analyst", TOKEN),  # its token as the password
        ("ops", "pw-ops"),
        ("quant", USERS["quant"]),  # [gateway] users, deprecated
    ],
)
def test_auth_lets_readers_query(auth_stack, user, password):
    with login(auth_stack, user, password) as q:
        count = q.sync(".tickdb.sql", "select count(*) n from trade")
        assert count.columns["n"].tolist() == [DATA["trade"].num_rows]
        assert {"trade", "quote"} <= set(q.sync("tables[]").tolist())


def test_a_reader_of_named_tables_queries_only_those(auth_stack):
    with login(auth_stack, "trades_only", "pw-t") as q:
        assert q.sync("tables[]").tolist() == ["trade"]
        count = q.sync("select n:count i from trade")
        assert count.columns["n"].tolist() == [DATA["trade"].num_rows]
        for query in (
            ("select from quote",),
            (".tickdb.sql", "select count(*) from quote"),
            (".tickdb.sql", "select * from trade t join quote q on t.sym = q.sym"),
            (".tickdb.sql", "with t as (select * from quote) select count(*) from t"),
        ):
            with pytest.raises(QError, match="forbidden: 'trades_only' may not read quote"):
                q.sync(*query)
        assert q.sync(".tickdb.sql", "select 1 one").columns["one"].tolist() == [1]


def test_auth_logs_the_refusals_and_the_deprecated_users(auth_stack):
    assert refused(auth_stack, "feed", "pw-feed")  # its own refusal: runs alone too

    def logged() -> str:
        text = auth_stack["proc"].log()
        return text if "'feed' has no read role" in text else ""

    log = wait_until(logged, what="the refusal logged")
    assert "[gateway] users holds plaintext passwords and is deprecated" in log
    assert "refused user 'feed'" in log and "'feed' has no read role" in log


def test_a_column_of_lists_reaches_q_as_one_vector_a_row(stack, reference):
    """``select price by sym``: q groups a column into one vector per key, and that is what
    a client gets, typed: a float vector a sym, the same values as the reference's."""
    query = "select price by sym from trade where sym in `AAPL`IBM`MSFT"
    with qclient(stack) as q:
        keyed = q.sync(query)
    assert isinstance(keyed, KeyedTable) and list(keyed.keys.columns) == ["sym"]
    want = expected(reference, query).to_pydict()
    got = dict(zip(keyed.keys.columns["sym"].tolist(), keyed.values.columns["price"], strict=True))
    assert sorted(got) == sorted(want["sym"]) and len(got) == 3
    for sym, prices in zip(want["sym"], want["price"], strict=True):
        vector = got[sym]
        assert isinstance(vector, np.ndarray) and vector.dtype == np.float64
        assert sorted(vector.tolist()) == sorted(prices)
