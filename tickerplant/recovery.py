"""Start-up: continue the sequence and the session from what the journal holds.

The newest journal file is validated record by record. A last record cut short, what a
crash inside a journal write leaves (``journal``), is cut at once, its bytes kept beside
the file and a warning logged: it was never published or acknowledged, and refusing to
start would only stop a supervised restart. Any other fault (a bad checksum, garbage, an
impossible length) stops the start with a message saying how many records are valid and
how to repair (or ``--repair`` does it, keeping the cut bytes).

If the tickerplant was down when its session ended, the missing end-of-day record is
written now, so every subscriber replaying the journal still sees the day end in the right
place.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path

from tickerplant.clock import RollCalendar
from tickerplant.dedup import PublisherLedger
from tickerplant.journal import (
    JournalCorrupt,
    JournalIndex,
    JournalWriter,
    ScanResult,
    journal_files,
    repair_journal,
    scan_journal,
)
from tickerplant.mirror_state import MirroredSession
from tickerplant.protocol import KIND_EOD, encode_record

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecoveredState:
    seq: int
    session: dt.date
    session_start_seq: int


def _scan(path: Path, ledger: PublisherLedger | None, repair: bool) -> ScanResult:
    on_record = None if ledger is None else ledger.restore_record
    scan = scan_journal(path, on_record=on_record)
    if scan.corrupt:
        if scan.torn_tail and not repair:
            log.warning(
                "%s: cutting a torn last record (%d bytes after %d valid records, last seq "
                "%s), left by a crash inside a journal write: never published or "
                "acknowledged; its bytes are kept in %s.corrupt-%d",
                path,
                scan.total_bytes - scan.valid_bytes,
                scan.records,
                scan.last_seq,
                path.name,
                scan.valid_bytes,
            )
        elif not repair:
            raise JournalCorrupt(scan)
        else:
            log.warning("repairing: %s", scan.describe())
        scan = repair_journal(path)
        if ledger is not None:
            scan = scan_journal(path, on_record=on_record)
    return scan


def _end_session(path: Path, session: dt.date, seq: int, now_ns: int, why: str) -> int:
    """Append session's missing end-of-day record (at ``seq``) to its journal."""
    writer = JournalWriter(path, JournalIndex())
    writer.append(encode_record(KIND_EOD, seq, now_ns, "", (), session.isoformat().encode()), seq)
    writer.close()
    log.warning(
        "session %s %s while the tickerplant was down; wrote its end-of-day record at seq %d",
        session,
        why,
        seq,
    )
    return seq


def recover(
    journal_dir: Path,
    calendar: RollCalendar,
    now_ns: int,
    ledger: PublisherLedger,
    repair: bool = False,
) -> RecoveredState:
    today = calendar.session_of(now_ns)
    files = journal_files(journal_dir)
    if not files:
        return RecoveredState(0, today, 0)
    last_date, last_path = files[-1]
    scan = _scan(last_path, ledger, repair)
    seq = scan.last_seq
    if seq is None:  # an empty file, just opened by a roll: the sequence lives in the one before
        seq = 0
        for date, path in reversed(files[:-1]):
            previous = _scan(path, None, repair)
            if previous.last_seq is not None:
                seq = previous.last_seq
                if not previous.ends_with_eod:
                    # A roll opens the next file before it ends the session: stopped in
                    # between, the session's end-of-day record is still to be written.
                    seq = _end_session(path, date, seq + 1, now_ns, "was being rolled")
                break
    session_start_seq = (scan.first_seq - 1) if scan.first_seq is not None else seq
    if last_date < today:
        if scan.records and not scan.ends_with_eod:
            seq = _end_session(last_path, last_date, seq + 1, now_ns, "ended")
        return RecoveredState(seq, today, seq)
    if last_date > today:
        log.warning(
            "the newest journal is for %s but the clock says %s; continuing %s",
            last_date,
            today,
            last_date,
        )
    log.info("recovered %s: %d records, seq %d", last_path, scan.records, seq)
    return RecoveredState(seq, last_date, session_start_seq)


def recovered_by_mirror(
    mirrored: MirroredSession, journal_dir: Path, calendar: RollCalendar, now_ns: int
) -> RecoveredState | None:
    """A standby's state at its takeover, as ``recover`` would find it, when it applies: the
    copy is the newest file, of today's session, with records. None: recover as usual."""
    files = journal_files(journal_dir)
    if (
        mirrored.last_seq is None
        or mirrored.first_seq is None
        or not files
        or files[-1][1] != mirrored.path
        or mirrored.session != calendar.session_of(now_ns)
    ):
        return None
    log.info(
        "took over %s as mirrored: seq %d, %d publishers, no scan",
        mirrored.path,
        mirrored.last_seq,
        len(mirrored.ledger),
    )
    return RecoveredState(mirrored.last_seq, mirrored.session, mirrored.first_seq - 1)
