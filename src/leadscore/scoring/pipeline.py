"""Operations that change scores: ingest messages, backfill a history of them, publish a model, rescore
everyone. A lead has one score per named score (store/score_names.py), each scored by its own active
version: events rescore every active model, a publication or rollback rescores only its own score."""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection

from leadscore.collection import collection_paused
from leadscore.compile import Ledger, Sources
from leadscore.compile.query import scoped
from leadscore.errors import StoreError
from leadscore.ingest.apply import EVER, Applied, LinkRaced, apply_messages
from leadscore.ingest.segment import Message
from leadscore.model import ScoringModel
from leadscore.model.source import version_text
from leadscore.scoring import history
from leadscore.scoring.crossings import save_named_scores, save_scores
from leadscore.scoring.due import TOLERANCE, schedule, schedule_models
from leadscore.scoring.publication import Pass, Scored, activate_version, run_pass
from leadscore.scoring.run import (
    Active,
    now_ms,
    remember_model,
    score_everyone,
    score_leads,
    score_points_models,
)
from leadscore.scoring.shadow import score_shadows
from leadscore.store import Store
from leadscore.store.event_log import drop_events_without_consent
from leadscore.store.model_versions import (
    ModelVersion,
    active_version,
    active_versions,
    add_version,
    share_models,
    take_models,
)
from leadscore.store.people import account_members, lead_accounts
from leadscore.store.planner_stats import analyse
from leadscore.store.results import NamedResults, append_history, due_at, lock_leads

RESCORE_CHUNK = 5000
# events a backfill stores before its rescore pass refreshes PostgreSQL's planner statistics first (a
# small import changes no plan, and ANALYZE samples tables of any size)
ANALYZE_AFTER = 10_000
NO_MODEL = (
    "no model is published: events are stored, but no lead is scored (the read API answers "
    '"score": null) until one is; publishing one scores every event stored so far'
)
log = logging.getLogger("leadscore.scoring")
# the warning that events arrive with no model to score them is logged once per process, not per batch
_no_model_warned = threading.Event()


@dataclass
class IngestReport:
    accepted: int = 0
    duplicates: int = 0
    suppressed: int = 0  # dropped unstored: they named a person erased with --suppress
    leads_rescored: int = 0
    history_rows: int = 0
    created_leads: set[int] = field(default_factory=set)


def current_model(store: Store) -> Active | None:
    with store.connect() as conn:
        return active_model(conn)


def active_model(conn: Connection, score_name: str | None = None) -> Active | None:
    """The active version of a score (the primary when None), parsed (cached per version), or None when
    none is published."""
    try:
        return Active.of(active_version(conn, score_name))
    except StoreError:
        return None


def active_models(conn: Connection, *, saving: bool = False) -> list[Active]:
    """The active version of every named score, parsed, the primary first. ``saving``: the transaction
    saves scores with them, and no version is activated until it ends (``model_versions.share_models``)."""
    if saving:
        share_models(conn)
    return [Active.of(version) for version in active_versions(conn)]


def ingest(
    store: Store,
    messages: Sequence[Message],
    *,
    source: str,
    as_of: int | None = None,
    drop_unconsented: bool = False,
) -> IngestReport:
    """Store messages and rescore the leads they touch with the active model, in one transaction."""
    with store.begin() as conn:
        applied = apply_messages(conn, messages, source)
        report = IngestReport(
            len(applied.inserted), applied.duplicates, applied.suppressed, created_leads=applied.created_leads
        )
        report.leads_rescored, report.history_rows = rescore_touched(
            conn, store.sources(), applied, as_of, drop_unconsented
        )
    return report


def rescore_touched(
    conn: Connection,
    sources: Sources,
    applied: Applied,
    as_of: int | None = None,
    drop_unconsented: bool = False,
) -> tuple[int, int]:
    """Rescore the leads a batch touched with every active model: current score (as of ``as_of``, default
    now), ledger, history at the batch's event time, threshold crossings, per named score. Returns (leads,
    history rows).

    With ``drop_unconsented`` the events of touched leads who refused tracking are deleted first
    ("not stored at all"); otherwise they stay stored and the compiled query gives them no points.
    """
    if drop_unconsented and applied.touched:
        drop_events_without_consent(conn, sorted(applied.touched))
    return save_rescore(conn, plan_rescore(conn, sources, applied, as_of))


