"""Inputs the fuzzers (``scripts/fuzz.py``) found crashing a parser, each now refused with
the parser's own typed error. One test per crash, holding its (minimised) reproducer."""

from __future__ import annotations

import pytest

from qipc import codec
from qipc.types import QProtocolError


def q_message(body: bytes) -> bytes:
    return b"\x01\x01\x00\x00" + (8 + len(body)).to_bytes(4, "little") + body


def test_qipc_table_whose_column_names_are_not_symbols() -> None:
    # A table (98) over a dictionary (99) keyed by a boolean atom: TypeError before.
    message = q_message(b"\x62\x00\x63\xff\x01\x00\x00\x00\x00\x00\x00")
    with pytest.raises(QProtocolError, match="column names must be a symbol vector"):
        codec.decode(message)
    # Keyed by a string (a char vector): its characters were taken as column names.
    keys = b"\x0a\x00\x01\x00\x00\x00x"
    values = b"\x00\x00\x01\x00\x00\x00\xf9" + (1).to_bytes(8, "little")
    message = q_message(b"\x62\x00\x63" + keys + values)
    with pytest.raises(QProtocolError, match="column names must be a symbol vector"):
        codec.decode(message)
