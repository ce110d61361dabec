"""SQLite: a processor batch scored on a read snapshot, outside the write lock.

SQLite has one write lock, which acknowledgements (``ingest/committer.py``) take for every group they
commit. A batch scored inside its write transaction holds the lock while the compiled query runs, and
every acknowledgement waits for it. Here a batch takes the lock twice, briefly:

1. *log*: claim inbox rows, append their events to the log, apply them (identities, traits, accounts),
   delete the inbox rows, and leave in their place one inbox row naming the leads to score
   (``event_log.mark_pending``), so that a processor stopped before step 3 leaves the work to the next;
2. *compute*, no lock held: on a read snapshot (WAL readers never wait for the writer) the touched
   leads' scores, ledgers, due times and history points (``pipeline.plan_rescore``), and a fingerprint of
   everything that computation read for those leads (``fingerprint``);
3. *save*: if the fingerprint is unchanged, save the results (``pipeline.save_rescore``); if another
   writer changed those leads meanwhile (an import, a publication, another processor), compute them again
   inside this transaction (``pipeline.rescore_touched``: as the one-step batch does). Then the pending row
   is deleted;
4. *checkpoint* the write-ahead log once it holds ``wal.CHECKPOINT_FRAMES`` pages not yet copied
   (``copy_log``): copied after every batch, its syncs slowed every acknowledgement's (``store/wal.py``).

Events acknowledged meanwhile wait in the inbox for the next batch, so they never make the results
stale: only writers of the log, the people tables or the models do, and the fingerprint sees them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection

from leadscore.collection import collection_paused
from leadscore.ingest.apply import Applied
from leadscore.ingest.committer import write_turn
from leadscore.scoring.pipeline import plan_rescore, rescore_touched, save_rescore
from leadscore.scoring.processor import (
    ProcessorStats,
    _set_aside,
    log_rows,
    pending_count,
    pending_entry,
    pending_leads,
)
from leadscore.scoring.run import now_ms
from leadscore.store import Store, counters
from leadscore.store.event_log import (
    Claimed,
    claim,
    done_pending,
    drop_events_without_consent,
    mark_pending,
    release,
)
from leadscore.store.wal import CHECKPOINT_FRAMES

# What the scoring of a set of leads reads, besides the clock: the active versions, the log (any event
# appended by another writer: its newest id), and the leads' rows, identities, accounts and the number of
# leads in those accounts (a colleague joining one changes account-scope rules); and what the save
# replaces: the leads' current scores (the clock may rescore a lead that fell due meanwhile, as of a later
# moment than the snapshot's, which the snapshot's older result must not overwrite). Events deleted by the
# retention job are not seen: its own rescore follows, and a score it overtakes is corrected by the next.
_FINGERPRINT = (
    "SELECT lead_id, score_name, as_of_ms, scored_ms FROM scores "
    "WHERE lead_id IN (SELECT value FROM json_each(:ids)) ORDER BY lead_id, score_name",
    "SELECT 'versions', group_concat(id) FROM (SELECT id FROM model_versions WHERE active ORDER BY id)",
    "SELECT 'events', max(id) FROM events",
    "SELECT * FROM leads WHERE id IN (SELECT value FROM json_each(:ids)) ORDER BY id",
    'SELECT "key", lead_id FROM identities WHERE lead_id IN (SELECT value FROM json_each(:ids)) ORDER BY "key"',
    "SELECT a.*, (SELECT count(*) FROM leads c WHERE c.account_id = a.id) FROM accounts a "
    "WHERE a.id IN (SELECT account_id FROM leads WHERE id IN (SELECT value FROM json_each(:ids))) ORDER BY a.id",
)


def fingerprint(conn: Connection, lead_ids: Sequence[int]) -> list[list[tuple[Any, ...]]]:
    """What scoring ``lead_ids`` reads, as rows to compare (``_FINGERPRINT``)."""
    ids = orjson.dumps(sorted(lead_ids)).decode()
    return [
        [tuple(row) for row in conn.exec_driver_sql(sql.replace(":ids", "?"), (ids,) * sql.count(":ids"))]
        for sql in _FINGERPRINT
    ]


@dataclass
class _Logged:
    """What the first turn did: the rows it took, what they changed, and the counts they add once scored."""

    claimed: Claimed
    applied: Applied
    pending: tuple[int, str] | None  # the inbox row naming the leads to score (None: no lead to score)
    acknowledged: int
    scored: int


def process_batch(
    store: Store,
    limit: int,
    stats: ProcessorStats,
    drop_unconsented: bool = False,
    after_compute: Callable[[], None] | None = None,
) -> int:
    """One batch of up to ``limit`` events in three steps (the module's docstring); returns the events
    and unreadable entries taken (0: the inbox is empty). ``after_compute`` runs between the computation
    and the save (a test's concurrent writer)."""
    began, cpu_began = time.monotonic(), time.thread_time()
    with write_turn(store):
        held_from = time.monotonic()
        with store.begin(durable=False, checkpoint=False) as conn:
            logged = _log(conn, limit, drop_unconsented)
        held = time.monotonic() - held_from
    if logged is None:
        return 0
    claimed = logged.claimed
    stats.last_taken = claimed.arrivals
    # one young collection after the batch, when its rows and ledgers are gone, instead of one at the end of
    # each result read (``collection_paused``), each walking the batch's ledgers of every score again
    with collection_paused():
        rescored, saving = _score_logged(store, logged, stats, after_compute)
    held += saving
    # after the save only, so that scoring never waits for it
    copy_log(store)
    stats.last_held_s = held
    stats.last_batch_s = time.monotonic() - began
    stats.last_batch_cpu_s = time.thread_time() - cpu_began
    stats.batches += 1
    stats.events += len(claimed.rows)
    stats.leads_rescored += rescored
    stats.dead_letters += len(claimed.unreadable)
    stats.last_latency_ms = time.time() * 1000 - claimed.oldest_ms
    return len(claimed.rows) + len(claimed.unreadable)


def _score_logged(
    store: Store, logged: _Logged, stats: ProcessorStats, after_compute: Callable[[], None] | None
) -> tuple[int, float]:
    """Steps two and three of ``process_batch`` (the module's docstring) for what ``_log`` logged: the leads
    rescored and the seconds the write lock was held to save them (none without pending leads)."""
    if logged.pending is None:
        return 0, 0.0
    sources = store.sources()
    with store.connect() as conn:  # a read transaction: one snapshot, no lock
        plan = plan_rescore(conn, sources, logged.applied)
        seen = fingerprint(conn, plan.everyone) if plan is not None else []
        conn.rollback()
    if after_compute is not None:
        after_compute()
    with write_turn(store):
        held_from = time.monotonic()
        with store.begin(durable=False, checkpoint=False) as conn:
            if plan is None or fingerprint(conn, plan.everyone) == seen:
                rescored, _ = save_rescore(conn, plan)
            else:  # changed meanwhile: computed again, holding the lock
                stats.recomputed += 1
                rescored, _ = rescore_touched(conn, sources, logged.applied)
            if done_pending(conn, logged.pending):  # else another processor took the row, and counts them
                counted = {counters.ACKNOWLEDGED: logged.acknowledged, counters.SCORED: logged.scored}
                counters.add(conn, counted)
        held = time.monotonic() - held_from
    return rescored, held


def copy_log(store: Store) -> bool:
    """Copy the write-ahead log into the database once ``CHECKPOINT_FRAMES`` of its pages wait; returns
    whether it did.

    The copy runs with no turn held, acknowledgements committing meanwhile. SQLite starts the log over
    only after a checkpoint copied all of it, and only in a transaction that began after that: else the
    log grows on, until SQLite's own checkpoint at ``WAL_AUTOCHECKPOINT`` frames copies it inside an
    acknowledgement, holding the turn. Under a flood a group commits during nearly every copy, so what
    was committed meanwhile is copied holding the turn (no writer is then inside a transaction): a few
    pages, where the first copy took hundreds."""
    if not store.checkpoint(at_least=CHECKPOINT_FRAMES):
        return False
    with write_turn(store):
        store.checkpoint(at_least=1)
    return True


def _log(conn: Connection, limit: int, drop_unconsented: bool) -> _Logged | None:
    """The first turn: claim, log and apply, and leave the pending row (None: the inbox is empty)."""
    claimed = claim(conn, limit)
    if claimed is None:
        return None
    now = now_ms()
    for text, error in claimed.unreadable:
        _set_aside(conn, None, error, now, raw=text)
    # the log's events after this id are not scored until the save (``bench/ingest.py`` polls for it)
    after = conn.exec_driver_sql("SELECT coalesce(max(id), 0) FROM events").scalar_one()
    applied, logged = log_rows(conn, claimed.rows)
    if drop_unconsented and applied.touched:
        drop_events_without_consent(conn, sorted(applied.touched))
    # with the leads (and the counts of the events) a stopped processor left unscored
    pending_leads(claimed.pending, into=applied)
    acknowledged = len(claimed.rows) + pending_count(claimed.pending, "acknowledged")
    scored = logged + pending_count(claimed.pending, "scored")
    release(conn, claimed)
    counted = {
        counters.ACKNOWLEDGED: len(claimed.unreadable),
        counters.DEAD_LETTERED: len(claimed.unreadable),
    }
    pending = None
    if applied.touched or applied.left:  # the events are counted with the save, when their pending row goes
        entry = {**pending_entry(applied, acknowledged, scored), "logged_after": after}
        pending = mark_pending(conn, entry, acknowledged, claimed.oldest_ms)
    else:
        counted[counters.ACKNOWLEDGED] += acknowledged
        counted[counters.SCORED] = scored
    counters.add(conn, counted)
    return _Logged(claimed, applied, pending, acknowledged, scored)