@dataclass
class Rescore:
    """The leads a batch touched, scored with every active model (``plan_rescore``), to save with
    ``save_rescore``: one part per group of models scored by one statement."""

    sources: Sources
    stamp: int
    at: int  # the time the current scores are as of
    everyone: list[int]  # every lead scored (with their colleagues when a rule reads the account)
    parts: list[tuple[list[Active], list[list[Ledger]], list[dict[int, int | None]], dict[int, str]]] = field(
        default_factory=list
    )  # (models, their ledgers, when each score is next due, the cause of each lead's change)
    replays: list[history.Replay] = field(default_factory=list)  # each part's history points, scored
    later: dict[int, int] = field(default_factory=dict)  # colleagues of a crowd, due at the clock's tick
    own: frozenset[int] = frozenset()  # the leads the batch's own messages touched (the rest: colleagues)


def plan_rescore(
    conn: Connection, sources: Sources, applied: Applied, as_of: int | None = None
) -> Rescore | None:
    """The reading half of ``rescore_touched``: the touched leads' current scores, ledgers, due times and
    history points, computed; nothing written but the leads' locks (None: no active model). It may run on a
    read snapshot outside the write lock (SQLite, where ``lock_leads`` does nothing: ``scoring/snapshot.py``)."""
    models = active_models(conn, saving=True) if applied.touched or applied.left else []
    if not models and applied.touched and not _no_model_warned.is_set():
        _no_model_warned.set()
        log.warning("%s: `leadscore model publish MODEL.yaml`", NO_MODEL)
    if not models:
        return None
    stamp = now_ms()
    at = as_of or stamp
    # the models whose rules read only the lead's own events rescore the touched leads; those with an
    # account-scope rule, their colleagues too: each group is scored by one statement for all its models
    groups: dict[bool, list[Active]] = {}
    for active in models:
        groups.setdefault(_reads_accounts(active.model), []).append(active)
    plans = [(group, *_with_colleagues(conn, group[0].model, applied)) for group in groups.values()]
    everyone = sorted(set().union(*(touched for _, touched, _, _, _ in plans)))
    # before they are read: a concurrent rescore of the same leads (PostgreSQL) has committed by then
    lock_leads(conn, everyone)
    out = Rescore(sources, stamp, at, everyone, own=frozenset(applied.touched))
    scored_now = set(everyone)
    for *_, later in plans:
        for lead_id, when in later.items():
            if lead_id not in scored_now:
                out.later[lead_id] = min(when, out.later.get(lead_id, when))
    for group, touched, messages, since, _ in plans:
        lead_ids = sorted(touched)
        per_model = score_points_models(
            conn, [a.model for a in group], sources, [(lid, at) for lid in lead_ids]
        )
        causes = {lid: history.cause(messages.get(lid, [])) for lid in lead_ids}
        dues = schedule_models(conn, [a.model for a in group], sources, per_model, _names(group))
        out.parts.append((group, per_model, dues, causes))
        versions = [(a.model, a.version.id, a.version.score_name) for a in group if a.version is not None]
        out.replays.append(history.plan_replay(conn, versions, sources, since, at))
    return out


def save_rescore(conn: Connection, rescore: Rescore | None) -> tuple[int, int]:
    """The writing half of ``rescore_touched``: save what ``plan_rescore`` computed (scores, ledgers,
    crossings, history), and score the shadow versions beside it. Returns (leads, history rows)."""
    if rescore is None:
        return 0, 0
    scored: set[int] = set()
    rows = 0
    due_at(conn, rescore.later)
    for (group, per_model, dues, causes), replay in zip(rescore.parts, rescore.replays, strict=True):
        save_named_scores(conn, _named(group, per_model, dues), rescore.stamp, causes)
        scored.update(lg.lead_id for ledgers in per_model for lg in ledgers)
        rows += history.write_replay(conn, replay, rescore.stamp)
        rows += _rows_after_replay(conn, rescore, group, per_model, causes, replay)
    # candidates beside it: no actions
    score_shadows(conn, rescore.sources, rescore.everyone, rescore.at, rescore.stamp)
    return len(scored), rows


