"""Score history: a row whenever a lead's score, grade, level or band changes, with its cause.

Each row is the compiled model evaluated at the row's time over the events up to then and the lead's
attributes as known then (``scoring/as_known.py``), so history is replayable and does not depend on the
order or batches events arrived in (but for a lead past the budget of ``thinned``, whose batches decide
which of her event times have rows):

* events (``replay``): a row at every distinct event time of the lead at which the score moved, caused
  by the messages of that time, after a ``created`` row just before its first event. A batch recomputes
  the lead's event rows from its earliest message time on (all of them when it linked a person key, whose
  earlier events then join the lead; from an attribute's previous observation time when it observed the
  attribute again, ``ingest.traits.restamped_since``), so a late event rewrites the rows after it exactly as
  if it had arrived in order. Rows of other causes stay as they were recorded. A point costs the lead's
  events up to it to score, so a lead's points in one replay are bounded (``thinned``): one person's
  flood of events makes her rows coarser, never every batch about her dearer than the last.
* a model publication, an import, the clock (``record``), a rescore of every lead (``record_saved``): a
  row at that time if the score moved.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import BigInteger, Connection, bindparam, delete, func, select

from leadscore.compile import Ledger, Sources
from leadscore.compile.query import scoped
from leadscore.model import ScoringModel
from leadscore.scoring.as_known import score_as_known, score_as_known_models
from leadscore.scoring.shown import cut
from leadscore.store.id_lists import in_list
from leadscore.store.pipelined import pipelined
from leadscore.store.results import append_history, append_history_values, last_histories, last_history
from leadscore.store.schema import events, identities, leads, score_history

T = TypeVar("T")
TRACKED = ("score", "fit_score", "engagement_score", "grade", "level", "band")
EPS = 1e-9
EVENT_CAUSES = ("event", "created")


# the columns a history row is written with, in the order ``_values`` gives them
COLUMNS = (
    "lead_id",
    "score_name",
    "model_version_id",
    "at_ms",
    "score",
    "fit_score",
    "engagement_score",
    "grade",
    "level",
    "band",
    "cause",
    "cause_ref",
    "recorded_ms",
)


def _values(
    ledger: Ledger, version_id: int, cause: str, ref: str, recorded_ms: int, score_name: str
) -> tuple[Any, ...]:
    """A history row's values, in the order of ``COLUMNS``."""
    return (
        ledger.lead_id,
        score_name,
        version_id,
        ledger.as_of,
        ledger.score,
        ledger.fit_score,
        ledger.engagement_score,
        ledger.grade,
        ledger.level,
        ledger.band,
        cause,
        ref,
        recorded_ms,
    )


def row(
    ledger: Ledger, version_id: int, cause: str, ref: str, recorded_ms: int, score_name: str
) -> dict[str, Any]:
    return dict(zip(COLUMNS, _values(ledger, version_id, cause, ref, recorded_ms, score_name), strict=True))


def score_path(rows: Iterable[Mapping[str, Any]], older: bool = False, newer: bool = False) -> str:
    """A history's scores as ``0 → 21 → 43.5`` (whole numbers without a decimal): the lead page's and
    ``leadscore history``'s; of a page of it, with an ellipsis first where there are ``older`` rows and
    last where there are ``newer`` ones (``… → 21 → 43.5 → …``)."""
    shown = (cut(r["score"]) for r in rows)
    path = " → ".join(f"{s:.0f}" if s.is_integer() else f"{s:.1f}" for s in shown)
    return ("… → " if older else "") + path + (" → …" if newer else "")


def changed(prev: Mapping[str, Any] | None, ledger: Ledger, version_id: int) -> bool:
    if prev is None or prev["model_version_id"] != version_id:
        return True
    for k in TRACKED:
        now = getattr(ledger, k)
        if abs(prev[k] - now) > EPS if isinstance(now, float) else prev[k] != now:
            return True
    return False


# the reference of a row of the score as of a time, not of an event: the clock's (cause ``time``), and a
# batch's where the score drifted from the newest row (cause ``event``: ``pipeline._rows_after_replay``)
TIME_REF = "windows and decay as of now"


