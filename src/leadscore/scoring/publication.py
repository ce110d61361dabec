"""Activating a model version (a publication, a shadow's promotion, a rollback) with the write lock held
briefly.

Every lead is rescored with the version, which for a model naming large lists (a 210,000-value list of
target accounts) takes tens of seconds. Done inside the write transaction, SQLite's write lock was held
that long, and every acknowledgement of ``/v1/track`` and ``/v1/batch`` and the processor waited for it
(past the busy timeout: "database is locked"); on PostgreSQL the processor waited as long for the models
lock (``model_versions.take_models``). So an activation takes three steps:

1. *compute*, no lock held, on a read snapshot (PostgreSQL: a repeatable-read transaction): the version
   parsed, every lead scored with it, when each score is next due and the history rows to append, and a
   watermark of what other writers change (``_Watermark``);
2. *catch up*, still without the lock, on a new snapshot: the leads some writer changed during step 1
   (``_Watermark.changed``) scored again (``_caught_up``);
3. *save*, in one write transaction (SQLite: at its turn, ``write_turn``): the version activated and the
   computed results saved, the leads changed during step 2 scored again there (usually none or a few,
   with the statements step 2 compiled).

Nothing is visible before step 3 commits, and it saves every lead's score with the new version at once:
a lead's score is always of one version, and no reader sees a version half published.

Which leads changed since the snapshot: every writer of a lead's inputs (the processor, imports, merges,
the clock, erasure) rescores it in the same transaction with the active models, so its current score
rows change (read here by lead, score and the version, time and moment of each); leads created or deleted
meanwhile; and the leads of events appended after the snapshot's newest settled one (the processor appends
events without scoring them while no model is active at all, and a backfill's chunks before its rescore
pass). A writer that commits after step 3 reads the new version as the active one.

Settled: on PostgreSQL an event's id is taken when it is inserted, not when its transaction commits, so an
event committed after a snapshot may have an id below the snapshot's newest one, and "the events after the
newest one" would miss it (a first publication racing the processor: the lead kept the score computed
without that event until its next one). So every transaction that appends events shares the models lock
from before it takes an id until it ends (``event_log.append_events``), and before each of steps 1 and 2
the publication takes that lock alone for a moment (``_settled_events``): no append is under way then, so
every id up to the newest is committed or never will be, and the snapshot taken after it sees them all;
an event committed later has a larger id. Appenders wait for that moment as they wait for the save (for
the batches under way to end). SQLite has one writer at a time: its ids come in commit order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, func, select

from leadscore.compile import Ledger, Sources
from leadscore.errors import StoreError
from leadscore.ingest.committer import write_turn
from leadscore.model import ScoringModel
from leadscore.scoring import history
from leadscore.scoring.crossings import save_scores
from leadscore.scoring.due import schedule
from leadscore.scoring.run import Active, now_ms, score_everyone, score_leads
from leadscore.store import Store
from leadscore.store.audit import audit
from leadscore.store.model_versions import ModelVersion, activate, get_version, take_models
from leadscore.store.results import append_history
from leadscore.store.schema import events, identities, leads, scores
from leadscore.store.score_names import list_scores
from leadscore.store.shadows import remove_shadow

ScoreState = dict[tuple[int, str], tuple[Any, ...]]


@dataclass(frozen=True)
class _Watermark:
    """What other writers change, as the snapshot saw it: each current score row's version, as-of time
    and moment of scoring, the leads, and the newest event (on PostgreSQL the newest settled one: the
    module's docstring)."""

    scores: ScoreState
    leads: frozenset[int]
    newest_event: int

    @classmethod
    def read(cls, conn: Connection, settled: int | None = None) -> _Watermark:
        """As the caller's transaction sees it, with ``settled`` (``_settled_events``) as the newest event
        when given, else its own newest."""
        newest = settled if settled is not None else _newest_event(conn)
        return cls(_score_state(conn), frozenset(_lead_ids(conn)), newest)

    def changed(self, conn: Connection, now: _Watermark) -> tuple[set[int], set[int]]:
        """(leads changed or created, leads deleted) between this watermark and ``now``, read in the
        caller's transaction (its events)."""
        changed = {key[0] for key, state in now.scores.items() if self.scores.get(key) != state}
        changed |= {key[0] for key in self.scores if key not in now.scores}
        changed |= now.leads - self.leads
        changed |= _leads_of_events_after(conn, self.newest_event)
        return changed & now.leads, set(self.leads - now.leads)


def _score_state(conn: Connection) -> ScoreState:
    query = select(
        scores.c.lead_id,
        scores.c.score_name,
        scores.c.model_version_id,
        scores.c.as_of_ms,
        scores.c.scored_ms,
    )
    return {(int(r[0]), str(r[1])): tuple(r[2:]) for r in conn.execute(query)}


def _lead_ids(conn: Connection) -> list[int]:
    return [int(i) for i in conn.execute(select(leads.c.id)).scalars()]


def _newest_event(conn: Connection) -> int:
    return int(conn.execute(select(func.coalesce(func.max(events.c.id), 0))).scalar_one())


def _settled_events(store: Store) -> int | None:
    """PostgreSQL: the newest event id once no transaction appending events is under way (the models lock
    taken alone, and let go at once), so that every id up to it is committed or never will be: a snapshot
    taken afterwards sees them all (the module's docstring). SQLite: None, a snapshot's newest is settled."""
    if store.dialect != "postgresql":
        return None
    with store.begin() as conn:
        take_models(conn)
        return _newest_event(conn)


def _leads_of_events_after(conn: Connection, event_id: int) -> set[int]:
    keys = select(events.c.person_key).where(events.c.id > event_id).distinct()
    query = select(identities.c.lead_id).where(identities.c.key.in_(keys)).distinct()
    return {int(i) for i in conn.execute(query).scalars()}


@dataclass
class _Computed:
    """Every lead scored with the version on a read snapshot, to save at activation."""

    ledgers: list[Ledger]
    due: dict[int, int | None]
    history_rows: list[dict[str, Any]]
    seen: _Watermark


def activate_version(
    store: Store,
    version_id: int,
    *,
    action: str,
    as_of: int | None = None,
    actor: str = "cli",
    note: str = "",
    before_save: Callable[[], None] | None = None,
) -> tuple[ModelVersion, int]:
    """Make a stored version the active one of its score and rescore every lead's score of that name with
    it (scores, ledgers, history and crossings; other scores stay as they are): a publication, a shadow's
    promotion or a rollback (``action``: published, promoted, rolled back). A shadow that becomes active
    stops being a shadow. Computed outside the write lock and saved in one short transaction (the module's
    docstring); ``before_save`` runs just before the save (a test's concurrent writer)."""
    with store.connect() as conn:
        stored = get_version(conn, version_id)
        refuse_retired_names(conn, Active.of(stored).model)  # before the work: checked again at the save
    active = Active.of(stored)  # parsed once per process (a list of 210,000 values: seconds)
    stamp = now_ms()
    at = as_of or stamp
    cause = f"{action} {stored.label}"
    sources = store.sources()
    settled = _settled_events(store)
    with store.connect() as conn:
        _one_snapshot(conn)
        computed = _compute(conn, active.model, sources, stored, at, stamp, cause, settled)
        conn.rollback()
    # what changed during the computation (an ingest's leads), caught up still without the lock: the save
    # then rescores only what changes during this pass, with statements already compiled
    settled = _settled_events(store)
    with store.connect() as conn:
        _one_snapshot(conn)
        computed = _caught_up(conn, active.model, sources, stored, computed, at, stamp, cause, settled)
        conn.rollback()
    if before_save is not None:
        before_save()
    with write_turn(store), store.begin() as conn:
        version = activate(conn, version_id, stamp)
        refuse_retired_names(conn, active.model)
        remove_shadow(conn, version.id)
        verb = {"published": "publish", "promoted": "promote", "rolled back": "rollback"}.get(action, action)
        audit(conn, stamp, actor, f"model.{verb}", version.label, sha256=version.sha256, note=note)
        saved = _save(conn, active.model, sources, version, computed, at, stamp, cause)
    return version, saved


def _one_snapshot(conn: Connection) -> None:
    """Every statement of the computation reads one snapshot: SQLite's read transaction is one; PostgreSQL's
    default (read committed) takes one per statement."""
    if conn.dialect.name == "postgresql":
        conn.execution_options(isolation_level="REPEATABLE READ")  # writes temporary tables


def _compute(
    conn: Connection,
    model: ScoringModel,
    sources: Sources,
    version: ModelVersion,
    at: int,
    stamp: int,
    cause: str,
    settled: int | None = None,
) -> _Computed:
    seen = _Watermark.read(conn, settled)
    (ledgers,) = score_everyone(conn, [model], sources, at)
    name = version.score_name
    due = schedule(conn, model, sources, ledgers, name)
    changes = {lg.lead_id: (at, "model", cause) for lg in ledgers}
    rows = (
        history.plan_record(conn, model, sources, version.id, changes, stamp, score_name=name)
        if changes
        else []
    )
    return _Computed(ledgers, due, rows, seen)


def _caught_up(
    conn: Connection,
    model: ScoringModel,
    sources: Sources,
    version: ModelVersion,
    computed: _Computed,
    at: int,
    stamp: int,
    cause: str,
    settled: int | None = None,
) -> _Computed:
    """``computed`` with the leads changed since its watermark scored again (usually none or a few), those
    deleted left out, and the watermark as of the caller's transaction (its newest event ``settled`` when
    given: ``_settled_events``)."""
    now = _Watermark.read(conn, settled)
    changed, gone = computed.seen.changed(conn, now)
    if not changed and not gone:
        return _Computed(computed.ledgers, computed.due, computed.history_rows, now)
    stale = changed | gone
    name = version.score_name
    kept = [lg for lg in computed.ledgers if lg.lead_id not in stale]
    due = {lg.lead_id: computed.due.get(lg.lead_id) for lg in kept}
    rows = [r for r in computed.history_rows if r["lead_id"] not in stale]
    again: Sequence[Ledger] = score_leads(conn, model, sources, changed, at) if changed else []
    if again:
        due.update(schedule(conn, model, sources, again, name))
        changes = {lg.lead_id: (at, "model", cause) for lg in again}
        rows += history.plan_record(conn, model, sources, version.id, changes, stamp, score_name=name)
    return _Computed(sorted([*kept, *again], key=lambda lg: lg.lead_id), due, rows, now)


def _save(
    conn: Connection,
    model: ScoringModel,
    sources: Sources,
    version: ModelVersion,
    computed: _Computed,
    at: int,
    stamp: int,
    cause: str,
) -> int:
    """Save what ``_compute`` computed, the leads changed since scored again here; returns leads saved."""
    final = _caught_up(conn, model, sources, version, computed, at, stamp, cause)
    save_scores(conn, final.ledgers, version.id, stamp, cause, final.due, score_name=version.score_name)
    append_history(conn, final.history_rows)
    return len(final.ledgers)


def refuse_retired_names(conn: Connection, model: ScoringModel) -> None:
    """A lifecycle naming a retired score is not activated: its gates, actions and segments would read
    scores no one updates any more (``leadscore model retire`` refuses the converse)."""
    if model.lifecycle is None:
        return
    retired = {s.name for s in list_scores(conn) if s.retired}
    naming = [f"{where} names {name!r}" for where, name in model.lifecycle.named_scores() if name in retired]
    if naming:
        raise StoreError(
            f"the lifecycle names a retired score ({'; '.join(naming)}): publish a version of that score "
            "first to score it again, or leave it out of the lifecycle"
        )