def _rows_after_replay(
    conn: Connection,
    rescore: Rescore,
    group: Sequence[Active],
    per_model: Sequence[Sequence[Ledger]],
    causes: Mapping[int, str],
    replay: history.Replay,
) -> int:
    """History rows at the time the current scores are as of, for the leads whose replay cannot have left
    their newest row at their score. Returns rows written.

    - A lead scored for a colleague's event or move alone (a rule over the account's events), where her
      score moved from her newest row: cause ``account`` (her own events gave her replay no point then: her
      newest row said 1 while her score was 11).
    - A lead whose newest row is of another cause and later than the batch's events, where her score moved
      from it: cause ``event``, the batch's messages (a late event before the clock's row left that row,
      0, newest while her score was 1).
    - A lead whose newest row drifted from her score as of now further than the clock lets a stored score
      drift (``history.drifted``): cause ``event``, "windows and decay as of now" (an event processed
      after it had left its rule's window: her newest row said 1, her score 0, and nothing was due).

    The last two are of an event cause: the next replay reaching them rewrites them as it rewrites the
    event rows (one such row at most, whatever the batching), where the clock's rows stay as recorded."""
    rows = 0
    for active, ledgers in zip(group, per_model, strict=True):
        if active.version is None:
            continue
        name, version_id = active.version.score_name, active.version.id
        theirs = [lg for lg in ledgers if lg.lead_id not in rescore.own]
        if theirs:
            rows += history.record_saved(
                conn, active.model, rescore.sources, version_id, theirs, "account",
                {lg.lead_id: causes.get(lg.lead_id, "") for lg in theirs}, rescore.stamp, score_name=name,
            )  # fmt: skip
        after, late = replay.after.get(name, {}), replay.outdone.get(name, set())
        written = []
        for lg in ledgers:
            top_at, top = after.get(lg.lead_id, (None, None))
            if lg.lead_id not in rescore.own or top is None or top_at is None or lg.as_of < top_at:
                continue
            if lg.lead_id in late:  # ``top`` is the later row of another cause, as read
                if not isinstance(top, Ledger) and history.changed(top, lg, version_id):
                    ref = causes.get(lg.lead_id, "")
                    written.append(history.row(lg, version_id, "event", ref, rescore.stamp, name))
            elif history.drifted(top, lg, version_id, TOLERANCE):
                written.append(history.row(lg, version_id, "event", history.TIME_REF, rescore.stamp, name))
        append_history(conn, written)
        rows += len(written)
    return rows


# A rule reading the account's events (``scope: account``) makes a colleague's event every colleague's. In
# an account of more people than this, the others are not rescored with the batch but made due at the
# event's time, for the clock to rescore at its next tick in its chunks (no history row at the event's
# time, one of cause ``time`` at the tick): a write key can put any number of people in one account, and
# rescoring all of them with each event grew with the square of its size (4,000 people: 20 page views took
# 46 s, and every other lead's scoring waited).
COLLEAGUES_NOW = 200


def _reads_accounts(model: ScoringModel) -> bool:
    """Whether a rule of the model reads the events of the lead's account (``scope: account``)."""
    return bool(scoped(model, "account"))


