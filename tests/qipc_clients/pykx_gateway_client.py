"""PyKX as a q client of the gateway's kdb+ port.

Run in its own process (a PyKX client and a Python socket server in one process can
deadlock): ``python pykx_gateway_client.py PORT USER:PASSWORD COMMAND [ARGS]``; prints one
JSON object. ``USER:PASSWORD`` may be ``-`` for none.

Commands:
  run JSON    JSON is a list of requests: {"q": text} sends q text, {"call": name, "arg": text}
              sends (`name; "text"), and "async": true sends it async (then h"" waits for it).
              Prints {"results": [...]}: per request the result described (type, keys, pandas
              dtypes, Python types of the first row, rows as text) or {"error": q error text}.
  login       connect and send h""; prints {"ok": true} or {"error": why it was refused}.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

os.environ.setdefault("PYKX_UNLICENSED", "true")

import pykx as kx


def describe(result: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"type": type(result).__name__}
    if not isinstance(result, kx.Table | kx.KeyedTable):
        out["value"] = str(result.py())
        return out
    frame = result.pd()
    out["keys"] = (
        [n for n in frame.index.names if n is not None] if out["type"] == "KeyedTable" else []
    )
    if out["keys"]:
        frame = frame.reset_index()
    out["columns"] = list(frame.columns)
    out["dtypes"] = {c: str(frame[c].dtype) for c in frame.columns}
    out["pytypes"] = (
        {c: type(frame[c].iloc[0]).__name__ for c in frame.columns} if len(frame) else {}
    )
    out["rows"] = [[_text(v) for v in row] for row in frame.itertuples(index=False)]
    return out


def _text(value: Any) -> Any:
    if hasattr(value, "tolist"):  # a per-group vector
        return [_text(v) for v in value.tolist()]
    if isinstance(value, bytes):
        return "b:" + value.decode()
    if isinstance(value, float | int | str) or value is None:
        return value
    return str(value)


def main(argv: list[str]) -> dict[str, Any]:
    port, login, command, *args = argv
    user, _, password = ("", "", "") if login == "-" else login.partition(":")
    try:
        conn = kx.SyncQConnection("127.0.0.1", int(port), username=user, password=password)
    except Exception as exc:  # PyKX reports a refused login as a plain exception
        return {"error": f"{type(exc).__name__}: {exc}"}
    try:
        if command == "login":
            conn("")
            return {"ok": True}
        if command == "run":
            results = []
            for request in json.loads(args[0]):
                if "q" in request:
                    message: tuple[Any, ...] = (request["q"],)
                else:
                    message = (request["call"], kx.CharVector(request["arg"]))
                try:
                    if request.get("async"):
                        conn(*message, wait=False)
                        results.append({"type": "async", "after": str(conn("").py())})
                    else:
                        results.append(describe(conn(*message)))
                except kx.QError as exc:
                    results.append({"error": str(exc)})
            return {"results": results}
        raise SystemExit(f"unknown command {command}")
    finally:
        conn.close()


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:])))