def drifted(row: Mapping[str, Any] | Ledger, ledger: Ledger, version_id: int, tolerance: float) -> bool:
    """Whether ``ledger`` (a current score) is further from a history row (or the ledger a row was written
    of) than a stored score may drift before the clock rescores it: ``tolerance`` points of a score, or
    another band, grade or level, or another version."""
    if isinstance(row, Mapping) and row["model_version_id"] != version_id:
        return True
    before = [row[k] if isinstance(row, Mapping) else getattr(row, k) for k in TRACKED]
    now = [getattr(ledger, k) for k in TRACKED]
    return any(abs(float(a) - float(b)) >= tolerance for a, b in zip(before[:3], now[:3], strict=True)) or (
        before[3:] != now[3:]
    )


def moved(before: Ledger, ledger: Ledger) -> bool:
    """``changed`` from the row written of ``before`` (same version): its tracked values are the
    ledger's, so the ledgers are compared as they are, with no row built to compare."""
    return (
        abs(before.score - ledger.score) > EPS
        or abs(before.fit_score - ledger.fit_score) > EPS
        or abs(before.engagement_score - ledger.engagement_score) > EPS
        or before.grade != ledger.grade
        or before.level != ledger.level
        or before.band != ledger.band
    )


_FIRST_EVENT = (
    select(func.min(events.c.ts))
    .select_from(identities.join(events, events.c.person_key == identities.c.key))
    .where(identities.c.lead_id == leads.c.id)
    .correlate(leads)
    .scalar_subquery()
)
# one statement (a round trip fewer for every processor batch): creation and first event of each lead
_BASELINES = select(leads.c.id, leads.c.created_ms, _FIRST_EVENT).where(in_list(leads.c.id, "ids"))


def baselines(conn: Connection, lead_ids: Sequence[int]) -> dict[int, int]:
    """For each lead: the moment before its first event (a lead without events: its creation)."""
    with pipelined(conn) as pipeline:
        return _baselines(pipeline.tuples(_BASELINES, {"ids": list(lead_ids)}), lead_ids)


def _baselines(rows: Iterable[Sequence[Any]], lead_ids: Sequence[int]) -> dict[int, int]:
    found = {}
    for lid, created, first in rows:
        found[int(lid)] = created if first is None else first - 1
    # a lead deleted since it was touched (merged into another by an alias, erased) has none: no history
    return {lid: found[lid] for lid in lead_ids if lid in found}


def record(
    conn: Connection,
    model: ScoringModel,
    sources: Sources,
    version_id: int,
    changes: Mapping[int, tuple[int, str, str]],
    recorded_ms: int,
    *,
    score_name: str,
) -> int:
    """Append history rows of the score ``score_name`` for ``changes`` (lead → (time, cause, cause ref))
    where the score moved."""
    rows = plan_record(conn, model, sources, version_id, changes, recorded_ms, score_name=score_name)
    append_history(conn, rows)
    return len(rows)


def plan_record(
    conn: Connection,
    model: ScoringModel,
    sources: Sources,
    version_id: int,
    changes: Mapping[int, tuple[int, str, str]],
    recorded_ms: int,
    *,
    score_name: str,
) -> list[dict[str, Any]]:
    """The rows ``record`` appends, computed and not written (a publication computes them on a read
    snapshot and writes them in its short write transaction)."""
    lead_ids = list(changes)
    previous = last_history(conn, lead_ids, score_name=score_name)
    fresh = [lid for lid in lead_ids if lid not in previous]
    base = baselines(conn, fresh) if fresh else {}
    pairs = [(lid, base[lid]) for lid in fresh] + [(lid, changes[lid][0]) for lid in lead_ids]
    by_point = score_as_known(conn, model, sources, pairs)
    rows: list[dict[str, Any]] = []
    for lid in lead_ids:
        prev = previous.get(lid)
        if lid in base:
            rows.append(
                row(
                    by_point[(lid, base[lid])],
                    version_id,
                    "created",
                    "before any activity",
                    recorded_ms,
                    score_name,
                )
            )
            prev = rows[-1]
        at, cause, ref = changes[lid]
        ledger = by_point[(lid, at)]
        if changed(prev, ledger, version_id):
            rows.append(row(ledger, version_id, cause, ref, recorded_ms, score_name))
    return rows


def record_saved(
    conn: Connection,
    model: ScoringModel,
    sources: Sources,
    version_id: int,
    ledgers: Sequence[Ledger],
    cause: str,
    ref: str | Mapping[int, str],
    recorded_ms: int,
    *,
    score_name: str,
) -> int:
    """``record`` for ledgers just saved as the current scores ``score_name``: a row at each one's as-of
    time where it moved from the lead's newest row, written from the ledger itself (no second scoring), so
    the newest row holds the current score; a lead with no row yet is ``record``ed (its created row
    first). ``ref``: the cause's reference, or each lead's."""
    rows = plan_record_saved(
        conn, model, sources, version_id, ledgers, cause, ref, recorded_ms, score_name=score_name
    )
    append_history(conn, rows)
    return len(rows)


