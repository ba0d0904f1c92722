"""A standby's recovery state, kept as it mirrors, is what a start-up scan of its copy finds.

The takeover of a tickerplant pair starts the new primary from the state its mirror kept
(seq, session start, the exactly-once ledger, the journal's seek points) instead of scanning
the day's journal. These tests build a primary's journal with several publishers' origins
over several index strides, feed it to a ``JournalMirror`` in uneven chunks, and compare the
kept state with ``recover`` and the index a scan builds, field by field.
"""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

import pytest

from tickerplant.clock import RollCalendar
from tickerplant.dedup import PublisherLedger
from tickerplant.journal import INDEX_STRIDE, JournalIndex, journal_path
from tickerplant.mirror import JournalMirror, MirrorError
from tickerplant.mirror_state import MirroredSession
from tickerplant.protocol import JOURNAL_MAGIC, KIND_UPD, encode_record
from tickerplant.recovery import recover, recovered_by_mirror

CALENDAR = RollCalendar.from_settings("00:00", "UTC")
TODAY = dt.date(2026, 3, 2)
NOW_NS = int(dt.datetime(2026, 3, 2, 12, tzinfo=dt.UTC).timestamp() * 1e9)
PUBLISHERS = [bytes([i]) * 16 for i in range(1, 5)]


def primary_records(n: int, first_seq: int = 1) -> list[bytes]:
    """Records as a primary journals them: each names one to three publishers' batches."""
    rng = random.Random(7)
    batches = dict.fromkeys(PUBLISHERS, 0)
    records = []
    for seq in range(first_seq, first_seq + n):
        origins = []
        for publisher in rng.sample(PUBLISHERS, rng.randint(1, 3)):
            batches[publisher] += rng.randint(1, 3)
            origins.append((publisher, batches[publisher]))
        payload = bytes(rng.randint(2_000, 30_000))  # a few records per index stride
        records.append(encode_record(KIND_UPD, seq, NOW_NS, "trade", sorted(origins), payload))
    return records


def chunks(records: list[bytes], rng: random.Random) -> list[tuple[int, bytes]]:
    """The file's bytes as the primary sends them: whole records, a few at a time."""
    out, offset, i = [], 0, 0
    while i < len(records):
        take = rng.randint(1, 12)
        data = b"".join(records[i : i + take])
        if offset == 0:
            data = JOURNAL_MAGIC + data
        out.append((offset, data))
        offset += len(data)
        i += take
    return out


def ledger_state(ledger: PublisherLedger) -> dict[bytes, tuple[int, int]]:
    return {p: (ledger.ack_level(p), ledger.expected(p)) for p in PUBLISHERS if p in ledger}


def scanned(journal_dir: Path) -> tuple[object, dict[bytes, tuple[int, int]], list[int]]:
    """What a tickerplant starting on ``journal_dir`` finds by reading it."""
    ledger = PublisherLedger()
    state = recover(journal_dir, CALENDAR, NOW_NS, ledger)
    index = JournalIndex()
    path = journal_path(journal_dir, TODAY)
    points = [index.seek_offset(path, seq) for seq in range(0, state.seq + 2, 7)]
    return state, ledger_state(ledger), points


def kept(
    mirrored: MirroredSession, journal_dir: Path
) -> tuple[object, dict[bytes, tuple[int, int]], list[int]]:
    state = recovered_by_mirror(mirrored, journal_dir, CALENDAR, NOW_NS)
    assert state is not None
    index = JournalIndex()
    index.preset(mirrored.path, mirrored.index_seqs, mirrored.index_offsets)
    points = [index.seek_offset(mirrored.path, seq) for seq in range(0, state.seq + 2, 7)]
    return state, ledger_state(mirrored.ledger), points


def test_the_mirrored_state_is_what_a_scan_of_the_copy_finds(tmp_path: Path) -> None:
    records = primary_records(400)
    assert sum(map(len, records)) > 4 * INDEX_STRIDE  # several seek points
    mirror = JournalMirror(tmp_path, fsync=False)
    for offset, data in chunks(records, random.Random(1)):
        mirror.write(TODAY, offset, data)
    mirror.close()
    assert mirror.recovery is not None
    state, ledger, points = kept(mirror.recovery, tmp_path)
    assert (state, ledger, points) == scanned(tmp_path)
    assert state.seq == 400 and state.session_start_seq == 0
    assert len(mirror.recovery.index_seqs) > 4
    assert sum(level for level, _ in ledger.values()) > 0


def test_a_mirror_reopened_on_its_copy_keeps_going_from_it(tmp_path: Path) -> None:
    """A standby restarted mid-day: the state is rebuilt from its copy, then kept again."""
    records = primary_records(300, first_seq=51)  # the session began at seq 51
    sent = chunks(records, random.Random(2))
    mirror = JournalMirror(tmp_path, fsync=False)
    half = len(sent) // 2
    for offset, data in sent[:half]:
        mirror.write(TODAY, offset, data)
    mirror.close()
    mirror = JournalMirror(tmp_path, fsync=False)
    for offset, data in sent[half:]:
        mirror.write(TODAY, offset, data)
    mirror.close()
    assert mirror.recovery is not None
    state, ledger, points = kept(mirror.recovery, tmp_path)
    assert (state, ledger, points) == scanned(tmp_path)
    assert state.session_start_seq == 50


def test_a_refused_chunk_leaves_the_state_as_it_was(tmp_path: Path) -> None:
    records = primary_records(40)
    sent = chunks(records, random.Random(3))
    mirror = JournalMirror(tmp_path, fsync=False)
    mirror.write(TODAY, *sent[0])
    offset, data = sent[1]
    corrupt = bytearray(data)
    corrupt[-1] ^= 0xFF  # the chunk's last record fails its checksum
    with pytest.raises(MirrorError, match="corrupt"):  # the link SYNCs again
        mirror.write(TODAY, offset, bytes(corrupt))
    for offset, data in sent[1:]:
        mirror.write(TODAY, offset, data)
    mirror.close()
    assert mirror.recovery is not None
    assert kept(mirror.recovery, tmp_path) == scanned(tmp_path)


def test_other_days_and_empty_copies_recover_by_scanning(tmp_path: Path) -> None:
    """Only today's non-empty copy is taken as kept; anything else goes through ``recover``
    (which ends a session the pair missed the roll of, say)."""
    mirror = JournalMirror(tmp_path, fsync=False)
    yesterday = TODAY - dt.timedelta(days=1)
    for offset, data in chunks(primary_records(20), random.Random(4)):
        mirror.write(yesterday, offset, data)
    assert mirror.recovery is not None
    assert recovered_by_mirror(mirror.recovery, tmp_path, CALENDAR, NOW_NS) is None
    mirror.write(TODAY, 0, JOURNAL_MAGIC)  # a roll's new file, no record yet
    assert mirror.recovery.session == TODAY
    assert recovered_by_mirror(mirror.recovery, tmp_path, CALENDAR, NOW_NS) is None
    mirror.close()
