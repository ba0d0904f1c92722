"""The web console in headless Chromium against a real stack: a tickerplant, a venue, an
RDB and a gateway taking orders, real processes on loopback.

The gateway's console check uses ``[gateway.users]`` here, so the login page is exercised;
refusals from any other call (403, wrong role) are answered by the test through Playwright's
routing, since the API's own authentication is not wired yet. Screenshots go to the
directory in ``TICKDB_CONSOLE_SHOTS`` (``docs/console`` refreshes the docs' pictures), else
to the test's temporary directory.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import os
import random
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from support import browser
from support.harness import wait_until
from support.order_stack import OrderStack, start_order_stack

from tickerplant.publisher import Publisher

pytestmark = pytest.mark.skipif(browser.missing() is not None, reason=str(browser.missing()))

USER, PASSWORD = "alice", "s3cret"
SYMS = ["AAPL", "MSFT", "IBM"]
RISK = """
[risk.defaults]
max_order_qty = 10000
duplicate_window_s = 0

[gateway.users]
alice = "s3cret"
"""


def walk(sym: str, n: int, start: float) -> list[float]:
    """A random walk on the cent grid, the same for every run."""
    rng = random.Random(sym)
    prices, price = [], start
    for _ in range(n):
        price = round(max(1.0, price + rng.choice((-0.03, -0.01, 0.0, 0.01, 0.02))), 2)
        prices.append(price)
    return prices


HISTORY = 500  # trades per sym published at the start, one every STEP_S up to now
STEP_S = 15
PRICES = {sym: walk(sym, HISTORY, 100.0 + 10 * k) for k, sym in enumerate(SYMS)}


def publish_trades(stack: OrderStack, n: int = 0, start_price: float = 100.0) -> None:
    """``n`` new trades per sym, stamped by the tickerplant (or, with ``n`` 0, the history:
    ``PRICES`` over the last two hours); journaled before this returns."""
    pub = Publisher(stack.tp_address)
    try:
        for k, sym in enumerate(SYMS):
            if n:
                prices = [start_price + k * 10 + (i % 50) * 0.01 for i in range(n)]
                data = {"sym": [sym] * n, "price": prices, "size": [100 + i % 7 for i in range(n)]}
            else:
                now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
                times = [now - dt.timedelta(seconds=STEP_S * (HISTORY - i)) for i in range(HISTORY)]
                sizes = [100 * (1 + (i * 7 + k) % 9) for i in range(HISTORY)]
                data = {"time": times, "sym": [sym] * HISTORY, "price": PRICES[sym], "size": sizes}
            pub.publish("trade", pa.table(data))
        pub.flush()
    finally:
        pub.close()


def post(url: str, path: str, body: dict[str, Any]) -> tuple[int, bytes, dict[str, str]]:
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    headers = {"Content-Type": "application/json", "Authorization": f"Basic {token}"}
    request = urllib.request.Request(url + path, json.dumps(body).encode(), headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)


def count_trades(url: str) -> int:
    status, body, _ = post(url, "/query", {"sql": "select count(*) as n from trade"})
    return int(json.loads(body)["data"][0][0]) if status == 200 else -1


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrderStack]:
    running = start_order_stack(
        tmp_path_factory.mktemp("console"),
        shards=1,
        rdbs=True,
        orders={"syms": SYMS},
        extra_toml=RISK,
    )
    try:
        publish_trades(running)
        wait_until(lambda: count_trades(running.url) == 1500, 30, "the RDB to hold the trades")
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def context() -> Iterator[Any]:
    with browser.browser_context() as ctx:
        yield ctx


@pytest.fixture
def page(context: Any) -> Iterator[Any]:
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    page.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    chosen = os.environ.get("TICKDB_CONSOLE_SHOTS")
    path = Path(chosen) if chosen else tmp_path_factory.mktemp("shots")
    path.mkdir(parents=True, exist_ok=True)
    return path


def screenshot(page: Any, shots: Path, name: str) -> Path:
    path = shots / f"{name}.png"
    page.screenshot(path=str(path))
    assert path.stat().st_size > 5000, f"{name}: empty screenshot"
    return path


def login(page: Any, url: str, user: str = USER, password: str = PASSWORD) -> None:
    page.goto(url + "/")
    page.wait_for_selector("#login-form", state="visible")
    page.fill("#login-user", user)
    page.fill("#login-password", password)
    page.click("#login-submit")


def logged_in(page: Any, url: str, view: str = "query") -> None:
    login(page, url)
    page.wait_for_selector("#app", state="visible")
    if view != "query":
        page.goto(f"{url}/#{view}")
    page.wait_for_selector(f"#view-{view}", state="visible")


def run_query(page: Any, text: str, mode: str = "sql") -> None:
    page.click(f"button.mode[data-mode='{mode}']")
    page.click(".cm-content")
    page.keyboard.press("Control+a")
    page.keyboard.insert_text(text)
    page.click("[data-testid=run]")


def grid_rows(page: Any, host: str = "[data-testid=results]") -> list[list[str]]:
    """The visible rows of a grid, without the row number."""
    return page.eval_on_selector(
        host,
        """h => [...h.querySelectorAll('.grid-body .grid-row')].filter(r => !r.hidden)
             .map(r => [...r.children].slice(1).map(c => c.textContent))""",
    )


def wait_done(page: Any) -> dict[str, str]:
    page.wait_for_function(
        "() => ['done', 'error'].includes(document.querySelector('[data-testid=query-status]')"
        ".dataset.state)"
    )
    return page.eval_on_selector("[data-testid=query-status]", "s => ({...s.dataset})")


# -- login -----------------------------------------------------------------------------------
def test_missing_and_wrong_credentials_show_the_login_page(stack: OrderStack, page: Any) -> None:
    page.goto(stack.url + "/")
    page.wait_for_selector("#login-form", state="visible")
    assert page.is_hidden("#app")
    assert "401" in page.text_content("#login-error")
    login(page, stack.url, password="wrong")
    page.wait_for_function("document.getElementById('login-error').textContent.includes('wrong')")
    assert page.is_hidden("#app")
    assert page.locator(".grid-row").count() == 0
    assert page.evaluate("sessionStorage.getItem('tickdb.auth')") is None


def test_login_then_a_refused_call_shows_the_login_page_not_data(
    stack: OrderStack, page: Any, shots: Path
) -> None:
    page.goto(stack.url + "/")
    page.wait_for_selector("#login-form", state="visible")
    page.fill("#login-user", USER)
    page.fill("#login-password", "")
    screenshot(page, shots, "login")
    logged_in(page, stack.url)
    assert USER in page.text_content("#whoami")
    run_query(page, "select sym, count(*) as n from trade group by sym order by sym")
    assert wait_done(page)["rows"] == "3"
    # The gateway's own authentication (not wired yet) will answer 403 to a user without
    # the role: any such answer must take the page back to the login, with no data left.
    page.route("**/query", lambda route: route.fulfill(status=403, body='{"detail":"role"}'))
    page.click("[data-testid=run]")
    page.wait_for_selector("#login-form", state="visible")
    assert "403" in page.text_content("#login-error")
    assert page.is_hidden("#app")
    assert page.locator(".grid-row").count() == 0
    assert page.locator("#views *").count() == 0
    page.unroute("**/query")


# -- query -----------------------------------------------------------------------------------
def test_sql_and_q_queries_show_the_right_rows(stack: OrderStack, page: Any, shots: Path) -> None:
    logged_in(page, stack.url)
    run_query(
        page, "select sym, count(*) as n, max(price) as hi from trade group by sym order by sym"
    )
    status = wait_done(page)
    assert status["state"] == "done" and status["rows"] == "3"
    rows = grid_rows(page)
    assert [r[0] for r in rows] == sorted(SYMS)
    assert all(r[1] == "500" for r in rows)
    assert {r[0]: float(r[2]) for r in rows} == {s: max(PRICES[s]) for s in SYMS}
    page.keyboard.press("Escape")  # the completion popup
    screenshot(page, shots, "query")

    run_query(page, "select n:count i, hi:max price by sym from trade", mode="q")
    status = wait_done(page)
    assert status["state"] == "done" and status["rows"] == "3"
    assert "keys sym" in page.text_content("[data-testid=query-status]")
    rows = grid_rows(page)
    assert {r[0]: r[1] for r in rows} == {s: "500" for s in SYMS}


def test_errors_are_shown_at_their_position(stack: OrderStack, page: Any) -> None:
    logged_in(page, stack.url)
    run_query(page, "select sym from trade where pricex > 1")
    assert wait_done(page)["state"] == "error"
    assert "pricex" in page.text_content("[data-testid=query-error]")
    page.wait_for_selector(".cm-lintRange-error")
    marked = page.text_content(".cm-lintRange-error")
    assert marked.startswith("pricex")

    run_query(page, "select n:ema[2;price] by sym from trade", mode="q")
    assert wait_done(page)["state"] == "error"
    page.wait_for_selector(".cm-lintRange-error")
    assert "ema" in page.text_content(".cm-lintRange-error")


def test_a_keyboard_only_query_run(stack: OrderStack, page: Any) -> None:
    logged_in(page, stack.url)
    # The editor has the focus when the view opens; no mouse from here on.
    page.wait_for_function("document.activeElement.classList.contains('cm-content')")
    page.keyboard.press("Control+a")
    page.keyboard.type("select count(*) as n from trade")
    page.keyboard.press("Control+Enter")
    assert wait_done(page)["rows"] == "1"
    assert grid_rows(page)[0] == ["1500"]
    # The history holds it: Alt-Up brings it back into a cleared editor.
    page.keyboard.press("Control+a")
    page.keyboard.press("Delete")
    page.keyboard.press("Alt+ArrowUp")
    assert "count(*)" in page.text_content(".cm-content")


def test_the_grid_scrolls_a_large_result_virtually(stack: OrderStack, page: Any) -> None:
    logged_in(page, stack.url)
    run_query(page, "select i, i * 2 as twice from range(1000000) t(i)")
    status = wait_done(page)
    assert status["rows"] == "1000000"
    # Only the visible rows exist in the page, however many the result has.
    assert page.locator("[data-testid=results] .grid-row").count() < 100
    page.eval_on_selector("[data-testid=results] .grid", "g => { g.scrollTop = g.scrollHeight; }")
    page.wait_for_function(
        """() => [...document.querySelectorAll('[data-testid=results] .grid-body .grid-row')]
           .some(r => !r.hidden && r.children[1].textContent === '999999')"""
    )


def test_export_parquet_and_csv(stack: OrderStack) -> None:
    """The export route behind the console's buttons (checked without a browser)."""
    sql = "select sym, count(*) as n from trade group by sym order by sym"
    status, body, headers = post(stack.url, "/console/export", {"sql": sql, "format": "parquet"})
    assert status == 200, body
    assert "result.parquet" in headers["content-disposition"]
    table = pq.read_table(io.BytesIO(body))
    assert table.column("sym").to_pylist() == sorted(SYMS)
    assert table.column("n").to_pylist() == [500, 500, 500]
    status, body, _ = post(
        stack.url, "/console/export", {"q": "select from trade", "format": "csv"}
    )
    assert status == 200 and body.count(b"\n") == 1501
    status, body, _ = post(stack.url, "/console/export", {"sql": "select * frm trade"})
    assert status == 400 and json.loads(body)["error"] == "bad_query"