def plan_record_saved(
    conn: Connection,
    model: ScoringModel,
    sources: Sources,
    version_id: int,
    ledgers: Sequence[Ledger],
    cause: str,
    ref: str | Mapping[int, str],
    recorded_ms: int,
    *,
    score_name: str,
) -> list[dict[str, Any]]:
    """The rows ``record_saved`` appends, computed and not written (a full rescoring computes them on a
    read snapshot: ``scoring/publication.py``)."""
    refs = ref if isinstance(ref, Mapping) else {lg.lead_id: ref for lg in ledgers}
    previous = last_history(conn, [lg.lead_id for lg in ledgers], score_name=score_name)
    rows = [
        row(lg, version_id, cause, refs[lg.lead_id], recorded_ms, score_name)
        for lg in ledgers
        if lg.lead_id in previous and changed(previous[lg.lead_id], lg, version_id)
    ]
    fresh = {lg.lead_id: (lg.as_of, cause, refs[lg.lead_id]) for lg in ledgers if lg.lead_id not in previous}
    if not fresh:
        return rows
    return rows + plan_record(conn, model, sources, version_id, fresh, recorded_ms, score_name=score_name)


def replay(
    conn: Connection,
    model: ScoringModel,
    sources: Sources,
    version_id: int,
    since: Mapping[int, int],
    until: int,
    recorded_ms: int,
    *,
    score_name: str,
) -> int:
    """Recompute the event rows of the score ``score_name`` of the leads in ``since`` (lead → earliest time
    a batch may have changed) up to ``until``; returns rows written."""
    return replay_scores(conn, [(model, version_id, score_name)], sources, since, until, recorded_ms)


def replay_scores(
    conn: Connection,
    scored: Sequence[tuple[ScoringModel, int, str]],
    sources: Sources,
    since: Mapping[int, int],
    until: int,
    recorded_ms: int,
) -> int:
    """``replay`` for several scores (model, version id, score name) at once: the points to score are
    the same for every score (the leads' event times), so they are scored by one statement that reads
    the events once for every model (``score_as_known_models``). Returns rows written."""
    return write_replay(conn, plan_replay(conn, scored, sources, since, until), recorded_ms)


@dataclass
class Replay:
    """The history points of a replay, scored (``plan_replay``), to write with ``write_replay``."""

    scored: Sequence[tuple[ScoringModel, int, str]]
    lead_ids: list[int]
    start: dict[int, int]  # per lead: the time from which its event rows are rewritten
    plan: dict[int, list[tuple[int, str, str]]]  # per lead: (time, cause, reference) of each point
    by_points: list[dict[tuple[int, int], Ledger]]  # per score: the ledger at each (lead, time)
    # per score name, filled by ``write_replay``: each lead's newest row once it is written (its time and
    # the row, or the ledger a row was written of), and the leads whose newest row is of another cause (the
    # clock's, a publication's) and later than every point rewritten (``outdone``)
    after: dict[str, dict[int, tuple[int, Mapping[str, Any] | Ledger]]] = field(default_factory=dict)
    outdone: dict[str, set[int]] = field(default_factory=dict)


