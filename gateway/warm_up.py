"""A gateway's first query, run before it says it is ready.

A gateway's first query costs 100-200 ms more than the next ones: modules imported on first
use, DuckDB's first bind and merge of backend results, the fetch threads' start, the first
Arrow and JSON encodes. A client failing over to a gateway that had not served a query yet
paid that on its first request (the gateway probe of ``scripts/bench_failover.py``). So the
gateway runs one real query through the same path before its ready file appears: a
``count(*)`` of one table over every backend that may hold it, under a short time limit. A
failure (a backend not up yet) is logged and passed over: the warm-up saves time, it checks
nothing.

Then, once the HTTP server accepts connections and still before the ready file, one request
over it (``warm_http``): FastAPI builds the state of the routes a request is matched through
(their dependants, pydantic adapters) on the first request that reaches them, ~20-40 ms.
"""

from __future__ import annotations

import http.client
import importlib
import logging
import ssl
import time

from gateway import formats
from gateway.router import Router

log = logging.getLogger("gateway.warm_up")

WARM_UP_TIMEOUT_S = 5.0


def warm_up(router: Router, timeout_s: float = WARM_UP_TIMEOUT_S) -> float:
    """Run the warm-up query; the seconds it took (0 when no table is known yet)."""
    # The first sync endpoint's call imports AnyIO's asyncio backend (~7 ms) on the event
    # loop's thread, in the middle of a request: imported here instead.
    importlib.import_module("anyio._backends._asyncio")
    columns = router.topology.table_columns()
    if not columns:
        return 0.0
    table = "trade" if "trade" in columns else sorted(columns)[0]
    # Two shapes: a plain count, and an aggregate by sym, whose merge loads Arrow's compute
    # kernels on first use.
    shapes = [f'SELECT count(*) AS n FROM "{table}"']
    if any(name == "sym" for name, _type in columns[table]):
        shapes.append(f'SELECT sym, count(*) AS n FROM "{table}" GROUP BY sym')
    started = time.monotonic()
    for sql in shapes:
        try:
            result = router.run_sql(sql, timeout_s=timeout_s, allow_partial=True)
            for fmt in ("arrow", "json"):
                formats.encode(result, fmt)
        except Exception as exc:  # any failure: the first client query will say what is wrong
            log.info("warm-up query skipped (%s): %s", sql, exc)
            break
    took = time.monotonic() - started
    log.debug("warm-up query on %s: %.0f ms", table, took * 1000)
    return took


def warm_http(host: str, port: int, tls: bool, timeout_s: float = WARM_UP_TIMEOUT_S) -> None:
    """``POST /query`` with an empty body over the gateway's own server: matched through
    every route before it and refused before anything runs, 422 (no query in it), or 401
    with authentication on (no credentials: neither logged nor audited)."""
    conn: http.client.HTTPConnection
    if tls:  # its own certificate, on loopback: nothing to verify, and nothing is sent
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        conn = http.client.HTTPSConnection(host, port, timeout=timeout_s, context=context)
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout_s)
    try:
        conn.request("POST", "/query", body=b"{}", headers={"Content-Type": "application/json"})
        conn.getresponse().read()
    except (OSError, http.client.HTTPException) as exc:
        log.info("warm-up request skipped: %s", exc)
    finally:
        conn.close()
