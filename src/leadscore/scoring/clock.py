"""The clock: time is an input like events. Each tick rescores, as of now, the leads whose stored score is
due (``scores.due_ms`` has passed: a window opened or closed, or decay may have reached a threshold; see
``scoring/due.py``), through the one compiled query, with history rows of cause ``time``.

Only due leads are read, through the index on ``due_ms``, so a tick costs the leads whose score time
changed, not the whole table. Up to 5,000 of them are rescored on one read snapshot, outside the write
turn, and saved 100 (SQLite) or 500 at a time: an account-scope rule reads every colleague's events once a
statement, so saving a crowded account's 20,000 due colleagues no longer reads its events once per chunk
(the square of the account; bench/README.md, the clock tick over a crowded account). The rescoring writes new current scores like any other, so the crossings it
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

from leadscore.compile import Sources
from leadscore.ingest.committer import write_turn
from leadscore.scoring import history
from leadscore.scoring.pipeline import RescoreNow, active_models, rescore_now_read, rescore_now_write
from leadscore.scoring.run import POINTS_CHUNK, Active, now_ms
from leadscore.store import Store
from leadscore.store.model_versions import active_versions, share_models
from leadscore.store.results import lock_leads, stored_versions
from leadscore.store.schema import scores

log = logging.getLogger("leadscore.clock")
# leads rescored per transaction: on SQLite, acknowledgements wait for the write lock (as for the processor)
CHUNK = 500
SQLITE_CHUNK = 100
READ = POINTS_CHUNK  # due leads scored on one read snapshot: the scoring statements take this many targets
TICK_S = 60.0
CAUSE_REF = history.TIME_REF


@dataclass
class TickStats:
    leads: int = 0
    history_rows: int = 0
    transactions: int = 0


def due_leads(conn: Connection, now: int, limit: int, score_name: str) -> list[int]:
    """Leads whose stored score ``score_name`` is due at ``now``, earliest first."""
    query = (
        select(scores.c.lead_id)
        .where(scores.c.due_ms <= now, scores.c.score_name == score_name)
        .order_by(scores.c.due_ms, scores.c.lead_id)
        .limit(limit)
    )
    return list(conn.execute(query).scalars())


def tick(store: Store, now: int | None = None) -> TickStats:
    """Rescore every lead due at ``now`` (default: the current time, read again for each read) as of that
    time."""
    stats = TickStats()
    with store.connect() as conn:
        models = active_models(conn)
    for active in models:
        _tick_score(store, active, now, stats)
    return stats


def _plan(conn: Connection, sources: Sources, active: Active, ids: list[int], stamp: int) -> RescoreNow:
    """``pipeline.rescore_now_read`` of ``ids`` as of ``stamp`` (the statements take 5,000 targets: an account's
    colleagues' events are read once a statement, not once per chunk of 100 saved)."""
    return rescore_now_read(conn, sources, active, ids, stamp, "time", CAUSE_REF)


def _tick_score(store: Store, active: Active, now: int | None, stats: TickStats) -> None:
    """Rescore the leads whose score of ``active``'s name is due: up to ``READ`` of them computed on one
    read snapshot, outside the write turn, then saved ``chunk`` at a time, each chunk in its own short
    write transaction. A lead some other writer changed between the read and its chunk's write (a
    processor rescored it, or made it due again for a colleague's event: its stored row differs from the
    snapshot's, ``results.stored_versions``) is left to that writer or to the next read."""
    assert active.version is not None
    name = active.version.score_name
    chunk = SQLITE_CHUNK if store.dialect == "sqlite" else CHUNK
    while True:
        with store.connect() as read:
            if read.dialect.name == "postgresql":  # one snapshot for every statement of the plan
                read = read.execution_options(isolation_level="REPEATABLE READ")
            with read.begin():
                if not _still_active(read, active):
                    return  # activated meanwhile: its activation rescored every lead of the score
                stamp = now if now is not None else now_ms()
                ids = due_leads(read, stamp, READ, name)
                planned = _plan(read, store.sources(), active, ids, stamp) if ids else None
                seen = stored_versions(read, ids, name)
        if planned is None:
            return
        saved = 0
        for start in range(0, len(ids), chunk):
            part = ids[start : start + chunk]
            # derived data, as in the processor: a lost transaction leaves the leads due, the next tick redoes it
            with write_turn(store), store.begin(durable=False) as conn:
                if not _still_active(conn, active):
                    return
                if conn.dialect.name == "postgresql":
                    lock_leads(conn, part)  # waits for a processor rescoring any of them (the one lead lock)
                now_stored = stored_versions(conn, part, name)
                kept = [i for i in part if i in planned.ledgers and now_stored.get(i) == seen.get(i)]
                if not kept:
                    continue
                leads, rows = rescore_now_write(conn, active, planned, kept, stamp, CAUSE_REF)
                stats.leads += leads
                stats.history_rows += rows
                stats.transactions += 1
                saved += leads
        # a saved lead is next due after ``stamp`` (due.schedule); one another writer changed is left to it
        if len(ids) < READ or saved == 0:
            return


def _still_active(conn: Connection, active: Active) -> bool:
    """Whether ``active`` (read before this transaction) is still its score's active version, and stays so
    until the transaction ends (``share_models``): the tick never saves a replaced version's scores."""
    assert active.version is not None
    share_models(conn)
    return any(version.id == active.version.id for version in active_versions(conn))


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