def _with_colleagues(
    conn: Connection, model: ScoringModel, applied: Applied
) -> tuple[dict[int, int], dict[int, list[str]], dict[int, int], dict[int, int]]:
    """The leads to rescore (lead id → effective time), the messages behind each, and the earliest time
    whose history each may change: the touched leads, and, when a rule reads the account's events
    (``scope: account``), every other lead of their accounts (a colleague's event changes their score
    too), at the times and for the messages of the event, and the colleagues a lead left
    (``Applied.left``), whose whole history may change; and the colleagues in accounts of more than
    ``COLLEAGUES_NOW`` people, and those left in an account where more than ``COLLEAGUES_NOW`` were left
    (unless ``Applied.left_exact``), left for the clock (lead id → the time they are due at)."""
    touched, messages = dict(applied.touched), {k: list(v) for k, v in applied.causes.items()}
    since = {lid: applied.since.get(lid, at) for lid, at in applied.touched.items()}
    if not _reads_accounts(model):
        return touched, messages, since, {}
    # each account's people once: (person, colleague) pairs grew with the batch times the account (2,000
    # people, a batch of 500 of them: a million pairs, 112 MiB and 1 CPU-s)
    accounts = {lid: acc for lid, acc in lead_accounts(conn, applied.touched).items() if acc is not None}
    members = account_members(conn, accounts.values())
    later: dict[int, int] = {}
    crowds: dict[int, int] = {}  # an account of more than COLLEAGUES_NOW colleagues -> its earliest event
    for lead_id in sorted(accounts):
        account, at = accounts[lead_id], applied.touched[lead_id]
        mates = members.get(account, [])
        if len(mates) - 1 > COLLEAGUES_NOW:  # a crowd: the clock's, at its next tick
            crowds[account] = min(at, crowds.get(account, at))
            continue
        for colleague in mates:
            if colleague == lead_id:
                continue
            touched[colleague] = max(at, touched.get(colleague, at))
            since[colleague] = min(since[lead_id], since.get(colleague, since[lead_id]))
            messages.setdefault(colleague, []).extend(applied.causes.get(lead_id, []))
    for account, at in crowds.items():
        for colleague in members[account]:
            if colleague not in applied.touched:
                later[colleague] = min(at, later.get(colleague, at))
    # the colleagues left in an account where more than COLLEAGUES_NOW were left: the clock's as well (a
    # write key moving one person out of a crowd and back made every batch rescore all of it, whole
    # histories included: 1,600 people, two group calls 3.3 CPU-s)
    crowded = len(applied.left) > COLLEAGUES_NOW and not applied.left_exact
    left_of = lead_accounts(conn, applied.left) if crowded else {}
    left_in = Counter(left_of.values())
    for colleague, (at, causes) in applied.left.items():
        if left_in[left_of.get(colleague)] > COLLEAGUES_NOW:
            if colleague not in applied.touched:
                later[colleague] = min(at, later.get(colleague, at))
            continue
        touched[colleague] = max(at, touched.get(colleague, at))
        since[colleague] = EVER
        messages.setdefault(colleague, []).extend(causes)
    return touched, messages, since, {c: at for c, at in later.items() if c not in touched}


