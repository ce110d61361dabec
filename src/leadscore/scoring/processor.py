"""The processor: moves acknowledged events from the inbox into the event log, applies them (identities,
traits, accounts), rescores the leads they touch through the compiled query, records history and
threshold crossings.

Each batch is one transaction that also deletes its inbox rows, so an event's effects happen once; an
event whose message id is already in the log (a resend) is skipped. Several processes may run
processors against one PostgreSQL database: inbox rows are claimed with ``FOR UPDATE SKIP LOCKED``, the
log's unique message id admits one copy of a message, and leads are row-locked while rescored, so no
event is applied twice and no two processors rescore the same lead at once.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError, OperationalError

from leadscore.ingest.apply import Applied, apply_identities, message_from_row
from leadscore.ingest.committer import write_turn
from leadscore.scoring.pipeline import rescore_touched
from leadscore.store import Store
from leadscore.store.event_log import append_events, claim, release

log = logging.getLogger("leadscore.processor")
# events per transaction: on SQLite, acknowledgements wait for the batch in progress (one write lock), so
# a backlog is taken in shorter turns there; PostgreSQL writers do not wait for each other
BATCH = 500
SQLITE_BATCH = 100
RETRIES = 5


@dataclass
class ProcessorStats:
    batches: int = 0
    events: int = 0
    leads_rescored: int = 0
    errors: int = 0
    retries: int = 0
    last_latency_ms: float = 0.0


def process_pending(store: Store, limit: int = BATCH, drop_unconsented: bool = False) -> int:
    """Store, apply and score the oldest inbox rows, up to ``limit`` events (at least one row); returns
    how many events they held (0: the inbox is empty, or every row is another processor's)."""
    return _process(store, limit, ProcessorStats(), drop_unconsented)


def _process(store: Store, limit: int, stats: ProcessorStats, drop_unconsented: bool = False) -> int:
    """One batch, retried when a concurrent processor won a race (it created the same lead first, or
    the database broke a deadlock): the transaction rolled back whole, so retrying is safe."""
    for attempt in range(RETRIES):
        try:
            return _process_once(store, limit, stats, drop_unconsented)
        except (IntegrityError, OperationalError):
            if attempt == RETRIES - 1:
                raise
            stats.retries += 1
            time.sleep(0.01 * (attempt + 1))
    return 0  # pragma: no cover - the loop returns or raises


def _process_once(store: Store, limit: int, stats: ProcessorStats, drop_unconsented: bool) -> int:
    # derived data: scores are recomputed from the inbox rows this transaction deletes, if it is lost
    with write_turn(store), store.begin(durable=False) as conn:
        claimed = claim(conn, limit)
        if claimed is None:
            return 0
        first: dict[str, dict[str, Any]] = {}  # of two copies of a message in the batch, the first
        for row in claimed.rows:
            first.setdefault(row["message_id"], row)
        inserted = append_events(conn, list(first.values()))
        messages = [message_from_row(row) for mid, row in first.items() if mid in inserted]
        applied = apply_identities(conn, messages, Applied(inserted={m.message_id for m in messages}))
        rescored, _ = rescore_touched(conn, store.sources(), applied, drop_unconsented=drop_unconsented)
        release(conn, claimed)
        oldest = claimed.oldest_ms
    stats.batches += 1
    stats.events += len(claimed.rows)
    stats.leads_rescored += rescored
    stats.last_latency_ms = time.time() * 1000 - oldest
    return len(claimed.rows)


class Processor:
    """A background thread that drains the inbox whenever it is woken (after each commit) or every
    ``idle_s`` (events committed by other processes). Once woken it lingers ``linger_s`` before draining,
    so that events arriving together are scored in one batch instead of one transaction each."""

    def __init__(
        self, store: Store, idle_s: float = 0.5, drop_unconsented: bool = False, linger_s: float = 0.05
    ) -> None:
        self.store = store
        self.drop_unconsented = drop_unconsented
        self.idle_s = idle_s
        self.linger_s = linger_s
        self.stats = ProcessorStats()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="leadscore-processor", daemon=True)

    def start(self) -> Processor:
        self._thread.start()
        return self

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._wake.wait(self.idle_s) and self.linger_s:
                self._stop.wait(self.linger_s)
            self._wake.clear()
            self.drain()

    def drain(self) -> None:
        """Process until the inbox is empty (or an error: retried on the next wake)."""
        batch = SQLITE_BATCH if self.store.dialect == "sqlite" else BATCH
        while True:
            try:
                if not _process(self.store, batch, self.stats, self.drop_unconsented):
                    return
            except Exception:
                self.stats.errors += 1
                log.exception("processing the inbox failed; it will be retried")
                return