# -- charts ----------------------------------------------------------------------------------
CANVAS_INK = """host => [...document.querySelectorAll(host + ' canvas')].some(c => {
  if (!c.width || !c.height) return false;
  const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  const seen = new Set();
  for (let i = 0; i < data.length; i += 4 * 97) {
    seen.add(data[i] * 65536 + data[i + 1] * 256 + data[i + 2]);
  }
  return seen.size > 3;
})"""


def test_a_result_chart_renders(stack: OrderStack, page: Any, shots: Path) -> None:
    logged_in(page, stack.url)
    run_query(
        page,
        "select bar(time, interval 5 minute) as time, first(price order by time) as open, "
        "max(price) as high, min(price) as low, last(price order by time) as close, "
        "sum(size) as volume from trade where sym = 'AAPL' group by 1 order by 1",
    )
    assert 25 <= int(wait_done(page)["rows"]) <= 27  # two hours and five minutes of trades
    page.click("[data-testid=chart-tab]")
    assert page.eval_on_selector("select[aria-label='chart kind']", "s => s.value") == "candles"
    page.wait_for_function(CANVAS_INK, arg="[data-testid=result-chart]")
    screenshot(page, shots, "chart")


def test_the_symbol_view_draws_and_follows_live_trades(
    stack: OrderStack, page: Any, shots: Path
) -> None:
    logged_in(page, stack.url, "symbol")
    page.wait_for_function("document.querySelector('[data-testid=symbol-status]').dataset.bars")
    assert "live" in page.text_content("[data-testid=symbol-status]")
    page.wait_for_function(CANVAS_INK, arg="[data-testid=symbol-chart]")
    publish_trades(stack, 20, start_price=101.0)
    page.wait_for_function(
        "Number(document.querySelector('[data-testid=symbol-status]').dataset.liveTrades) >= 20"
    )
    screenshot(page, shots, "symbol")
    wait_until(lambda: count_trades(stack.url) >= 1560, 20, "the RDB to catch up")


