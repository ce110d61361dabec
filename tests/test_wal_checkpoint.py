"""SQLite's write-ahead log, copied by size (``store/wal.py``, ``scoring/snapshot.py: copy_log``).

What must hold: ``wal.backlog`` counts the pages a checkpoint would copy; the processor checkpoints only
once ``CHECKPOINT_FRAMES`` wait, and then copies all of it, so that the log starts over and stays
bounded over a long run; connections checkpoint inside a commit only past ``WAL_AUTOCHECKPOINT``, twice
the processor's threshold.

Frame counts are SQLite's WAL mechanics: a commit appends one frame per page it changed. A fresh
database's ``CREATE TABLE`` changes two pages (the schema on page 1, the table's root on page 2); a row
small enough to share the root page, inserted or updated, changes one.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from leadscore.ingest.apply import event_row
from leadscore.ingest.segment import normalise
from leadscore.model import loads_model
from leadscore.scoring import snapshot
from leadscore.scoring.pipeline import publish
from leadscore.scoring.processor import ProcessorStats
from leadscore.store import Store
from leadscore.store.event_log import enqueue
from leadscore.store.wal import CHECKPOINT_FRAMES, WAL_AUTOCHECKPOINT, backlog

NOW = 1_717_200_000_000
MODEL = """
model: wal
engagement:
  - {id: visit, name: Visit, event: {type: page}, points: 10}
scale: {engagement_max: 100, weights: {fit: 0, engagement: 1}, bands: {hot: 70, warm: 15}}
"""
PAGE = 4096
FRAME = 24 + PAGE  # a frame's header, then the page
WAL_HEADER = 32


def _raw(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA wal_autocheckpoint=0")
    return db


def test_backlog_counts_the_pages_not_yet_copied(tmp_path: Path) -> None:
    path = tmp_path / "raw.db"
    assert backlog(str(path)) is None  # no shared-memory file: not known
    db = _raw(path)
    db.execute("CREATE TABLE t (x INTEGER)")  # pages 1 and 2
    db.execute("INSERT INTO t VALUES (0)")  # page 2
    assert backlog(str(path)) == 3
    for _ in range(5):
        db.execute("UPDATE t SET x = x + 1")  # page 2 each time
    assert backlog(str(path)) == 8
    # the checkpoint reports the same two numbers (busy, frames in the log, frames copied)
    assert db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone() == (0, 8, 8)
    assert backlog(str(path)) == 0
    db.execute("UPDATE t SET x = x + 1")  # the log starts over: one frame
    assert backlog(str(path)) == 1
    db.close()


@pytest.fixture
def probe(sqlite_store: Store) -> Store:
    """A store whose log was copied whole, with a one-row table: each update of it adds one frame."""
    with sqlite_store.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE probe (x INTEGER)")
        conn.exec_driver_sql("INSERT INTO probe VALUES (0)")
    assert sqlite_store.checkpoint()
    return sqlite_store


def _update(store: Store, times: int) -> None:
    for _ in range(times):
        with store.begin() as conn:
            conn.exec_driver_sql("UPDATE probe SET x = x + 1")


def _backlog(store: Store) -> int | None:
    database = store.engine.url.database
    assert database
    return backlog(database)


def test_a_checkpoint_at_least_n_pages_runs_once_n_wait(probe: Store) -> None:
    _update(probe, 7)  # the first restarts the log: 7 frames
    assert _backlog(probe) == 7
    assert probe.checkpoint(at_least=8) is False
    assert _backlog(probe) == 7  # nothing copied
    assert probe.checkpoint(at_least=7) is True
    assert _backlog(probe) == 0


def test_connections_checkpoint_by_themselves_only_past_twice_the_processors_threshold(probe: Store) -> None:
    assert (CHECKPOINT_FRAMES, WAL_AUTOCHECKPOINT) == (500, 1000)
    with probe.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 1000
    # a processor's transaction turns it off and back on
    with probe.begin(durable=False, checkpoint=False) as conn:
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
    with probe.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 1000
    # 999 frames wait (the processor would have copied them at 500): no commit copied them on its own ...
    _update(probe, 999)
    assert _backlog(probe) == 999
    _update(probe, 1)  # ... until the commit that makes 1,000
    assert _backlog(probe) == 0


def _acknowledge(store: Store, first: int, count: int) -> None:
    rows = [
        event_row(
            normalise(
                {
                    "type": "page",
                    "userId": f"u{(first + i) % 7}",
                    "messageId": f"m{first + i}",
                    "timestamp": NOW,
                },
                received_ms=NOW,
            ),
            "api",
        )
        for i in range(count)
    ]
    with store.begin() as conn:
        enqueue(conn, rows)


def test_the_processor_copies_the_log_past_the_threshold_and_the_log_stays_bounded(
    sqlite_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = sqlite_store
    publish(store, loads_model(MODEL), as_of=NOW)
    with store.connect() as conn:  # the log copied and its file emptied: it grows from here
        assert conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").one() == (0, 0, 0)
    threshold = 40
    monkeypatch.setattr(snapshot, "CHECKPOINT_FRAMES", threshold)
    copies: list[tuple[int, int, bool]] = []  # pages waiting before and after each batch's copy_log, ran
    real = snapshot.copy_log

    def watched(s: Store) -> bool:
        before = _backlog(s)
        ran = real(s)
        after = _backlog(s)
        assert before is not None and after is not None
        copies.append((before, after, ran))
        return ran

    monkeypatch.setattr(snapshot, "copy_log", watched)
    stats = ProcessorStats()
    for batch in range(30):
        _acknowledge(store, batch * 5, 5)
        assert snapshot.process_batch(store, 100, stats) == 5
    assert stats.events == 150
    with store.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM events").scalar() == 150
    # below the threshold nothing is copied; at or past it, everything
    for before, after, did in copies:
        assert did == (before >= threshold)
        assert after == (0 if did else before)
    # what each batch (its acknowledgement, two turns) added to the log
    added = [
        before - previous for (before, _, _), (_, previous, _) in zip(copies[1:], copies[:-1], strict=True)
    ]
    assert min(added) > 0
    assert sum(added) > 3 * threshold  # the run wrote several thresholds' worth ...
    assert sum(did for _, _, did in copies) >= 3  # ... and copied the log each time it passed one
    # after a copy the log starts over, so it never holds more than the threshold and one batch; and
    # its file never grew past the largest log seen (it would hold the whole run's frames otherwise)
    largest = max(before for before, _, _ in copies)
    assert largest < threshold + max(added)
    wal = Path(f"{store.engine.url.database}-wal")
    assert wal.stat().st_size <= WAL_HEADER + largest * FRAME


def _frames(store: Store) -> int:
    """The log's last valid frame (``mxFrame``, byte 16 of the wal-index header: sqlite.org/walformat.html)."""
    with open(f"{store.engine.url.database}-shm", "rb") as shm:
        header = shm.read(20)
    return int.from_bytes(header[16:20], sys.byteorder)