def plan_replay(
    conn: Connection,
    scored: Sequence[tuple[ScoringModel, int, str]],
    sources: Sources,
    since: Mapping[int, int],
    until: int,
) -> Replay:
    """The reading half of ``replay_scores``: which points each lead gets, each scored (writes nothing,
    so it may run on a read snapshot outside the write lock: ``scoring/snapshot.py``)."""
    lead_ids = sorted(since)
    if not lead_ids or not scored:
        return Replay(scored, [], {}, {}, [])
    # two reads, one round trip on PostgreSQL: the events from the earliest time any lead's rows may
    # change are a superset of those from each lead's start (a start before ``since`` is its baseline,
    # the moment before its first event)
    with pipelined(conn) as pipeline:
        sent_base = pipeline.tuples(_BASELINES, {"ids": lead_ids})
        sent_times = pipeline.tuples(
            _EVENT_TIMES, {"ids": lead_ids, "since": min(since.values()), "until": until}
        )
        base = _baselines(sent_base, lead_ids)
        times = _event_times(sent_times)
    lead_ids = [lid for lid in lead_ids if lid in base]  # the leads that still exist
    # a batch holding the lead's first event (or linking a key) moves its created row too
    start = {lid: base[lid] if since[lid] <= base[lid] + 1 else since[lid] for lid in lead_ids}
    due = {
        lid: [(at, mids) for at, mids in sorted(times.get(lid, {}).items()) if at >= start[lid]]
        for lid in lead_ids
    }
    many = [lid for lid in lead_ids if len(due[lid]) > FEW_POINTS]
    # a point of a model with a rule over the account's events reads her colleagues' events too
    accounts = any(scoped(model, "account") for model, _, _ in scored)
    counts = _event_counts(conn, many, until, accounts) if many else {}
    points: list[tuple[int, int]] = []
    plan: dict[int, list[tuple[int, str, str]]] = {}
    for lid in lead_ids:
        kept = thinned(due[lid], counts.get(lid, 0))
        steps = [(at, "event", cause(mids)) for at, mids in kept]
        if base[lid] >= start[lid] and base[lid] <= until:
            steps.insert(0, (base[lid], "created", "before any activity"))
        plan[lid] = steps
        points.extend((lid, at) for at, _, _ in steps)
    by_points = score_as_known_models(conn, [model for model, _, _ in scored], sources, points)
    return Replay(scored, lead_ids, start, plan, by_points)


def write_replay(conn: Connection, replay: Replay, recorded_ms: int) -> int:
    """The writing half of ``replay_scores``: each lead's event rows from its start are replaced by the
    points whose score moved (compared with the row before). Returns rows written."""
    if not replay.lead_ids:
        return 0
    rows: list[tuple[Any, ...]] = []
    newest = last_histories(conn, replay.lead_ids, [name for _, _, name in replay.scored])
    for (_, version_id, name), by_point in zip(replay.scored, replay.by_points, strict=True):
        replay.outdone[name] = {
            lid
            for lid, top in newest[name].items()
            if lid in replay.start
            and top["cause"] not in EVENT_CAUSES
            and top["at_ms"] >= replay.start[lid]
            and all(top["at_ms"] > at for at, _, _ in replay.plan[lid])
        }
        previous = _previous(conn, replay.lead_ids, replay.start, version_id, name, newest[name])
        after = replay.after[name] = {}
        for lid in replay.lead_ids:
            stored = previous[lid]  # the row before the first point: compared as ``changed`` compares it
            written: Ledger | None = None  # the ledger of the row written last, once one is
            for at, cause, ref in replay.plan[lid]:
                ledger = by_point[(lid, at)]
                if (
                    cause == "created"
                    or (written is None and changed(stored, ledger, version_id))
                    or (written is not None and moved(written, ledger))
                ):
                    rows.append(_values(ledger, version_id, cause, ref, recorded_ms, name))
                    written = ledger
            top = newest[name].get(lid)
            if lid in replay.outdone[name] and top is not None:
                after[lid] = (int(top["at_ms"]), top)
            elif written is not None:
                after[lid] = (written.as_of, written)
            elif stored is not None:
                after[lid] = (int(stored["at_ms"]), stored)
    append_history_values(conn, COLUMNS, rows)
    return len(rows)


def _previous(
    conn: Connection,
    lead_ids: Sequence[int],
    start: Mapping[int, int],
    version_id: int,
    score_name: str,
    newest: Mapping[int, dict[str, Any]],
) -> dict[int, dict[str, Any] | None]:
    """Each lead's newest history row of the score before ``start`` (its rows of event causes from then
    on are deleted: they are recomputed), from ``newest``: each lead's newest row of the score."""
    previous: dict[int, dict[str, Any] | None] = {}
    for lid in lead_ids:
        top = newest.get(lid)
        if top is None or top["at_ms"] < start[lid]:
            # the common cases: a lead without any history row (nothing to delete or read back; a
            # backfill's new leads), or events newer than every row
            previous[lid] = top
            continue
        conn.execute(
            delete(score_history).where(
                score_history.c.lead_id == lid,
                score_history.c.score_name == score_name,
                score_history.c.model_version_id == version_id,
                score_history.c.cause.in_(EVENT_CAUSES),
                score_history.c.at_ms >= start[lid],
            )
        )
        previous[lid] = _row_before(conn, lid, start[lid], score_name)
    return previous


