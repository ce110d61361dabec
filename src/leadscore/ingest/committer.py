"""Group commit: many requests' events made durable in one transaction (one fsync), then acknowledged.

Request handlers ``submit`` rows (or ``await commit(rows)`` on an event loop) and wait; a single writer
thread drains everything queued, appends it to the inbox (``event_log.enqueue``: a JSON array per 100
events, no index to update) in one transaction, and resolves every waiter only after the commit. A 200
therefore always means "on disk". If the commit fails, every waiter in that group fails and no client is
told its events were stored; the group is then committed again in halves, so a request the database
refuses fails alone and the others are answered as usual. On SQLite, what an event loop's requests gather over a couple of loop
passes is committed on the loop itself when the write turn is free (``_flush``), and goes to the writer
thread only when it is not; either way through the driver's own connection (``acknowledge_sqlite``).

Waiters on an event loop are woken with one ``call_soon_threadsafe`` per group and loop, not one per
request: each such call wakes the loop through its self-pipe, and the writer thread would otherwise
contend with the loop for the GIL once per request.

On SQLite the committer and the processor take turns at the single write lock through ``write_turn``,
first come first served within a process, and through a lock file between processes. Left to SQLite's
busy handler (which polls with growing sleeps), a processor that starts its next batch the moment it
commits the last wins the lock again and again, and acknowledgements stall behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import queue
import threading
import weakref
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine

from leadscore.store import Store
from leadscore.store.event_log import acknowledge_sqlite, enqueue, known_message_ids

MAX_GROUP_ROWS = 20_000
# A message is a duplicate when its id is in the event log or among the last RECENT_IDS this committer
# stored: a resend that arrives while the first copy still waits in the inbox is answered as one (the
# usual case: a client library retrying a request whose answer it missed). A copy acknowledged by
# another process or before a restart, still waiting in the inbox, is reported as new; the processor
# stores and applies it only once all the same (the log's unique message id decides).
RECENT_IDS = 200_000
# loop passes a group gathered on an event loop waits before it is committed (see ``_flush``)
GATHER_PASSES = 2


class FairLock:
    """A lock granted in the order it was asked for; with a ``path``, also held against other processes.

    Between processes the lock is an exclusive ``flock`` on that file, taken after the in-process turn
    (one descriptor serves the whole process, since one thread at a time gets that far). A process
    blocked in ``flock`` is woken by the kernel the moment the holder lets go, where SQLite's busy
    handler would sleep for up to 100 ms between tries.
    """

    def __init__(self, path: str | None = None) -> None:
        self._cond = threading.Condition()
        self._waiting: deque[object] = deque()
        self._held = False
        self._path = path
        self._fd: int | None = None

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        me = object()
        with self._cond:
            self._waiting.append(me)
            while self._held or self._waiting[0] is not me:
                self._cond.wait()
            self._waiting.popleft()
            self._held = True
        try:
            if self._path is not None:
                fcntl.flock(self._descriptor(), fcntl.LOCK_EX)
        except BaseException:
            self._let_go()
            raise
        try:
            yield
        finally:
            self.release()

    def try_acquire(self) -> bool:
        """Take the lock if nobody holds it or waits for it, in this process or another; never blocks."""
        with self._cond:
            if self._held or self._waiting:
                return False
            self._held = True
        if self._path is not None:
            try:
                fcntl.flock(self._descriptor(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:  # another process holds it (BlockingIOError), or the file is gone
                self._let_go()
                return False
        return True

    def release(self) -> None:
        if self._path is not None:
            fcntl.flock(self._descriptor(), fcntl.LOCK_UN)
        self._let_go()

    def _let_go(self) -> None:
        with self._cond:
            self._held = False
            self._cond.notify_all()

    def _descriptor(self) -> int:
        if self._fd is None:
            assert self._path is not None
            self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        return self._fd


_TURNS: weakref.WeakKeyDictionary[Engine, FairLock] = weakref.WeakKeyDictionary()
_TURNS_LOCK = threading.Lock()


def turn_file(store: Store) -> str | None:
    """The file SQLite writers of every process lock in turn: beside the database (none in memory)."""
    database = store.engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return f"{database}-turn"


def sqlite_turn(store: Store) -> FairLock | None:
    """The lock SQLite writers to ``store`` take turns at (None on PostgreSQL: rows are locked)."""
    if store.dialect != "sqlite":
        return None
    with _TURNS_LOCK:
        turn = _TURNS.get(store.engine)
        if turn is None:
            turn = _TURNS[store.engine] = FairLock(turn_file(store))
    return turn


@contextlib.contextmanager
def write_turn(store: Store) -> Iterator[None]:
    """Wait for this store's turn to write to a SQLite store, against this process's other writers (first
    come, first served) and other processes' (PostgreSQL: no wait, rows are locked)."""
    turn = sqlite_turn(store)
    if turn is None:
        yield
        return
    with turn.held():
        yield