def test_what_commits_during_the_copy_is_copied_holding_the_turn_and_the_log_starts_over(
    probe: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(snapshot, "CHECKPOINT_FRAMES", 10)
    _update(probe, 10)
    real = Store.checkpoint
    calls: list[tuple[int, bool, int | None]] = []

    def checkpoint(self: Store, at_least: int = 0) -> bool:
        if calls:
            ran = real(self, at_least)
        else:  # an acknowledgement's group: its transaction begins before the copy and commits after it
            group = sqlite3.connect(str(self.engine.url.database), isolation_level=None)
            group.execute("BEGIN IMMEDIATE")
            group.execute("UPDATE probe SET x = x + 1")
            ran = real(self, at_least)
            group.execute("COMMIT")
            group.close()
        calls.append((at_least, ran, _backlog(self)))
        return ran

    monkeypatch.setattr(Store, "checkpoint", checkpoint)
    assert snapshot.copy_log(probe) is True
    # the copy outside the turn took the 10 pages; the group's page was copied holding the turn
    assert calls == [(10, True, 1), (1, True, 0)]
    assert _frames(probe) == 11
    _update(probe, 1)
    # the log started over; without the second copy, SQLite would not have (the group's transaction began
    # before the log was copied whole), and it would hold 12 frames, growing on
    assert _frames(probe) == 1


def test_a_store_in_memory_checkpoints_without_knowing_the_backlog(tmp_path: Path) -> None:
    store = Store.from_url("sqlite:///:memory:")
    try:
        # no shared-memory file to read: the threshold cannot be checked, so it copies (as before)
        assert store.checkpoint(at_least=CHECKPOINT_FRAMES) is True
    finally:
        store.dispose()


# SQLite's unix VFS: the shared-memory file's locks are bytes from 120 on, the "dead man switch" at
# byte 128. Every connection holds a shared lock on it; the first to open the database after all have
# closed takes it exclusively and truncates the file (https://sqlite.org/walformat.html, "Locks")
_DMS = 128
_TRY_EXCLUSIVE = f"""
import fcntl, sys
with open(sys.argv[1], "r+b") as f:
    try:
        fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, {_DMS})
    except OSError:
        print("held")
    else:
        print("free")
"""


def _dms_lock(shm: Path) -> str:
    """Whether another process finds the dead-man switch of ``shm`` held (by a connection of this one)."""
    return subprocess.run(
        [sys.executable, "-c", _TRY_EXCLUSIVE, str(shm)], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_reading_the_backlog_keeps_this_processs_locks(tmp_path: Path) -> None:
    """POSIX record locks are the process's and go when it closes any descriptor of the file: a read
    that opened and closed ``-shm`` released the lock every connection here holds, and the next process
    to open the database truncated the shared memory under them (the processor died of SIGBUS)."""
    path = tmp_path / "locks.db"
    db = _raw(path)
    db.execute("CREATE TABLE t (x INTEGER)")
    shm = Path(f"{path}-shm")
    assert _dms_lock(shm) == "held"
    for expected in (3, 4, 5):  # the table took two frames, each insert adds one
        db.execute("INSERT INTO t VALUES (1)")
        assert backlog(str(path)) == expected
        assert _dms_lock(shm) == "held"
    db.close()


def test_a_new_shared_memory_file_is_read_after_the_old_one_went(tmp_path: Path) -> None:
    """The last connection's close removes ``-shm``; the next connection creates another file, which
    the reader follows (it kept a descriptor of the first)."""
    path = tmp_path / "again.db"
    db = _raw(path)
    db.execute("CREATE TABLE t (x INTEGER)")
    assert backlog(str(path)) == 2
    db.close()
    assert backlog(str(path)) is None  # the file went with the last connection
    db = _raw(path)
    db.execute("INSERT INTO t VALUES (1)")  # the log starts over: one frame
    assert backlog(str(path)) == 1
    db.close()