class Backfill:
    """A large import of recorded events: each chunk of messages is stored and applied (identities,
    traits, accounts) in a transaction of its own, without scoring; ``finish`` then rescores every lead
    the chunks touched once, ``RESCORE_CHUNK`` leads per transaction, through ``rescore_touched`` (current
    score, ledger, history, crossings), as of each lead's newest imported event.

    What it keeps between chunks is a lead id and a time per touched lead: memory is bounded by the chunk
    size and the number of leads, not by the file.
    """

    def __init__(self, store: Store, *, source: str, cause_ref: str) -> None:
        self.store, self.source, self.cause_ref = store, source, cause_ref
        self.touched: dict[int, int] = {}
        self.stored = 0  # events the chunks added to the log
        self.since: dict[int, int] = {}  # the earliest time whose history each lead's chunks may change
        self.left: dict[int, int] = {}  # the colleagues a lead left (``Applied.left``): the newest time

    def add(self, messages: Sequence[Message]) -> IngestReport:
        """Store and apply one chunk (one transaction); its leads wait for ``finish``."""
        try:
            with self.store.begin() as conn:
                applied = apply_messages(conn, messages, self.source, defer_links=True)
        except LinkRaced:  # a live writer linked one of the chunk's keys first: again, linking as it goes
            with self.store.begin() as conn:
                applied = apply_messages(conn, messages, self.source, defer_links=False)
        for lead_id, at_ms in applied.touched.items():
            self.touched[lead_id] = max(at_ms, self.touched.get(lead_id, at_ms))
            first = applied.since.get(lead_id, at_ms)
            self.since[lead_id] = min(first, self.since.get(lead_id, first))
        for lead_id, (at_ms, _) in applied.left.items():  # ``finish`` names the import as their cause
            self.left[lead_id] = max(at_ms, self.left.get(lead_id, at_ms))
        self.stored += len(applied.inserted)
        return IngestReport(
            len(applied.inserted), applied.duplicates, applied.suppressed, created_leads=applied.created_leads
        )

    def leads(self) -> list[int]:
        """The leads ``finish`` rescores: those the chunks touched and the colleagues a lead left."""
        return sorted(self.touched.keys() | self.left.keys())

    def finish(self, progress: Callable[[int, int], None] | None = None) -> tuple[int, int]:
        """Rescore the touched leads; returns (leads rescored, history rows). ``progress(done, total)``."""
        ids = self.leads()
        leads_rescored = history_rows = 0
        if self.stored >= ANALYZE_AFTER:
            refresh_statistics(self.store)
        for start in range(0, len(ids), RESCORE_CHUNK):
            part = ids[start : start + RESCORE_CHUNK]
            applied = Applied(
                touched={lid: self.touched[lid] for lid in part if lid in self.touched},
                causes={lid: [self.cause_ref] for lid in part if lid in self.touched},
                since={lid: self.since[lid] for lid in part if lid in self.touched},
                left={lid: (self.left[lid], [self.cause_ref]) for lid in part if lid in self.left},
            )
            # no cyclic collection while a chunk's points, ledgers and rows are alive (none is in a cycle):
            # each young collection would walk them all again, as in the processor's batch (``snapshot``)
            with collection_paused(), self.store.begin() as conn:
                rescored, rows = rescore_touched(conn, self.store.sources(), applied)
            leads_rescored, history_rows = leads_rescored + rescored, history_rows + rows
            if progress is not None:
                progress(start + len(part), len(ids))
        self.touched.clear()
        self.since.clear()
        self.left.clear()
        return leads_rescored, history_rows


def refresh_statistics(store: Store) -> None:
    """Let PostgreSQL's planner see what a backfill loaded before the rescore pass reads it: tables
    filled within minutes are not yet analysed by autovacuum, and the scoring query planned over the
    statistics of near-empty tables ran each history point many times slower (a 50k-line import: 42 s
    of 85 s in the history points). SQLite's plans are fixed by the compiler's join order."""
    if store.dialect != "postgresql":
        return
    with store.begin() as conn:
        analyse(conn)


def publish(
    store: Store,
    model: ScoringModel,
    *,
    text: str | None = None,
    note: str = "",
    as_of: int | None = None,
    actor: str = "cli",
    score_name: str | None = None,
) -> tuple[ModelVersion, int]:
    """Store the model as a new version of the score ``score_name`` (the primary when None; a new name
    adds a score), or reuse an identical one, activate it and rescore every lead's score of that name;
    the publication is written to the audit log under ``actor``. ``text`` is the author's YAML (stored
    as written, comments included: ``model.source``); without it the model is dumped."""
    stored = version_text(model, text)
    with store.begin() as conn:
        version, _ = add_version(conn, model.model, stored, now_ms(), note, score_name)
    if (
        text is not None
    ):  # ``version_text`` loaded it to ``model``: not parsed again (seconds for large lists)
        remember_model(version.yaml, version.label, model)
    return activate_version(store, version.id, action="published", as_of=as_of, actor=actor, note=note)