# -- live ------------------------------------------------------------------------------------
def test_the_live_view_receives_new_rows(stack: OrderStack, page: Any, shots: Path) -> None:
    logged_in(page, stack.url, "live")
    page.wait_for_selector("#view-live input[value=trade]")
    page.click("[data-testid=live-start]")
    page.wait_for_function("document.querySelector('[data-testid=live-status]').dataset.state")
    publish_trades(stack, 30, start_price=102.0)
    page.wait_for_function(
        "Number(document.querySelector('[data-testid=live-status]').dataset.received) >= 90"
    )
    # The count is kept as rows arrive; painting is throttled to animation frames, so the
    # grid shows them a frame or more later.
    page.wait_for_function(
        """() => [...document.querySelectorAll(
                 '[data-testid=live-trade] .grid-body .grid-row')].some(r => !r.hidden)"""
    )
    rows = grid_rows(page, "[data-testid=live-trade]")
    assert {r[1] for r in rows[:90]} <= set(SYMS) and rows[0][1] == "IBM"
    screenshot(page, shots, "live")


# -- trading ---------------------------------------------------------------------------------
def send_order(page: Any, qty: int, price: float, sym: str = "AAPL") -> str:
    page.fill("input[aria-label='order sym']", sym)
    page.fill("input[aria-label=quantity]", str(qty))
    page.fill("input[aria-label=price]", str(price))
    page.evaluate("document.querySelector('[data-testid=ticket-result]').textContent = ''")
    page.click("[data-testid=submit-order]")
    page.wait_for_function("document.querySelector('[data-testid=ticket-result]').textContent")
    return str(page.text_content("[data-testid=ticket-result]"))


