"""A publisher's UPD frames: joined once, rebuilt with a newer ``base`` only when resent."""

from __future__ import annotations

import pyarrow as pa

from tickerplant.protocol import UPD, decode_upd, encode_upd
from tickerplant.publisher_frames import upd_frame, with_base

SECRET = bytes(range(16))


def test_a_frame_is_the_protocols_upd_request() -> None:
    payload = pa.py_buffer(b"payload bytes")
    frame = upd_frame(SECRET, 7, 5, b"trade", (b"pre", payload, b"post"))
    assert frame == encode_upd(SECRET, 7, 5, b"trade", b"prepayload bytespost")
    assert frame.startswith(UPD)
    publisher, batch, base, table, body = decode_upd(frame)
    assert (publisher, batch, base, table, bytes(body)) == (
        SECRET,
        7,
        5,
        b"trade",
        b"prepayload bytespost",
    )


def test_the_same_base_sends_the_kept_frame_itself() -> None:
    frame = upd_frame(SECRET, 9, 3, b"quote", (b"x" * 1000,))
    assert with_base(frame, 3) is frame


def test_a_newer_base_is_a_new_frame_and_the_kept_one_is_unchanged() -> None:
    frame = upd_frame(SECRET, 9, 3, b"quote", (b"x" * 1000,))
    kept = bytes(frame)
    resent = with_base(frame, 8)
    assert resent == upd_frame(SECRET, 9, 8, b"quote", (b"x" * 1000,))
    assert frame == kept
    assert decode_upd(resent)[2] == 8