def rescore_all(
    store: Store, *, as_of: int | None = None, save: bool = True, score_name: str | None = None
) -> list[Ledger]:
    """Score every lead with every active model as of a time; save as the current scores if asked, with
    when each is next due, crossings and a history row where a score moved. Returns the ledgers of the
    score ``score_name`` (the primary when None; an unknown or retired one is refused before scoring).
    Saved, it is computed outside the write lock and saved in one short transaction
    (``scoring/publication.py``)."""
    stamp = now_ms()
    work = _Rescoring(store.sources(), as_of or stamp, stamp, score_name, save)
    # every score's ledgers stay alive to the end, so each collection of the cyclic collector would walk
    # them all again (none is in a cycle): paused for the whole rescoring, not only while the results are
    # read, since the due times' and the save's tuples start collections too (a tenth of a CPU-second of
    # three scores' save on the 3,000-lead bench, a hundredth of one score's: the heap grows with the scores)
    with collection_paused():
        if save:
            return run_pass(store, work)
        with store.connect() as conn:
            work.prepare(conn)
            return work.score(conn, None).ledgers[work.returned]


@dataclass
class _Rescoring(Pass[list[Ledger]]):
    """Every lead scored with every active model as of ``at`` (``rescore_all``); saves the ledgers of the
    score ``score_name``'s."""

    sources: Sources
    at: int
    stamp: int
    score_name: str | None
    saving: bool
    models: list[Active] = field(default_factory=list)
    returned: int = 0

    def prepare(self, conn: Connection) -> None:
        self.models = active_models(conn)
        if not self.models:
            raise StoreError("no active model: publish one with `leadscore model publish MODEL.yaml`")
        self.returned = [a.version for a in self.models].index(active_version(conn, self.score_name))

    def score(self, conn: Connection, lead_ids: Collection[int] | None) -> Scored:
        models = [a.model for a in self.models]
        # one statement for every model (the events are read once), one for when each score is next due
        if lead_ids is None:
            per_model = score_everyone(conn, models, self.sources, self.at)
        else:
            per_model = score_points_models(
                conn, models, self.sources, [(lid, self.at) for lid in sorted(lead_ids)]
            )
        if not self.saving:
            return Scored(per_model, [{} for _ in models], [])
        dues = schedule_models(conn, models, self.sources, per_model, _names(self.models))
        rows = []
        # time alone moved them (the events were scored as they came): the clock's cause
        for active, ledgers in zip(self.models, per_model, strict=True):
            assert active.version is not None
            rows += history.plan_record_saved(conn, active.model, self.sources, active.version.id, ledgers, "time",
                                              RESCORE_REF, self.stamp, score_name=active.version.score_name)  # fmt: skip
        return Scored(per_model, dues, rows)

    def begin_save(self, conn: Connection) -> bool:
        # read again in the write transaction: a version activated since the snapshot would otherwise be
        # undone by the scores of the version it replaced
        scored_with = self._versions()
        # the models lock alone (PostgreSQL), as an activation's save: no version activated until the save
        # commits, and the processor's batches under way end first (they share it from their first event),
        # so their leads' changes are read by the catch-up here; a batch's lead saved over, or its score row
        # inserted twice ("duplicate key"), otherwise. The processor waits for this short save.
        take_models(conn)
        self.prepare(conn)
        return self._versions() == scored_with

    def _versions(self) -> list[int]:
        return [a.version.id for a in self.models if a.version is not None]

    def save(self, conn: Connection, scored: Scored) -> list[Ledger]:
        save_named_scores(conn, _named(self.models, scored.ledgers, scored.due), self.stamp, "rescore")
        append_history(conn, scored.history_rows)
        return scored.ledgers[self.returned]


def _names(models: Sequence[Active]) -> list[str | None]:
    """Each active model's score name (the due times test the lifecycle's thresholds of that score)."""
    return [a.version.score_name if a.version is not None else None for a in models]


RESCORE_REF = "every lead rescored"


def _named(
    models: Sequence[Active], per_model: Sequence[Sequence[Ledger]], dues: Sequence[Mapping[int, int | None]]
) -> list[NamedResults]:
    """Each active model's ledgers and due times, to save under its score's name."""
    out = []
    for active, ledgers, due in zip(models, per_model, dues, strict=True):
        assert active.version is not None
        out.append(NamedResults(active.version.score_name, active.version.id, ledgers, due))
    return out