def test_an_order_is_in_the_blotter_and_canceled(stack: OrderStack, page: Any, shots: Path) -> None:
    logged_in(page, stack.url, "trading")
    page.fill("input[aria-label=account]", "CONSOLE1")
    page.dispatch_event("input[aria-label=account]", "change")
    result = send_order(page, 100, 99.5)
    clordid = result.split(":")[0]
    assert ": new" in result, result
    row = f"[data-testid=blotter] tr[data-clordid='{clordid}']"
    page.wait_for_selector(f"{row}[data-status=new]")
    screenshot(page, shots, "trading")
    # Replace: a new price; the order goes on under a new ClOrdID. The blotter refreshes
    # on every order event of the account: a price being typed survives those refreshes.
    page.fill(f"{row} input[aria-label='new price of {clordid}']", "99.25")
    with stack.client() as client:
        other = client.submit("CONSOLE1", "AAPL", "buy", 1, 98.0)["clordid"]
    page.wait_for_selector(f"[data-testid=blotter] tr[data-clordid='{other}']")
    assert page.input_value(f"{row} input[aria-label='new price of {clordid}']") == "99.25"
    page.click(f"{row} button[data-action=replace]")
    page.wait_for_function(
        "document.querySelector('[data-testid=ticket-result]').textContent.includes('→')"
    )
    new_id = page.text_content("[data-testid=ticket-result]").split("→")[1].split(":")[0].strip()
    row = f"[data-testid=blotter] tr[data-clordid='{new_id}']"
    page.wait_for_selector(f"{row}[data-status=replaced]")
    assert page.text_content(f"{row} td:nth-child(7)") == "99.25"
    page.click(f"{row} button[data-action=cancel]")
    page.wait_for_selector(f"{row}[data-status=canceled]")
    # A risk reject is shown with its reason.
    result = send_order(page, 50_000, 99.5)
    assert "rejected" in result and "max_order_qty" in result, result


