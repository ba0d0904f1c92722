"""``tickerplant.delivered`` splits a message into the records ``iter_records`` decodes,
and refuses what it refuses, with the same error, after the same good records."""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any

import pytest

from tickerplant.delivered import delivered
from tickerplant.protocol import KIND_EOD, KIND_UPD, ProtocolError, encode_record, iter_records


def _blob(rng: random.Random) -> bytes:
    records = []
    for seq in range(1, rng.randint(1, 6) + 1):
        kind = rng.choice([KIND_UPD, KIND_UPD, KIND_EOD])
        table = rng.choice(["trade", "quote", "ünïcode", ""])
        origins = tuple(
            (rng.randbytes(16), rng.randint(1, 10**6)) for _ in range(rng.randint(0, 3))
        )
        payload = rng.randbytes(rng.choice([0, 1, 7, 64, 3000]))
        records.append(
            encode_record(kind, seq, rng.randint(-(2**40), 2**40), table, origins, payload)
        )
    return b"".join(records)


def _outcome(records: Iterable[Any]) -> tuple[list[tuple[object, ...]], str | None]:
    got: list[tuple[object, ...]] = []
    try:
        for r in records:
            got.append((r.kind, r.seq, r.ts_recv, r.table, bytes(r.payload)))
            assert type(r.payload) is bytes  # its own bytes, never a view of the message
    except ProtocolError as exc:
        return got, str(exc)
    return got, None


def test_the_same_records_as_iter_records() -> None:
    rng = random.Random(7)
    for _ in range(200):
        blob = _blob(rng)
        assert _outcome(delivered(blob)) == _outcome(iter_records(blob))
        assert _outcome(delivered(memoryview(blob)))[1] is None


def test_end_of_day_date() -> None:
    blob = encode_record(KIND_EOD, 9, 0, "", (), b"2026-12-05")
    (record,) = delivered(blob)
    assert record.eod_date == "2026-12-05"


def test_truncated_and_corrupted_messages_fail_as_iter_records_does() -> None:
    rng = random.Random(11)
    failures = 0
    for _ in range(300):
        blob = bytearray(_blob(rng))
        if rng.random() < 0.5:
            blob = blob[: rng.randrange(len(blob))]
        else:
            blob[rng.randrange(len(blob))] ^= 1 << rng.randrange(8)
        expected = _outcome(iter_records(bytes(blob)))
        assert _outcome(delivered(bytes(blob))) == expected
        failures += expected[1] is not None
    assert failures > 100  # the corruptions were caught, not only agreed on


def test_a_bad_body_behind_a_good_checksum() -> None:
    # Checksums cover bodies, not meaning: a name or origins past the body, or a name that
    # is not UTF-8, must still be refused.
    from tickerplant.checksum import crc32
    from tickerplant.protocol import BODY_PREFIX, RECORD_HEADER

    def framed(body: bytes) -> bytes:
        return RECORD_HEADER.pack(len(body), crc32(body)) + body

    past = framed(BODY_PREFIX.pack(KIND_UPD, 1, 200, 0, 1, 0) + b"short")
    not_utf8 = framed(BODY_PREFIX.pack(KIND_UPD, 1, 2, 0, 1, 0) + b"\xff\xfe" + b"payload")
    tiny = framed(b"abc")
    good = encode_record(KIND_UPD, 1, 0, "trade", (), b"x")
    for bad in (past, not_utf8, tiny):
        got, error = _outcome(delivered(good + bad))
        assert (got, error) == _outcome(iter_records(good + bad))
        assert len(got) == 1 and error is not None
    with pytest.raises(ProtocolError, match="UTF-8"):
        list(delivered(not_utf8))
