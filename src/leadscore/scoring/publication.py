"""Rescoring every lead with the write lock held briefly: activating a model version (a publication, a
shadow's promotion, a rollback), rescoring every lead with the active models (``leadscore rescore``,
``pipeline.rescore_all``) and scoring a new shadow version (``shadow.publish_shadow``).

Every lead is scored, which for a model naming large lists (a 210,000-value list of target accounts)
takes tens of seconds. Done inside the write transaction, SQLite's write lock was held that long, and
every acknowledgement of ``/v1/track`` and ``/v1/batch`` and the processor waited for it (past the busy
timeout: "database is locked"); on PostgreSQL the processor waited as long for the models lock
(``model_versions.take_models``), and a lead the processor rescored meanwhile was saved over with the
score computed without its event. So each of them is a ``Pass`` run in three steps (``run_pass``):

1. *compute*, no lock held, on a read snapshot (PostgreSQL: a repeatable-read transaction): every lead
   scored (``Pass.score``: the ledgers, when each score is next due and the history rows to append), and
   a watermark of what other writers change (``_Watermark``);
2. *catch up*, still without the lock, on a new snapshot: the leads some writer changed during step 1
   (``_Watermark.changed``) scored again (``_caught_up``);
3. *save*, in one write transaction (SQLite: at its turn, ``write_turn``): the pass's own writes first
   (``Pass.begin_save``: the version activated, the shadow registered, the active models read again),
   the leads changed during step 2 scored again there (usually none or a few, with the statements step 2
   compiled), and what was computed saved (``Pass.save``). A rescoring whose active models changed
   meanwhile (a version activated during step 1 or 2) scores every lead again in this transaction: what
   it computed would undo the activation.

Nothing is visible before step 3 commits, and it saves every lead's score at once: a lead's score is
always of one version, and no reader sees a version half published.

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

from abc import ABC, abstractmethod
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

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
T = TypeVar("T")


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


@dataclass(frozen=True)
class Scored:
    """Leads scored on a snapshot, to save: per model, the ledgers (by lead id) and when each score is
    next due; and the history rows to append."""

    ledgers: list[list[Ledger]]
    due: list[dict[int, int | None]]
    history_rows: list[dict[str, Any]]

    def without(self, stale: Collection[int]) -> Scored:
        """These results but the leads ``stale``'s."""
        return Scored(
            [[lg for lg in ledgers if lg.lead_id not in stale] for ledgers in self.ledgers],
            [{lid: at for lid, at in due.items() if lid not in stale} for due in self.due],
            [r for r in self.history_rows if r["lead_id"] not in stale],
        )

    def plus(self, again: Scored) -> Scored:
        """These results and ``again``'s (other leads, the same models)."""
        return Scored(
            [
                sorted([*mine, *theirs], key=lambda lg: lg.lead_id)
                for mine, theirs in zip(self.ledgers, again.ledgers, strict=True)
            ],
            [{**mine, **theirs} for mine, theirs in zip(self.due, again.due, strict=True)],
            [*self.history_rows, *again.history_rows],
        )


class Pass(ABC, Generic[T]):
    """A rescoring of every lead in three steps (the module's docstring): what it scores, what its save
    transaction writes first, and how it saves what was scored."""

    def prepare(self, conn: Connection) -> None:
        """Read what the pass scores with, on the first step's snapshot, before it scores."""

    @abstractmethod
    def score(self, conn: Connection, lead_ids: Collection[int] | None) -> Scored:
        """Score ``lead_ids`` (None: every lead) on the caller's transaction, writing nothing."""

    @abstractmethod
    def begin_save(self, conn: Connection) -> bool:
        """The save transaction's first statements, with the write lock held; False when what was
        scored no longer holds (the active models changed: every lead is scored again there)."""

    @abstractmethod
    def save(self, conn: Connection, scored: Scored) -> T:
        """Save what was scored, every lead's, in the save transaction."""


