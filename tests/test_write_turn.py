"""SQLite writers take turns: within a process first come, first served, and across processes through an
exclusive lock on a file beside the database (two stores on one file here stand for two processes: a
``flock`` belongs to its open file, so two descriptors exclude each other even in one process)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from leadscore.ingest.committer import FairLock, turn_file
from leadscore.store import Store


def test_two_locks_on_one_file_never_overlap(tmp_path: Path) -> None:
    path = str(tmp_path / "db.sqlite-turn")
    locks = [FairLock(path), FairLock(path)]
    inside: list[int] = []
    overlaps: list[list[int]] = []

    def write(lock: FairLock, me: int) -> None:
        for _ in range(100):
            with lock.held():
                inside.append(me)
                time.sleep(0.0002)
                if len(inside) > 1:
                    overlaps.append(list(inside))
                inside.remove(me)

    threads = [threading.Thread(target=write, args=(locks[i % 2], i)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert overlaps == []
    assert inside == []


def test_the_turn_file_sits_beside_a_database_file(tmp_path: Path) -> None:
    store = Store.from_url(str(tmp_path / "leadscore.db"))
    try:
        assert turn_file(store) == str(tmp_path / "leadscore.db") + "-turn"
    finally:
        store.dispose()