class _HeldConnection:
    """A writer's connection, held between groups: checking one out of the pool and resetting it on
    return would cost more than a small group's inserts. Dropped whole after a failure."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._conn: Connection | None = None

    def get(self) -> Connection:
        if self._conn is None:
            self._conn = self._store.engine.connect().execution_options(immediate=True)
        return self._conn

    def driver(self) -> Any:
        """The driver's own connection (SQLite: ``sqlite3.Connection``), for ``acknowledge_sqlite``."""
        return self.get().connection.driver_connection

    def drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.invalidate()
                self._conn.close()
            self._conn = None


@dataclass
class _Pending:
    rows: Sequence[dict[str, Any]]
    future: Future[set[str]] | asyncio.Future[set[str]] = field(default_factory=Future)
    loop: asyncio.AbstractEventLoop | None = None  # set when ``future`` belongs to that loop


def _settle(waiters: list[tuple[asyncio.Future[set[str]], set[str] | BaseException]]) -> None:
    for future, outcome in waiters:
        if future.done():  # the request was cancelled (its client went away)
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)


class GroupCommitter:
    """A writer thread that commits queued event rows in groups."""

    def __init__(self, store: Store, on_commit: Callable[[], None] | None = None) -> None:
        self.store = store
        self.on_commit = on_commit
        self._queue: queue.Queue[_Pending | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="leadscore-committer", daemon=True)
        self._writer = _HeldConnection(store)  # the writer thread's
        # ids this committer stored lately: a set to look up, and a deque to forget the oldest first (a
        # dict emptied from the front is no substitute: each ``next(iter(d))`` skips every hole left by
        # the deletions before it, which made forgetting quadratic)
        self._recent: set[str] = set()
        self._recent_order: deque[str] = deque()
        self._state = threading.Lock()  # one group at a time: the recent ids, the counters
        # SQLite: an event loop's requests are gathered per loop iteration and committed right there when
        # the write turn is free (no thread hand-off); see ``_flush``
        self._turn = sqlite_turn(store)
        self._gathered: list[_Pending] = []
        self._loop_writer = _HeldConnection(store)  # for groups committed on the loop
        self.inline_groups = 0
        self.groups = 0
        self.rows = 0

    def start(self) -> GroupCommitter:
        self._thread.start()
        return self

    def submit(self, rows: Sequence[dict[str, Any]]) -> Future[set[str]]:
        """Queue rows; the future resolves to the message ids newly stored once they are durable."""
        future: Future[set[str]] = Future()
        if not rows:
            future.set_result(set())
        else:
            self._queue.put(_Pending(rows, future))
        return future

    async def commit(self, rows: Sequence[dict[str, Any]]) -> set[str]:
        """Queue rows from an event loop; returns the message ids newly stored once they are durable."""
        if not rows:
            return set()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[set[str]] = loop.create_future()
        if self._turn is None:
            self._queue.put(_Pending(rows, future, loop))
        else:
            if not self._gathered:
                loop.call_soon(self._flush, GATHER_PASSES)
            self._gathered.append(_Pending(rows, future, loop))
        return await future

    def _flush(self, passes: int = 0) -> None:
        """Commit what this loop's requests gathered since the last flush, here on the loop, when the write
        turn is free this instant; else hand the group to the writer thread.

        The flush first lets the loop run ``passes`` more times. A request the loop reads runs as a task
        whose first step is queued behind the callbacks already waiting, this flush among them, so
        committing at once would leave out every request read in the same pass; two passes let those
        join the group. Measured with 32 connections: groups of 13 requests became groups of 32, a third
        of the fsyncs per request, and ``/v1/track`` went from 36–41 % to 46–52 % of a bare endpoint.
        A pass with nothing else to do takes microseconds, so a lone request hardly waits.

        Handing a group to the thread and back costs more than the commit: the thread wakes, waits for
        the GIL the loop is busy holding (up to a switch interval, at every SQLite call that released it),
        and wakes the loop in turn. A free turn means the commit itself does not wait (one fsync); a turn
        taken (the processor's batch, another process's group) could, so that group goes to the thread.
        """
        if passes and self._gathered:
            asyncio.get_running_loop().call_soon(self._flush, passes - 1)
            return
        group, self._gathered = self._gathered, []
        if not group:
            return
        assert self._turn is not None
        if not self._thread.is_alive():  # stopped (shutting down): commit here, waiting for the turn
            with self._state:
                self._commit_locked(group, self._loop_writer, take_turn=True)
            return
        if not self._state.acquire(blocking=False):
            for pending in group:  # the writer thread is committing: the group waits for it there
                self._queue.put(pending)
            return
        try:
            if not self._turn.try_acquire():
                for pending in group:
                    self._queue.put(pending)
                return
            try:
                self._commit_locked(group, self._loop_writer, take_turn=False)
            finally:
                self._turn.release()
        finally:
            self._state.release()
        self.inline_groups += 1

    def stop(self) -> None:
        """Commit what is queued, then stop the thread."""
        self._queue.put(None)
        self._thread.join()
        self._writer.drop()
        self._loop_writer.drop()

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                return
            group, count = [first], len(first.rows)
            while count < MAX_GROUP_ROWS:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                group.append(item)
                count += len(item.rows)
            self._commit(group)

    def _commit(self, group: list[_Pending]) -> None:
        with self._state:
            self._commit_locked(group, self._writer, take_turn=True)

    def _commit_locked(self, group: list[_Pending], held: _HeldConnection, take_turn: bool) -> None:
        """Commit ``group`` and answer its requests. If the commit fails, the group is committed again in
        halves, down to the request that fails on its own: one request holding a value the database
        refuses (a NUL character on PostgreSQL) fails alone, never its neighbours. A database that
        refuses everything costs one try per request and half as many again."""
        failure = self._try_commit(group, held, take_turn)
        if failure is None:
            return
        if len(group) == 1:  # the request must learn its events were not stored
            self._resolve(group, lambda _: failure)
            return
        half = len(group) // 2
        self._commit_locked(group[:half], held, take_turn)
        self._commit_locked(group[half:], held, take_turn)

    def _try_commit(self, group: list[_Pending], held: _HeldConnection, take_turn: bool) -> Exception | None:
        """One transaction for ``group``; on success its requests are answered, on failure nothing is."""
        rows = self._fresh([row for pending in group for row in pending.rows])
        known: set[str] = set()
        try:
            if rows and self._turn is not None:  # SQLite (else every message was a resend)
                with write_turn(self.store) if take_turn else contextlib.nullcontext():
                    known = acknowledge_sqlite(held.driver(), rows)
            elif rows:
                writer = held.get()
                with writer.begin():
                    known = known_message_ids(writer, list(rows))
                    enqueue(writer, [row for mid, row in rows.items() if mid not in known])
        except Exception as exc:
            held.drop()  # whatever broke, the next try starts on a fresh connection
            return exc
        stored = [mid for mid in rows if mid not in known]  # in arrival order
        self._remember(stored)
        stored_set = set(stored)
        self.groups += 1
        self.rows += sum(len(pending.rows) for pending in group)
        self._resolve(group, lambda pending: {r["message_id"] for r in pending.rows} & stored_set)
        if self.on_commit is not None:
            self.on_commit()
        return None

    def _fresh(self, rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """The first copy of each message this committer has not stored already, by message id."""
        out: dict[str, dict[str, Any]] = {}
        for row in rows:
            mid = row["message_id"]
            if mid not in out and mid not in self._recent:
                out[mid] = row
        return out

    def _remember(self, stored: list[str]) -> None:
        self._recent.update(stored)
        order = self._recent_order
        order.extend(stored)
        excess = len(order) - RECENT_IDS
        if excess > 0:
            self._recent.difference_update([order.popleft() for _ in range(excess)])

    @staticmethod
    def _resolve(group: list[_Pending], outcome: Callable[[_Pending], set[str] | BaseException]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[Any]] = {}
        for pending in group:
            result = outcome(pending)
            if pending.loop is not None:
                by_loop.setdefault(pending.loop, []).append((pending.future, result))
            elif isinstance(result, BaseException):
                pending.future.set_exception(result)
            else:
                pending.future.set_result(result)
        running = asyncio._get_running_loop()
        for loop, waiters in by_loop.items():
            if loop is running:  # committed on the loop itself (``_flush``)
                _settle(waiters)
                continue
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
                loop.call_soon_threadsafe(_settle, waiters)