# A history point costs the lead's events up to it to score, so a lead's points in one replay are at most
# max(FEW_POINTS, POINT_EVENTS / her events): one person's flood of page views (a write key can send any
# number) cost every batch about her its size times her history (batches of 500: the 12th 4.8 CPU-s
# against 0.26 for the first, ``bench/page_view_flood.py``). Below these, every event time is a point.
FEW_POINTS = 4
POINT_EVENTS = 100_000


def thinned(due: Sequence[tuple[int, list[T]]], events_count: int) -> list[tuple[int, list[T]]]:
    """A lead's points (time, what happened then: message ids, events), ascending, with ``events_count``
    events up to the last: all of them within the budget, else as many as it allows, evenly by index,
    each the last of the run of points it stands for, with everything that happened in the run (so the
    newest point is always kept). The history's rows and the lead page's journey."""
    keep = max(FEW_POINTS, POINT_EVENTS // max(events_count, 1))
    if len(due) <= keep:
        return list(due)
    out: list[tuple[int, list[T]]] = []
    begin = 0
    for k in range(1, keep + 1):
        end = k * len(due) // keep
        out.append((due[end - 1][0], [mid for _, mids in due[begin:end] for mid in mids]))
        begin = end
    return out


_EVENT_COUNTS = (
    select(identities.c.lead_id, func.count())
    .join(events, events.c.person_key == identities.c.key)
    .where(in_list(identities.c.lead_id, "ids"), events.c.ts <= bindparam("until", type_=BigInteger))
    .group_by(identities.c.lead_id)
)


_colleagues = leads.alias("colleagues")
# the events of each lead's account (hers included), for a lead in an account
_ACCOUNT_EVENT_COUNTS = (
    select(leads.c.id, func.count())
    .join(_colleagues, _colleagues.c.account_id == leads.c.account_id)
    .join(identities, identities.c.lead_id == _colleagues.c.id)
    .join(events, events.c.person_key == identities.c.key)
    .where(in_list(leads.c.id, "ids"), events.c.ts <= bindparam("until", type_=BigInteger))
    .group_by(leads.c.id)
)


def _event_counts(conn: Connection, lead_ids: Sequence[int], until: int, accounts: bool) -> dict[int, int]:
    """Each lead's events up to ``until``: what one history point of it costs to score (with ``accounts``,
    a rule over her account's events: the account's)."""
    params = {"ids": list(lead_ids), "until": until}
    counts = {int(lid): int(n) for lid, n in conn.execute(_EVENT_COUNTS, params)}
    if accounts:
        for lid, n in conn.execute(_ACCOUNT_EVENT_COUNTS, params):
            counts[int(lid)] = max(int(n), counts.get(int(lid), 0))
    return counts


# the events of leads ``ids`` between ``since`` and ``until``, by message id
_EVENT_TIMES = (
    select(identities.c.lead_id, events.c.ts, events.c.message_id)
    .join(events, events.c.person_key == identities.c.key)
    .where(
        in_list(identities.c.lead_id, "ids"),
        events.c.ts >= bindparam("since", type_=BigInteger),
        events.c.ts <= bindparam("until", type_=BigInteger),
    )
    .order_by(events.c.message_id)
)


def _event_times(rows: Iterable[Sequence[Any]]) -> dict[int, dict[int, list[str]]]:
    """Lead → event time → message ids, from ``_EVENT_TIMES``' rows."""
    out: dict[int, dict[int, list[str]]] = {}
    for lid, ts, mid in rows:
        out.setdefault(int(lid), {}).setdefault(int(ts), []).append(str(mid))
    return out


def _row_before(conn: Connection, lead_id: int, at_ms: int, score_name: str) -> dict[str, Any] | None:
    query = (
        select(score_history)
        .where(
            score_history.c.lead_id == lead_id,
            score_history.c.score_name == score_name,
            score_history.c.at_ms < at_ms,
        )
        .order_by(score_history.c.at_ms.desc(), score_history.c.id.desc())
        .limit(1)
    )
    row = conn.execute(query).mappings().first()
    return dict(row) if row is not None else None


def cause(message_ids: list[str]) -> str:
    """The messages that caused a score, as a row's cause reference: ``m1, m2, m3 and 4 more``, in
    message id order (whatever order they arrived in)."""
    if len(message_ids) == 1:  # the usual point: one message at that time
        return message_ids[0]
    message_ids = sorted(set(message_ids))
    if len(message_ids) <= 3:
        return ", ".join(message_ids)
    return f"{', '.join(message_ids[:3])} and {len(message_ids) - 3} more"
