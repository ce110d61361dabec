"""SQLite writers take turns: within a process first come, first served, and across processes through an
exclusive lock on a file beside the database (two locks on one file here stand for two processes: a
``flock`` belongs to its open file, so two descriptors exclude each other even in one process). A group of
requests is committed on their event loop when the turn is free, else by the writer thread."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

from leadscore.ingest.apply import event_row
from leadscore.ingest.committer import FairLock, GroupCommitter, turn_file
from leadscore.ingest.segment import normalise
from leadscore.store import Store
from leadscore.store.event_log import waiting_events

NOW = 1_717_200_000_000


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


def _row(message_id: str) -> dict[str, Any]:
    return event_row(
        normalise({"type": "page", "userId": "ann", "messageId": message_id}, received_ms=NOW), "api"
    )


def test_a_group_is_committed_on_the_loop_when_the_turn_is_free_else_by_the_writer_thread(
    sqlite_store: Store,
) -> None:
    committer = GroupCommitter(sqlite_store).start()
    turn_path = turn_file(sqlite_store)
    assert turn_path is not None
    other_process = FairLock(turn_path)  # its own descriptor: as another process's writer

    async def scenario() -> None:
        assert await committer.commit([_row("m1"), _row("m2")]) == {"m1", "m2"}
        assert committer.inline_groups == 1  # the turn was free: no thread hand-off
        assert other_process.try_acquire()
        waiting = asyncio.ensure_future(committer.commit([_row("m3"), _row("m1")]))
        await asyncio.sleep(0.3)
        assert not waiting.done()  # not acknowledged while it cannot be written
        other_process.release()
        assert await asyncio.wait_for(waiting, 10) == {"m3"}  # m1: a resend
        assert committer.inline_groups == 1  # that group went to the writer thread

    try:
        asyncio.run(scenario())
    finally:
        committer.stop()
    # a request still in flight after the writer thread stopped (shutdown) is committed on its loop
    assert asyncio.run(committer.commit([_row("m4")])) == {"m4"}
    with sqlite_store.connect() as conn:
        assert waiting_events(conn) == 4


def test_a_request_read_while_a_flush_is_scheduled_joins_its_group(sqlite_store: Store) -> None:
    committer = GroupCommitter(sqlite_store).start()

    async def scenario() -> None:
        first = asyncio.ensure_future(committer.commit([_row("g1")]))
        await asyncio.sleep(0)  # the first request runs: its commit schedules the flush
        # a request read now runs behind that flush, as one read in the same loop pass does
        second = asyncio.ensure_future(committer.commit([_row("g2")]))
        assert await first == {"g1"}
        assert await second == {"g2"}

    try:
        asyncio.run(scenario())
    finally:
        committer.stop()
    assert (committer.groups, committer.inline_groups) == (1, 1)  # one commit, on the loop, for both