def save_rescored(
    conn: Connection, sources: Sources, active: Active, ledgers: Sequence[Ledger], stamp: int
) -> int:
    """Save ledgers of ``active`` scored elsewhere (a batch run) as the current scores of its name, as
    ``rescore_all`` saves them: when each is next due, crossings, and a history row where a score moved.
    Returns the history rows written."""
    assert active.version is not None
    name = active.version.score_name
    due = schedule(conn, active.model, sources, ledgers, name)
    save_scores(conn, ledgers, active.version.id, stamp, "rescore", due, score_name=name)
    return history.record_saved(
        conn, active.model, sources, active.version.id, ledgers, "time", RESCORE_REF, stamp, score_name=name
    )


def rescore_leads(store: Store, lead_ids: Iterable[int], *, cause_ref: str) -> int:
    """Rescore leads with every active model now: current scores and a history row if a score moved.

    Returns how many leads were scored (0 when no model is active).
    """
    ids = sorted(set(lead_ids))
    if not ids:
        return 0
    stamp, scored = now_ms(), 0
    with store.begin() as conn:
        models = active_models(conn, saving=True)  # in the write transaction, as ``rescore_all`` reads them
        if not models:
            return 0
        for start in range(0, len(ids), RESCORE_CHUNK):
            chunk = ids[start : start + RESCORE_CHUNK]
            # every model scores the same existing leads of the chunk
            scored += max(
                rescore_now(conn, store.sources(), active, chunk, stamp, "import", cause_ref)[0]
                for active in models
            )
    return scored


@dataclass
class RescoreNow:
    """Leads rescored as of one time, not yet saved (``rescore_now_read``): each one's ledger, when it is next
    due, and its history rows."""

    ledgers: dict[int, Ledger]
    due: dict[int, int | None]
    history: dict[int, list[dict[str, Any]]]


def rescore_now_read(
    conn: Connection,
    sources: Sources,
    active: Active,
    lead_ids: Sequence[int],
    stamp: int,
    cause: str,
    ref: str,
) -> RescoreNow:
    """``rescore_now``'s reading half: the leads' scores of ``active``'s name as of ``stamp``, when each is
    next due, and the history rows (``cause``, ``ref``) where a score moved; on any snapshot (the clock
    reads one outside the write turn)."""
    assert active.version is not None
    name = active.version.score_name
    ledgers = score_leads(conn, active.model, sources, lead_ids, stamp)
    due = schedule(conn, active.model, sources, ledgers, name)
    changes = {lg.lead_id: (stamp, cause, ref) for lg in ledgers}
    rows = (
        history.plan_record(conn, active.model, sources, active.version.id, changes, stamp, score_name=name)
        if changes
        else []
    )
    by_lead: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        by_lead.setdefault(int(row["lead_id"]), []).append(row)
    return RescoreNow({lg.lead_id: lg for lg in ledgers}, dict(due), by_lead)


def rescore_now_write(
    conn: Connection, active: Active, rescored: RescoreNow, lead_ids: Sequence[int], stamp: int, ref: str
) -> tuple[int, int]:
    """``rescore_now``'s writing half for ``lead_ids`` of ``rescored`` (those it scored): current scores,
    due times, crossings and history rows. Returns (leads, history rows)."""
    assert active.version is not None
    ledgers = [rescored.ledgers[i] for i in lead_ids if i in rescored.ledgers]
    name = active.version.score_name
    save_scores(conn, ledgers, active.version.id, stamp, ref, rescored.due, score_name=name)
    rows = [row for lg in ledgers for row in rescored.history.get(lg.lead_id, ())]
    append_history(conn, rows)
    return len(ledgers), len(rows)


def rescore_now(
    conn: Connection,
    sources: Sources,
    active: Active,
    lead_ids: Sequence[int],
    stamp: int,
    cause: str,
    ref: str,
) -> tuple[int, int]:
    """Rescore leads' score of ``active``'s name as of ``stamp`` in the caller's transaction: current
    scores, when each is next due, crossings, and a history row (``cause``, ``ref``) where a score moved.
    Returns (leads, history rows)."""
    rescored = rescore_now_read(conn, sources, active, lead_ids, stamp, cause, ref)
    return rescore_now_write(conn, active, rescored, list(rescored.ledgers), stamp, ref)
