"""The lifecycle runner: a worker beside the scoring processor.

Each round it (1) gives newly scored leads the initial stage, (2) evaluates every lead rescored since
it was last evaluated (the ``scores`` row's ``scored_ms`` differs from the one its stage row saw, or a
save stamped no later than that one made the stage row forget it: ``lifecycle_tables.rescored``): takes
automatic transitions, enqueues the actions of the moves and of new threshold crossings
(``score_events``), refreshes segments and account stages, (3) on a timer, evaluates leads that
inactivity may move, escalates assignments past their SLA and enqueues the users' daily digests
(``lifecycle.notify``). The runner thread leaves delivery to the ``Deliverer`` (``lifecycle.outbox``),
which runs in threads of its own; ``run_round`` (``--once``) ends with (4), delivering the rows due.

Exactly once in effect: a move is a compare-and-set of the lead's stage row, taken while that row is
locked (``FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite has one writer), and every outbox row's key
is derived from the database row that caused it (the move, crossing, assignment or segment change), so
re-scoring the same history, a retried round or a second runner enqueue nothing twice.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select

from leadscore.lifecycle import segments
from leadscore.lifecycle.accounts import accounts_of, refresh_accounts, refresh_emptied
from leadscore.lifecycle.actions import Effects
from leadscore.lifecycle.gates import Facts, matching, read_facts
from leadscore.lifecycle.notify import send_digests
from leadscore.lifecycle.outbox import Deliverer, DeliveryStats, deliver_due
from leadscore.lifecycle.stages import moves, timed
from leadscore.model import ScoringModel, Transition, duration_seconds
from leadscore.scoring.pipeline import current_model
from leadscore.scoring.shown import cut_text
from leadscore.settings import Settings
from leadscore.store import Store
from leadscore.store.lifecycle_tables import (
    claim_breaches,
    claim_dirty,
    claim_leads,
    mark_escalated,
    mark_seen,
    move_stage,
    start_stages,
)
from leadscore.store.schema import lead_stages, score_events
from leadscore.store.score_names import primary_score

log = logging.getLogger("leadscore.lifecycle")
BATCH = 200


@dataclass
class RoundStats:
    started: int = 0
    evaluated: int = 0
    moves: int = 0
    enqueued: int = 0
    escalated: int = 0
    digests: int = 0
    delivery: DeliveryStats | None = None


def _model(store: Store) -> ScoringModel | None:
    active = current_model(store)
    return active.model if active is not None else None


def evaluate(
    conn: Connection,
    model: ScoringModel,
    rows: list[dict[str, Any]],
    settings: Settings,
    now_ms: int,
    cause: str,
    stats: RoundStats,
) -> None:
    """Evaluate claimed stage rows: automatic moves (chained), their actions, crossings, segments, accounts."""
    lifecycle = model.lifecycle
    assert lifecycle is not None
    facts = read_facts(conn, rows)
    ids = sorted(facts)
    attribute_hits = {
        t.id: matching(conn, model, t.when.attributes, ids, t.id)
        for t in lifecycle.transitions
        if t.when.attributes is not None
    }
    crossings = _new_crossings(conn, rows)
    for row in rows:
        lead_id = int(row["lead_id"])
        if lead_id not in facts:
            continue
        stats.evaluated += 1
        effects = Effects(conn, model, lead_id, settings, now_ms)
        stage, lead_facts = str(row["stage"]), facts[lead_id]

        def attribute_ok(t: Transition, lid: int = lead_id) -> bool:
            return lid in attribute_hits.get(t.id, set())

        for transition in moves(lifecycle, stage, lead_facts, attribute_ok, now_ms):
            ref = _cause_ref(transition, lead_facts)
            move_id = move_stage(
                conn,
                lead_id,
                stage,
                transition.to,
                at_ms=now_ms,
                transition=transition.id,
                cause=cause if transition.when.inactive_for is None else "timer",
                cause_ref=ref,
                now_ms=now_ms,
            )
            if move_id is None:
                break
            stats.moves += 1
            effects.moved(move_id, stage, transition.to, transition.id)
            stage = transition.to
        last_crossing = int(row["seen_crossing_id"])
        for crossing in crossings.get(lead_id, []):
            effects.crossing(crossing)
            last_crossing = max(last_crossing, int(crossing["id"]))
        mark_seen(conn, lead_id, lead_facts.scored_ms, last_crossing, now_ms)
        stats.enqueued += effects.enqueued
    segments.refresh(conn, model, ids, settings, now_ms)
    refresh_accounts(conn, model, accounts_of(conn, ids), now_ms)


def _cause_ref(transition: Transition, facts: Facts) -> str:
    if transition.when.inactive_for is not None:
        return f"no activity for {transition.when.inactive_for}"
    return f"score {cut_text(facts.score)}, grade {facts.grade}, level {facts.level}, band {facts.band}"


def _new_crossings(conn: Connection, rows: list[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    """The crossings of every named score recorded since each lead's last seen one, each marked
    ``primary`` when it is the primary score's (what an action's crossing trigger names by default)."""
    seen = {int(r["lead_id"]): int(r["seen_crossing_id"]) for r in rows}
    if not seen:
        return {}
    primary = primary_score(conn)
    out: dict[int, list[dict[str, Any]]] = {}
    query = (
        select(score_events)
        .where(
            score_events.c.lead_id.in_(list(seen)),
            score_events.c.id > min(seen.values()),
        )
        .order_by(score_events.c.id)
    )
    for r in conn.execute(query).mappings():
        if int(r["id"]) > seen[int(r["lead_id"])]:
            out.setdefault(int(r["lead_id"]), []).append({**r, "primary": r["score_name"] == primary})
    return out


def evaluate_pending(
    store: Store, model: ScoringModel, settings: Settings, now_ms: int, stats: RoundStats
) -> int:
    """Start new leads and evaluate rescored ones until none are left; returns leads evaluated."""
    lifecycle = model.lifecycle
    assert lifecycle is not None
    while True:
        with store.begin() as conn:
            started = start_stages(conn, lifecycle.initial, now_ms)
        stats.started += started
        if started < BATCH:
            break
    done = 0
    while True:
        with store.begin() as conn:
            rows = claim_dirty(conn, BATCH)
            if rows:
                evaluate(conn, model, rows, settings, now_ms, "score", stats)
        done += len(rows)
        if len(rows) < BATCH:
            return done


def sweep_timers(
    store: Store, model: ScoringModel, settings: Settings, now_ms: int, stats: RoundStats
) -> None:
    """Evaluate leads that inactivity may move; escalate assignments past their SLA."""
    lifecycle = model.lifecycle
    assert lifecycle is not None
    for transition in timed(lifecycle):
        assert transition.when.inactive_for is not None
        quiet_ms = int(duration_seconds(transition.when.inactive_for) * 1000)
        froms = [s.id for s in lifecycle.stages] if "*" in transition.from_ else list(transition.from_)
        with store.connect() as conn:
            candidates = list(
                conn.execute(
                    select(lead_stages.c.lead_id).where(
                        lead_stages.c.stage.in_(froms), lead_stages.c.entered_ms <= now_ms - quiet_ms
                    )
                ).scalars()
            )
        for start in range(0, len(candidates), BATCH):
            with store.begin() as conn:
                rows = claim_leads(conn, candidates[start : start + BATCH], skip_locked=True)
                if rows:
                    evaluate(conn, model, rows, settings, now_ms, "timer", stats)
    while True:
        with store.begin() as conn:
            breaches = claim_breaches(conn, now_ms)
            for assignment in breaches:
                if mark_escalated(conn, assignment["id"], now_ms):
                    effects = Effects(conn, model, int(assignment["lead_id"]), settings, now_ms)
                    effects.breached(assignment)
                    stats.escalated += 1
                    stats.enqueued += effects.enqueued
        if len(breaches) < BATCH:
            break


def run_round(
    store: Store,
    settings: Settings,
    *,
    now_ms: int | None = None,
    timers: bool = True,
    deliver: bool = True,
) -> RoundStats:
    """One round of the runner (what ``leadscore lifecycle run --once`` does)."""
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    stats = RoundStats()
    model = _model(store)
    if model is not None and model.lifecycle is not None:
        evaluate_pending(store, model, settings, now, stats)
        if timers:
            sweep_timers(store, model, settings, now, stats)
            with store.begin() as conn:
                refresh_emptied(conn, model, now)
            # the users' daily digests, each once a day from its hour (lifecycle.notify)
            stats.digests = send_digests(store, model, settings, now).sent
            stats.enqueued += stats.digests
    if deliver:
        stats.delivery = deliver_due(store, settings, model.lifecycle if model else None, now_ms)
    return stats


def refresh_all_segments(store: Store, settings: Settings, now_ms: int | None = None) -> int:
    """Recompute every segment for every lead (after a model with new segments is published)."""
    model = _model(store)
    if model is None or model.lifecycle is None:
        return 0
    with store.begin() as conn:
        return segments.refresh(conn, model, None, settings, now_ms or int(time.time() * 1000))


class LifecycleRunner:
    """A background thread running rounds every ``idle_s`` (timers every ``timer_interval_s``); the outbox
    is delivered by a ``Deliverer`` with threads of its own, so a round never waits on a receiver."""

    def __init__(
        self, store: Store, settings: Settings, checks: Callable[[Store, Settings, int], object] | None = None
    ) -> None:
        self.store = store
        self.settings = settings
        # the model's health checks (learn.health.run_checks, a layer above), every alerts.interval_s
        self.checks = checks
        self._last_checks = time.monotonic()
        self.deliverer = Deliverer(store, settings)
        self.errors = 0
        self.rounds = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._last_timers = 0.0
        self._model_version: int | None = None
        self._thread = threading.Thread(target=self._run, name="leadscore-lifecycle", daemon=True)

    def start(self) -> LifecycleRunner:
        """Start the thread (unless ``LEADSCORE_RUN_LIFECYCLE`` is false)."""
        if self.settings.lifecycle.run_lifecycle:
            self.deliverer.start()
            self._thread.start()
        return self

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join()
        self.deliverer.stop()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.once()
            self._wake.wait(self.settings.lifecycle.lifecycle_idle_s)
            self._wake.clear()

    def once(self) -> None:
        try:
            self._refresh_on_new_model()
            timers = time.monotonic() - self._last_timers >= self.settings.lifecycle.timer_interval_s
            stats = run_round(self.store, self.settings, timers=timers, deliver=False)
            if stats.enqueued:
                self.deliverer.wake()
            if timers:
                self._last_timers = time.monotonic()
            interval = self.settings.alerts.interval_s
            if self.checks is not None and interval and time.monotonic() - self._last_checks >= interval:
                self._last_checks = time.monotonic()
                self.checks(self.store, self.settings, int(time.time() * 1000))
                self.deliverer.wake()
            self.rounds += 1
        except Exception:
            self.errors += 1
            log.exception("a lifecycle round failed; it will be retried")

    def _refresh_on_new_model(self) -> None:
        active = current_model(self.store)
        version = active.version.id if active is not None and active.version is not None else None
        if version != self._model_version:
            self._model_version = version
            refresh_all_segments(self.store, self.settings)
