"""The clock: time is an input like events. Each tick rescores, as of now, the leads whose stored score is
due (``scores.due_ms`` has passed: a window opened or closed, or decay may have reached a threshold; see
``scoring/due.py``), through the one compiled query, with history rows of cause ``time``.

Only due leads are read, through the index on ``due_ms``, so a tick costs the leads whose score time
changed, not the whole table. The rescoring writes new current scores like any other, so the crossings it
records and the ``scored_ms`` it sets reach the lifecycle runner exactly as event-caused ones do
(``cooled``/``score_below`` transitions, band crossings, segments).

Each named score is due on its own (``scores`` holds a row per lead and score): a tick rescores, per
active model, the leads whose score of that name is due.

``leadscore serve`` runs a ``Clock`` thread (``LEADSCORE_CLOCK_TICK_S``, default 60 s); ``leadscore tick``
runs one tick, e.g. from cron.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from sqlalchemy import Connection, select

from leadscore.ingest.committer import write_turn
from leadscore.scoring import history
from leadscore.scoring.pipeline import active_models, rescore_now
from leadscore.scoring.run import Active, now_ms
from leadscore.store import Store
from leadscore.store.id_lists import in_list
from leadscore.store.model_versions import active_versions, share_models
from leadscore.store.results import lock_leads
from leadscore.store.schema import leads, scores

log = logging.getLogger("leadscore.clock")
# leads rescored per transaction: on SQLite, acknowledgements wait for the write lock (as for the processor)
CHUNK = 500
SQLITE_CHUNK = 100
TICK_S = 60.0
CAUSE_REF = history.TIME_REF


@dataclass
class TickStats:
    leads: int = 0
    history_rows: int = 0
    transactions: int = 0


def due_leads(conn: Connection, now: int, limit: int, score_name: str) -> list[int]:
    """Leads whose stored score ``score_name`` is due at ``now``, earliest first. On PostgreSQL their lead
    rows are locked (the processor's lock, taken first as it does), skipping leads another clock or a
    processor holds: a lead being rescored gets a new due time anyway."""
    query = (
        select(scores.c.lead_id)
        .where(scores.c.due_ms <= now, scores.c.score_name == score_name)
        .order_by(scores.c.due_ms, scores.c.lead_id)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        query = (
            select(leads.c.id)
            .join(scores, scores.c.lead_id == leads.c.id)
            .where(scores.c.due_ms <= now, scores.c.score_name == score_name)
            .order_by(scores.c.due_ms, leads.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True, of=leads)
        )
    return list(conn.execute(query).scalars())


def tick(store: Store, now: int | None = None) -> TickStats:
    """Rescore every lead due at ``now`` (default: the current time, read again for each transaction) as
    of that time."""
    stats = TickStats()
    with store.connect() as conn:
        models = active_models(conn)
    for active in models:
        _tick_score(store, active, now, stats)
    return stats


def _tick_score(store: Store, active: Active, now: int | None, stats: TickStats) -> None:
    """Rescore the leads whose score of ``active``'s name is due."""
    assert active.version is not None
    name = active.version.score_name
    chunk = SQLITE_CHUNK if store.dialect == "sqlite" else CHUNK
    while True:
        # derived data, as in the processor: a lost transaction leaves the leads due, the next tick redoes it
        with write_turn(store), store.begin(durable=False) as conn:
            if not _still_active(conn, active):
                return  # activated meanwhile: its activation rescored every lead of the score
            stamp = now if now is not None else now_ms()
            ids = due_leads(conn, stamp, chunk, name)
            if ids and conn.dialect.name == "postgresql":
                # wait for a processor rescoring any of them (the one lead lock), then keep those still
                # due: the processor may have rescored some (and moved their due time) meanwhile
                lock_leads(conn, ids)
                ids = still_due(conn, ids, stamp, name)
            if ids:
                leads, rows = rescore_now(conn, store.sources(), active, ids, stamp, "time", CAUSE_REF)
                stats.leads += leads
                stats.history_rows += rows
                stats.transactions += 1
        # a rescored lead is next due after ``stamp`` (due.schedule), so this loop ends
        if len(ids) < chunk:
            return


def _still_active(conn: Connection, active: Active) -> bool:
    """Whether ``active`` (read before this transaction) is still its score's active version, and stays so
    until the transaction ends (``share_models``): the tick never saves a replaced version's scores."""
    assert active.version is not None
    share_models(conn)
    return any(version.id == active.version.id for version in active_versions(conn))


def still_due(conn: Connection, lead_ids: list[int], now: int, score_name: str) -> list[int]:
    query = select(scores.c.lead_id).where(
        in_list(scores.c.lead_id, "ids"), scores.c.due_ms <= now, scores.c.score_name == score_name
    )
    return sorted(conn.execute(query, {"ids": lead_ids}).scalars())


class Clock:
    """A background thread running a tick every ``tick_s`` seconds."""

    def __init__(self, store: Store, tick_s: float = TICK_S) -> None:
        self.store = store
        self.tick_s = tick_s
        self.ticks = 0
        self.errors = 0
        self.last = TickStats()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="leadscore-clock", daemon=True)

    def start(self) -> Clock:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.tick_s):
            self.once()

    def once(self) -> None:
        try:
            self.last = tick(self.store)
            self.ticks += 1
        except Exception:
            self.errors += 1
            log.exception("a clock tick failed; it will be retried")
