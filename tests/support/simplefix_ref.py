"""simplefix's encoding of a message: the reference ``fix.codec.encode`` must equal byte for
byte (``tests/test_fix_codec.py``) and is timed against (``scripts/bench_fix.py``)."""

from __future__ import annotations

from typing import Any

import simplefix


def simplefix_encode(msg_type: str, header: list[Any], body: list[Any]) -> bytes:
    msg = simplefix.FixMessage()
    msg.append_pair(8, "FIX.4.4", header=True)
    msg.append_pair(35, msg_type, header=True)
    for tag, value in header:
        msg.append_pair(tag, value, header=True)
    for tag, value in body:
        msg.append_pair(tag, value)
    return bytes(msg.encode())