def test_the_kill_switch(stack: OrderStack, page: Any) -> None:
    logged_in(page, stack.url, "trading")
    page.fill("input[aria-label=account]", "CONSOLE2")
    page.dispatch_event("input[aria-label=account]", "change")
    result = send_order(page, 10, 99.0)
    clordid = result.split(":")[0]
    page.wait_for_selector(f"[data-testid=blotter] tr[data-clordid='{clordid}'][data-status=new]")
    page.click("[data-testid=kill]")
    page.wait_for_function(
        "document.querySelector('[data-testid=admin-result]').textContent.includes('kill')"
    )
    assert "1 orders canceled" in page.text_content("[data-testid=admin-result]")
    page.wait_for_selector(
        f"[data-testid=blotter] tr[data-clordid='{clordid}'][data-status=canceled]"
    )
    page.wait_for_function(
        "(document.querySelector('[data-testid=risk-state]').dataset.kills || '')"
        ".includes('CONSOLE2')"
    )
    result = send_order(page, 10, 99.0)
    assert "rejected" in result and "kill" in result, result
    page.click("[data-testid=resume]")
    page.wait_for_function(
        "document.querySelector('[data-testid=admin-result]').textContent.includes('resumed')"
    )
    assert ": new" in send_order(page, 10, 99.0)


# -- operations ------------------------------------------------------------------------------
def test_the_operations_view(stack: OrderStack, page: Any, shots: Path) -> None:
    logged_in(page, stack.url, "ops")
    page.wait_for_selector("[data-testid=ops-components] tr[data-component^='rdb:']")
    text = page.text_content("[data-testid=ops-components]")
    assert "tickerplant" in text and "gateway" in text and "up" in text
    # The venue is listed with how it answers (the blotter tests sent it orders).
    venue = page.text_content("[data-testid=ops-components] tr[data-component='venue-0']")
    assert "venue 0/1" in venue and "events" in venue and "waiting" not in venue
    counters = page.text_content("[data-testid=ops-tickerplant]")
    assert "journal_bytes" in counters and "KiB" in counters
    screenshot(page, shots, "ops")


def test_the_console_routes_need_credentials(stack: OrderStack) -> None:
    request = urllib.request.Request(stack.url + "/console/ops")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 401
    started = time.monotonic()
    with urllib.request.urlopen(stack.url + "/", timeout=10) as page:
        assert b'<div id="login"' in page.read()
    assert time.monotonic() - started < 10