def run_pass(store: Store, work: Pass[T], *, before_save: Callable[[], None] | None = None) -> T:
    """Run ``work`` in three steps: compute and catch up on read snapshots without a lock, then save in
    one short write transaction (the module's docstring). ``before_save`` runs just before the save (a
    test's concurrent writer)."""
    settled = _settled_events(store)
    with store.connect() as conn:
        _one_snapshot(conn)
        seen = _Watermark.read(conn, settled)
        work.prepare(conn)
        scored = work.score(conn, None)
        conn.rollback()
    # what changed during the computation (an ingest's leads), caught up still without the lock: the save
    # then rescores only what changes during this pass, with statements already compiled
    settled = _settled_events(store)
    with store.connect() as conn:
        _one_snapshot(conn)
        scored, seen = _caught_up(conn, work, scored, seen, settled)
        conn.rollback()
    if before_save is not None:
        before_save()
    with write_turn(store), store.begin() as conn:
        if work.begin_save(conn):
            scored, _ = _caught_up(conn, work, scored, seen)
        else:  # a version activated since the snapshot: what was scored would undo it
            scored = work.score(conn, None)
        return work.save(conn, scored)


def _one_snapshot(conn: Connection) -> None:
    """Every statement of the computation reads one snapshot: SQLite's read transaction is one; PostgreSQL's
    default (read committed) takes one per statement."""
    if conn.dialect.name == "postgresql":
        conn.execution_options(isolation_level="REPEATABLE READ")  # writes temporary tables


def _caught_up(
    conn: Connection, work: Pass[Any], scored: Scored, seen: _Watermark, settled: int | None = None
) -> tuple[Scored, _Watermark]:
    """``scored`` with the leads changed since ``seen`` scored again (usually none or a few), those
    deleted left out, and the watermark as of the caller's transaction (its newest event ``settled`` when
    given: ``_settled_events``)."""
    now = _Watermark.read(conn, settled)
    changed, gone = seen.changed(conn, now)
    if not changed and not gone:
        return scored, now
    kept = scored.without(changed | gone)
    return (kept.plus(work.score(conn, changed)) if changed else kept), now


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
    work = _Activation(active.model, store.sources(), stored, as_of or stamp, stamp, action, actor, note)
    return run_pass(store, work, before_save=before_save)


@dataclass
class _Activation(Pass[tuple[ModelVersion, int]]):
    """A version made active and every lead's score of its name rescored with it; saves (version,
    leads saved)."""

    model: ScoringModel
    sources: Sources
    stored: ModelVersion
    at: int
    stamp: int
    action: str
    actor: str
    note: str
    version: ModelVersion | None = None

    def score(self, conn: Connection, lead_ids: Collection[int] | None) -> Scored:
        if lead_ids is None:
            (ledgers,) = score_everyone(conn, [self.model], self.sources, self.at)
        else:
            ledgers = score_leads(conn, self.model, self.sources, lead_ids, self.at)
        if not ledgers:
            return Scored([[]], [{}], [])
        name, cause = self.stored.score_name, f"{self.action} {self.stored.label}"
        due = schedule(conn, self.model, self.sources, ledgers, name)
        changes = {lg.lead_id: (self.at, "model", cause) for lg in ledgers}
        rows = history.plan_record(
            conn, self.model, self.sources, self.stored.id, changes, self.stamp, score_name=name
        )
        return Scored([ledgers], [due], rows)

    def begin_save(self, conn: Connection) -> bool:
        self.version = version = activate(conn, self.stored.id, self.stamp)
        refuse_retired_names(conn, self.model)
        remove_shadow(conn, version.id)
        verb = {"published": "publish", "promoted": "promote", "rolled back": "rollback"}.get(
            self.action, self.action
        )
        audit(
            conn,
            self.stamp,
            self.actor,
            f"model.{verb}",
            version.label,
            sha256=version.sha256,
            note=self.note,
        )
        return True

    def save(self, conn: Connection, scored: Scored) -> tuple[ModelVersion, int]:
        assert self.version is not None
        (ledgers,), (due,) = scored.ledgers, scored.due
        cause = f"{self.action} {self.stored.label}"
        save_scores(
            conn, ledgers, self.version.id, self.stamp, cause, due, score_name=self.version.score_name
        )
        append_history(conn, scored.history_rows)
        return self.version, len(ledgers)


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
