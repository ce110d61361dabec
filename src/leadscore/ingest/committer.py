"""Group commit: many requests' events made durable in one transaction (one fsync), then acknowledged.

Request handlers ``submit`` rows and wait on the returned future; a single writer thread drains
everything queued, appends it to the event log and the inbox in one transaction, and resolves every
future only after the commit. A 200 therefore always means "on disk". If the commit fails, every
future in that group fails and no client is told its events were stored.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from leadscore.store import Store
from leadscore.store.event_log import append_events
from leadscore.store.schema import inbox
from leadscore.store.upsert import insert_ignore

MAX_GROUP_ROWS = 20_000


@dataclass
class _Pending:
    rows: Sequence[dict[str, Any]]
    future: Future[set[str]] = field(default_factory=Future)


class GroupCommitter:
    """A writer thread that commits queued event rows in groups."""

    def __init__(self, store: Store, on_commit: Callable[[], None] | None = None) -> None:
        self.store = store
        self.on_commit = on_commit
        self._queue: queue.Queue[_Pending | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="leadscore-committer", daemon=True)
        self.groups = 0
        self.rows = 0

    def start(self) -> GroupCommitter:
        self._thread.start()
        return self

    def submit(self, rows: Sequence[dict[str, Any]]) -> Future[set[str]]:
        """Queue rows; the future resolves to the message ids newly stored once they are durable."""
        pending = _Pending(rows)
        if not rows:
            pending.future.set_result(set())
        else:
            self._queue.put(pending)
        return pending.future

    def stop(self) -> None:
        """Commit what is queued, then stop the thread."""
        self._queue.put(None)
        self._thread.join()

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
        rows = [row for pending in group for row in pending.rows]
        try:
            with self.store.begin() as conn:
                inserted = append_events(conn, rows)
                fresh = [r for r in rows if r["message_id"] in inserted]
                # each new message once (a repeated id within the group was inserted once)
                unique = {r["message_id"]: r["received_ms"] for r in fresh}
                insert_ignore(
                    conn,
                    inbox,
                    [{"message_id": m, "received_ms": t} for m, t in unique.items()],
                    ["message_id"],
                )
        except Exception as exc:  # every waiting request must learn its events were not stored
            for pending in group:
                pending.future.set_exception(exc)
            return
        self.groups += 1
        self.rows += len(rows)
        for pending in group:
            pending.future.set_result({r["message_id"] for r in pending.rows} & inserted)
        if self.on_commit is not None:
            self.on_commit()
