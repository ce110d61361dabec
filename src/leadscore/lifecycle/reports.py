"""Reports over stages, scores and feedback: being nurtured, getting warmer, ready for handoff, the
funnel (counts and stage-to-stage conversion per week and per lead source or campaign), time in stage,
sales acceptance and rejection reasons, and accounts.

Definitions (docs/lifecycle.md): a lead *enters* a stage at a stage-history row. The funnel counts, per
week (Monday 00:00 UTC) of entering, the distinct leads that entered each funnel stage. Conversion from
stage A to the next funnel stage B: of the leads that entered A in that week, the share that later
reached B or any stage after B in the funnel.

Each stage report takes an optional ``view`` (``lifecycle.score_stages.ScoreView``): one named score's
team's part of the lifecycle, when gates name scores. It keeps that score's stages and the entries into
them that count for it, and the people listed show that score; without one, every stage and entry
counts and the primary score is shown.
"""

from __future__ import annotations

import itertools
import statistics
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, func, not_, select

from leadscore.compile.dialects import computed_once
from leadscore.compile.sources import lead_company
from leadscore.lifecycle.accounts import accounts_section, named_account_scores, target_domains
from leadscore.lifecycle.decisions import mql_decisions
from leadscore.lifecycle.score_stages import ScoreView
from leadscore.model import Lifecycle
from leadscore.scoring.as_known import score_as_known
from leadscore.scoring.pipeline import active_model
from leadscore.scoring.run import model_of
from leadscore.store import Store
from leadscore.store.id_lists import in_list
from leadscore.store.lifecycle_tables import all_stage_history, current_assignment_id, still_open
from leadscore.store.model_versions import get_version
from leadscore.store.schema import (
    account_stages,
    accounts,
    assignments,
    events,
    feedback,
    identities,
    lead_stages,
    leads,
    score_history,
    scores,
    stage_history,
)
from leadscore.store.score_names import named, primary_score, resolve, scores_of

DAY_MS = 86_400_000
NONE = "(none)"


def week_of(ms: int) -> str:
    day = datetime.fromtimestamp(ms / 1000, tz=UTC).date()
    return (day - timedelta(days=day.weekday())).isoformat()


def _in_view(view: ScoreView | None) -> Any:
    """SQL: the current stage rows counted for ``view`` (every row without one)."""
    return None if view is None or view.whole else view.current(lead_stages.c.lead_id, lead_stages.c.stage)


def _people(
    conn: Connection,
    stages: list[str] | None = None,
    view: ScoreView | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> list[dict[str, Any]]:
    query = people_query(stages, view)
    if limit is not None:
        query = query.limit(limit).offset(offset)
    return [dict(r) for r in conn.execute(query).mappings()]


def hottest_first(
    score: ColumnElement[Any] = scores.c.score, lead_id: ColumnElement[Any] = leads.c.id
) -> tuple[ColumnElement[Any], ...]:
    """The order of ``people_query``'s leads (of its ``score`` and ``lead_id`` columns, read from a query
    over it): the highest score first, a lead without one (none of the view's score) after every scored
    lead, then by lead id. NULLs last said outright: SQLite puts them last going down, PostgreSQL first."""
    return (score.desc().nulls_last(), lead_id)


def people_query(
    stages: list[str] | None = None, view: ScoreView | None = None, assigned: bool = False
) -> Select[Any]:
    """SQL: the leads in ``stages`` (every stage: None) that count for ``view``, each with its name,
    company, stage and score (``view.score``'s; the primary without a view), hottest first. ``assigned``:
    with the lead's assignment too (``current_assignment_id``: ``team``, ``seller``, ``due_ms``,
    ``assigned_ms``, ``handled_ms``; None where it has none; ``due_ms`` None unless a seller still has to
    act on it, ``handled_ms`` None until a decision or an SQL outcome handled it)."""
    joined = (
        lead_stages.join(leads, leads.c.id == lead_stages.c.lead_id)
        .outerjoin(accounts, accounts.c.id == leads.c.account_id)
        .outerjoin(scores, scores_of(leads.c.id, None if view is None else view.score))
    )
    columns: list[Any] = [
        leads.c.id.label("lead_id"),
        leads.c.email,
        leads.c.first_name,
        leads.c.last_name,
        lead_company(leads, accounts).label("company"),
        lead_stages.c.stage,
        lead_stages.c.entered_ms,
        scores.c.score,
        scores.c.grade,
        scores.c.band,
    ]
    if assigned:
        current = assignments.alias("current_assignment")
        joined = joined.outerjoin(current, current.c.id == current_assignment_id(lead_stages.c.lead_id))
        # the SLA clock runs while a seller still has to act (``still_open``), as the escalation reads it:
        # an assignment handled, or of an earlier stay, is late for no one
        open_due = select(assignments.c.due_ms).where(assignments.c.id == current.c.id, *still_open())
        columns += [
            current.c.team,
            current.c.seller,
            open_due.scalar_subquery().label("due_ms"),
            current.c.at_ms.label("assigned_ms"),
            current.c.touched_ms.label("handled_ms"),
        ]
    query = select(*columns).select_from(joined).order_by(*hottest_first())
    if stages is not None:
        query = query.where(lead_stages.c.stage.in_(stages if view is None else view.order(stages)))
    counted = _in_view(view)
    if counted is not None:
        query = query.where(counted)
    return query


def nurtured(conn: Connection, lifecycle: Lifecycle, view: ScoreView | None = None) -> list[dict[str, Any]]:
    """Leads in the nurture stages, hottest first."""
    return _people(conn, list(lifecycle.nurture), view)


def nurtured_page(
    conn: Connection, lifecycle: Lifecycle, view: ScoreView | None, limit: int, offset: int = 0
) -> tuple[list[dict[str, Any]], int]:
    """Rows ``offset`` to ``offset + limit`` of ``nurtured`` (read as such from the store) and how many
    it has in all: the page the API reports."""
    stages = list(lifecycle.nurture)
    return _people(conn, stages, view, limit, offset), count_in_stages(conn, stages, view)


def count_in_stages(conn: Connection, stages: list[str], view: ScoreView | None = None) -> int:
    """How many leads ``_people`` lists for ``stages`` (``len(nurtured(...))`` without reading them)."""
    # every stage row has its lead (a foreign key), so the join of ``_people`` adds nothing to the count
    shown = stages if view is None else view.order(stages)
    query = select(func.count()).select_from(lead_stages).where(lead_stages.c.stage.in_(shown))
    counted = _in_view(view)
    if counted is not None:
        query = query.where(counted)
    return int(conn.execute(query).scalar_one())


def handoff_stages(lifecycle: Lifecycle, view: ScoreView | None = None) -> list[str]:
    """The stages whose leads are ready for handoff (the assignment stages) that are the view's: a score
    picked sees its own assignment stage (its team's MQL stage) and the shared ones, not another score's."""
    if lifecycle.assignment is None:
        return []
    stages = list(lifecycle.assignment.stage_ids)
    return stages if view is None else view.order(stages)


def count_ready(conn: Connection, lifecycle: Lifecycle, view: ScoreView | None = None) -> int:
    """How many leads ``ready_for_handoff`` lists."""
    stages = handoff_stages(lifecycle, view)
    return 0 if not stages else count_in_stages(conn, stages, view)


def ready_for_handoff(
    conn: Connection,
    lifecycle: Lifecycle,
    view: ScoreView | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Leads in the handoff (assignment) stages, with their seller, when assigned and SLA deadline; rows
    ``offset`` to ``offset + limit`` of them (every row: ``limit`` None), read from SQL as such."""
    query = handoff_query(lifecycle, view)
    if query is None:
        return []
    if limit is not None:
        query = query.limit(limit).offset(offset)
    return [dict(r) for r in conn.execute(query).mappings()]


def handoff_page(
    conn: Connection, lifecycle: Lifecycle, view: ScoreView | None, limit: int, offset: int = 0
) -> tuple[list[dict[str, Any]], int]:
    """Rows ``offset`` to ``offset + limit`` of ``ready_for_handoff`` (read as such from the store, however
    long the queue) and how many it has in all: the page the API and the CLI report."""
    return ready_for_handoff(conn, lifecycle, view, limit, offset), count_ready(conn, lifecycle, view)


def handoff_query(lifecycle: Lifecycle, view: ScoreView | None = None) -> Select[Any] | None:
    """SQL: ``ready_for_handoff``'s rows, in its order (the desk filters, orders and pages it); None
    without handoff stages."""
    stages = handoff_stages(lifecycle, view)
    return people_query(stages, view, assigned=True) if stages else None


def getting_warmer(
    conn: Connection, now_ms: int, days: int = 7, top: int = 20, score_name: str | None = None
) -> list[dict[str, Any]]:
    """Largest score increase over the last ``days``: current score minus the score ``days`` ago (the
    newest history row at or before then; 0 for a lead with no history then; for a lead whose history
    was thinned across then, the score then scored: ``_scored_then``), of the score ``score_name`` (the
    primary when None)."""
    since = now_ms - days * DAY_MS
    thinned = _thinned_across(conn, since, score_name)
    # one index probe per lead and score (ix_history_lead_at), not a read of the whole history
    then = (
        select(score_history.c.score)
        .where(
            score_history.c.lead_id == scores.c.lead_id,
            score_history.c.score_name == scores.c.score_name,
            score_history.c.at_ms <= since,
        )
        .order_by(score_history.c.at_ms.desc(), score_history.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    score_then = func.coalesce(then, 0.0).label("score_then")
    # each lead's score then probed once (computed once, not once per reference to it), in the scores
    # table's own order (about the leads' order: the name compared as an expression and a column no index
    # holds keep SQLite off the score indexes), so the probes walk the history index in its order; in a
    # score index's order they would jump about it (several times slower at 100k leads)
    #
    # Only the leads with a history row after ``since`` are probed. Why no other lead can have warmed:
    # every write of a current score goes with a history row wherever the score moved
    # (``scoring/history.py``: a "created" row for each new lead, then an "event", "time" or "model" row
    # when a score changes; ``scoring/pipeline.rescore_now``), so a lead's newest history row holds its
    # current score. A lead without a row after ``since`` has as its newest row the one at or before
    # ``since``: the score then *is* the current score, its increase is 0 and it is not listed (a lead
    # with no row at all has never been scored: it has no current score either). The leads that moved
    # come from ``ix_history_name_at`` (a range of one score's history by time).
    moved = (
        select(score_history.c.lead_id)
        .where(named(score_history.c.score_name, score_name), score_history.c.at_ms > since)
        .distinct()
    )
    warmth = computed_once(
        select(scores.c.lead_id, scores.c.score, scores.c.scored_ms, score_then)
        .where(
            named(scores.c.score_name.concat(""), score_name),
            scores.c.lead_id.in_(moved),
            *([not_(in_list(scores.c.lead_id, "thinned"))] if thinned else []),
        )
        .cte("warmth")
    )
    gain = (warmth.c.score - warmth.c.score_then).label("increase")
    best = (
        select(warmth.c.lead_id, warmth.c.score, warmth.c.score_then, gain)
        .where(warmth.c.score - warmth.c.score_then > 0)
        .order_by(gain.desc(), warmth.c.lead_id)
        .limit(top)
        .subquery()
    )
    # the names of the top rows only (every score has its lead: this is the join of scores and leads)
    query = (
        select(
            best.c.lead_id,
            best.c.score,
            leads.c.email,
            leads.c.first_name,
            leads.c.last_name,
            best.c.score_then,
            best.c.increase,
        )
        .select_from(best.join(leads, leads.c.id == best.c.lead_id))
        .order_by(best.c.increase.desc(), best.c.lead_id)
    )
    rows = [
        {
            **dict(r),
            "score": float(r["score"]),
            "score_then": float(r["score_then"]),
            "increase": float(r["increase"]),
        }
        for r in conn.execute(query, {"thinned": thinned} if thinned else {}).mappings()
    ]
    if not thinned:
        return rows
    rows.extend(_warmth_of(conn, thinned, since, score_name))
    return sorted(rows, key=lambda r: (-r["increase"], r["lead_id"]))[:top]


def _thinned_across(conn: Connection, since: int, score_name: str | None) -> list[int]:
    """The leads whose history may have been thinned across ``since`` (``scoring.history.thinned``): a
    thinned row stands for a run of event times, the last its time, with the run's several messages as
    its cause (``history.cause``); where a run began at or before ``since`` and ended after it, the lead's
    newest row at or before ``since`` is not her score then (the run's moves are not in history). So: a
    lead with a row of several messages after ``since`` and events after her newest row at or before
    ``since`` up to then (several messages at one time, or events that moved no score, are counted in
    too: their score then is scored, no more)."""
    several = (
        select(score_history.c.lead_id)
        .where(
            named(score_history.c.score_name, score_name),
            score_history.c.at_ms > since,
            score_history.c.cause == "event",
            score_history.c.cause_ref.like("%, %"),
        )
        .distinct()
    )
    row_then = (
        select(score_history.c.at_ms)
        .where(
            score_history.c.lead_id == leads.c.id,
            named(score_history.c.score_name, score_name),
            score_history.c.at_ms <= since,
        )
        .order_by(score_history.c.at_ms.desc(), score_history.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    between = (
        select(events.c.id)
        .join(identities, identities.c.key == events.c.person_key)
        .where(identities.c.lead_id == leads.c.id, events.c.ts > row_then, events.c.ts <= since)
        .exists()
    )
    # the candidates read in the statement, not bound: a busy week has more than a statement can bind
    query = select(leads.c.id).where(leads.c.id.in_(several), row_then.is_not(None), between)
    return sorted(int(lead) for lead in conn.execute(query).scalars())


def _warmth_of(
    conn: Connection, lead_ids: list[int], since: int, score_name: str | None
) -> list[dict[str, Any]]:
    """``getting_warmer``'s rows of ``lead_ids`` whose score rose, the score then scored (``_scored_then``)."""
    then = _scored_then(conn, lead_ids, since, resolve(conn, score_name))
    query = (
        select(scores.c.lead_id, scores.c.score, leads.c.email, leads.c.first_name, leads.c.last_name)
        .join(leads, leads.c.id == scores.c.lead_id)
        .where(named(scores.c.score_name, score_name), in_list(scores.c.lead_id, "ids"))
    )
    out = []
    for r in conn.execute(query, {"ids": lead_ids}).mappings():
        score_then = then.get(int(r["lead_id"]), 0.0)
        if float(r["score"]) - score_then > 0:
            out.append({**dict(r), "score": float(r["score"]), "score_then": score_then,
                        "increase": float(r["score"]) - score_then})  # fmt: skip
    return out


def _scored_then(conn: Connection, lead_ids: list[int], since: int, score_name: str) -> dict[int, float]:
    """Each lead's score as of ``since`` as history scores a row (``scoring.as_known``), by the model version
    of her newest history row at or before then (the version that scored her then); a lead with no row
    then is left out (she had no score then: 0)."""
    version_then = (
        select(score_history.c.model_version_id)
        .where(
            score_history.c.lead_id == leads.c.id,
            score_history.c.score_name == score_name,
            score_history.c.at_ms <= since,
        )
        .order_by(score_history.c.at_ms.desc(), score_history.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    versions: dict[int, list[int]] = defaultdict(list)
    query = select(leads.c.id, version_then).where(in_list(leads.c.id, "ids"))
    for lead_id, version in conn.execute(query, {"ids": lead_ids}):
        if version is not None:
            versions[int(version)].append(int(lead_id))
    out: dict[int, float] = {}
    for version_id, ids in versions.items():
        version = get_version(conn, version_id)
        model = model_of(version.yaml, version.label)
        scored = score_as_known(conn, model, Store.sources(), [(lead_id, since) for lead_id in ids])
        out.update({lead_id: ledger.score for (lead_id, _), ledger in scored.items()})
    return out


def lead_groups(conn: Connection, by: str | None) -> dict[int, str]:
    """Each lead's value of the attribute ``by`` (``(none)`` when it has none): the funnel's groups."""
    if by is None:
        return {}
    out = {}
    for lead_id, attrs in conn.execute(select(leads.c.id, leads.c.attributes)).all():
        value = (attrs or {}).get(by)
        out[int(lead_id)] = NONE if value in (None, "") else str(value)
    return out


def funnel(
    conn: Connection,
    lifecycle: Lifecycle,
    by: str | None = None,
    groups: dict[int, str] | None = None,
    view: ScoreView | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Funnel counts and stage-to-stage conversion per week of entering (and per value of the lead
    attribute ``by``, e.g. ``lead_source`` or ``utm_campaign``); ``stages``: the same all time, each lead
    counted once per stage: how many entered each funnel stage and the share of them that later reached
    the next one (or a stage beyond it). ``groups``: ``lead_groups(conn, by)`` when the caller has it.
    ``view``: one score's stages and the entries that count for it (the others are left out)."""
    order = list(lifecycle.funnel_stages())
    if view is not None:
        order = view.order(order)
    rank = {s: i for i, s in enumerate(order)}
    if groups is None:
        groups = lead_groups(conn, by)
    entries: dict[int, list[tuple[str, int]]] = defaultdict(list)
    for h in all_stage_history(conn):
        entries[int(h["lead_id"])].append((str(h["to_stage"]), int(h["at_ms"])))
    if view is not None and not view.whole:
        for lead_id, moves in entries.items():
            kept = view.counted([stage for stage, _ in moves])
            entries[lead_id] = [move for move, keep in zip(moves, kept, strict=True) if keep]
    counts: dict[tuple[str, str, str], set[int]] = defaultdict(set)
    cohorts: dict[tuple[str, str, str], set[int]] = defaultdict(set)
    converted: dict[tuple[str, str, str], set[int]] = defaultdict(set)
    ever: dict[tuple[str, str], set[int]] = defaultdict(set)  # (group, stage) → leads that entered it
    ever_converted: dict[tuple[str, str], set[int]] = defaultdict(set)
    for lead_id, moves in entries.items():
        group = groups.get(lead_id, NONE) if by else "all"
        for i, (stage, at) in enumerate(moves):
            if stage not in rank:
                continue
            week = week_of(at)
            counts[(week, group, stage)].add(lead_id)
            ever[(group, stage)].add(lead_id)
            nxt = rank[stage] + 1
            if nxt >= len(order):
                continue
            cohorts[(week, group, stage)].add(lead_id)
            if any(s in rank and rank[s] >= nxt and t >= at for s, t in moves[i + 1 :]):
                converted[(week, group, stage)].add(lead_id)
                ever_converted[(group, stage)].add(lead_id)
    count_rows = [
        {"week": w, "group": g, "stage": s, "entered": len(ids)}
        for (w, g, s), ids in sorted(counts.items(), key=lambda kv: (kv[0][0], kv[0][1], rank[kv[0][2]]))
    ]
    conversion_rows = []
    for (w, g, s), ids in sorted(cohorts.items(), key=lambda kv: (kv[0][0], kv[0][1], rank[kv[0][2]])):
        done = len(converted[(w, g, s)])
        conversion_rows.append(
            {
                "week": w,
                "group": g,
                "from": s,
                "to": order[rank[s] + 1],
                "entered": len(ids),
                "converted": done,
                "rate": done / len(ids),
            }
        )
    stage_rows = []
    for g in sorted({g for g, _ in ever}):
        for i, s in enumerate(order):
            entered, done = len(ever[(g, s)]), len(ever_converted[(g, s)])
            last = i + 1 >= len(order)
            stage_rows.append(
                {
                    "group": g,
                    "stage": s,
                    "entered": entered,
                    "to": None if last else order[i + 1],
                    "converted": None if last else done,
                    "rate": None if last or not entered else done / entered,
                }
            )
    return {"counts": count_rows, "conversion": conversion_rows, "stages": stage_rows}


def time_in_stage(
    conn: Connection, lifecycle: Lifecycle, now_ms: int, view: ScoreView | None = None
) -> list[dict[str, Any]]:
    """Per stage: completed stays (count, mean and median hours) and leads in it now (their mean hours so far)."""
    return stays_as_of(stays(conn, lifecycle, view), now_ms)


def stays(conn: Connection, lifecycle: Lifecycle, view: ScoreView | None = None) -> list[dict[str, Any]]:
    """``time_in_stage`` without the clock: the open stays as the mean time they began (``current_since_ms``),
    so the result depends on the stage history alone (``stays_as_of`` adds the hours so far). ``view``:
    one score's stages, each stay counted when its entry counts for that score."""
    done: dict[str, list[float]] = defaultdict(list)
    open_: dict[str, list[int]] = defaultdict(list)
    by_lead: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for h in all_stage_history(conn):
        by_lead[int(h["lead_id"])].append(h)
    for moves in by_lead.values():
        stages = [m["to_stage"] for m in moves]
        counts = [True] * len(moves) if view is None or view.whole else view.counted(stages)
        for (cur, nxt), count in zip(itertools.pairwise(moves), counts, strict=False):
            if count:
                done[cur["to_stage"]].append((nxt["at_ms"] - cur["at_ms"]) / 3_600_000)
        last = moves[-1]
        if counts[-1]:
            open_[last["to_stage"]].append(int(last["at_ms"]))
    out = []
    for stage in lifecycle.stages:
        if view is not None and stage.id in view.others:
            continue
        finished, current = done.get(stage.id, []), open_.get(stage.id, [])
        out.append(
            {
                "stage": stage.id,
                "completed": len(finished),
                "mean_hours": statistics.fmean(finished) if finished else None,
                "median_hours": statistics.median(finished) if finished else None,
                "current": len(current),
                "current_since_ms": statistics.fmean(current) if current else None,
            }
        )
    return out


def stays_as_of(rows: list[dict[str, Any]], now_ms: int) -> list[dict[str, Any]]:
    """``stays`` with the mean hours so far of the open stays at ``now_ms``."""
    out = []
    for r in rows:
        since = r["current_since_ms"]
        row = {k: v for k, v in r.items() if k != "current_since_ms"}
        row["current_mean_hours"] = None if since is None else (now_ms - since) / 3_600_000
        out.append(row)
    return out


def acceptance(conn: Connection, view: ScoreView | None = None) -> dict[str, Any]:
    """Sales acceptance rate (accepted / decided) of the decisions on MQLs (``decisions.mql_decisions``) and
    rejection reasons, most frequent first. ``view``: the decisions that are that score's
    (``ScoreView.decided``: on the leads its gates handed to sales); without one, every decision."""
    rows = mql_decisions(conn)
    if view is not None and not view.whole and rows:
        entries = _entries_of_decided(conn)
        rows = [r for r in rows
                if view.decided(entries.get(int(r["lead_id"]), []), str(r["stage_from"]), int(r["at_ms"]))]  # fmt: skip
    accepted = sum(1 for r in rows if r["decision"] == "accepted")
    rejected = sum(1 for r in rows if r["decision"] == "rejected")
    reasons = Counter(str(r["reason"]) for r in rows if r["decision"] == "rejected")
    return {
        "accepted": accepted,
        "rejected": rejected,
        "acceptance_rate": accepted / (accepted + rejected) if accepted + rejected else None,
        "reasons": [
            {"reason": k, "count": n} for k, n in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))
        ],
    }


def _entries_of_decided(conn: Connection) -> dict[int, list[tuple[str, int]]]:
    """The stage entries (stage, time), oldest first, of each lead sales gave feedback on (read in one
    statement, the leads named by a subquery rather than bound)."""
    query = (
        select(stage_history.c.lead_id, stage_history.c.to_stage, stage_history.c.at_ms)
        .where(stage_history.c.lead_id.in_(select(feedback.c.lead_id)))
        .order_by(stage_history.c.lead_id, stage_history.c.at_ms, stage_history.c.id)
    )
    out: dict[int, list[tuple[str, int]]] = defaultdict(list)
    for lead_id, stage, at in conn.execute(query):
        out[int(lead_id)].append((str(stage), int(at)))
    return out


def account_report(conn: Connection, score: str | None = None, now_ms: int = 0) -> list[dict[str, Any]]:
    """Accounts by score: stage (pqa/mqa/none), fit, committee engagement, engaged contacts, target flag,
    on the named score (the primary when None; a name never published is NotFoundError): every row of
    ``account_page``."""
    return account_page(conn, score, now_ms)[0]


def account_page(
    conn: Connection, score: str | None = None, now_ms: int = 0, limit: int | None = None, offset: int = 0
) -> tuple[list[dict[str, Any]], int]:
    """Rows ``offset`` to ``offset + limit`` (every row: ``limit`` None) of the accounts by score, then
    id, and how many there are: the primary's as the lifecycle stored them (read as a page from SQL),
    another score's computed as of ``now_ms`` by the same function (``accounts.named_account_scores``)
    for every account with a contact (the page's accounts' names read alone)."""
    name = resolve(conn, score)
    end = None if limit is None else offset + limit
    if name == primary_score(conn):
        query = (
            select(account_stages, accounts.c.domain, accounts.c.name)
            .join(accounts, accounts.c.id == account_stages.c.account_id)
            .order_by(account_stages.c.score.desc(), account_stages.c.account_id)
        )
        if limit is not None:
            query = query.limit(limit).offset(offset)
        rows = [{**dict(r), "score_name": name} for r in conn.execute(query).mappings()]
        total = conn.execute(select(func.count()).select_from(account_stages)).scalar_one()
        return rows, int(total)
    cfg = accounts_section(conn)
    ids = list(
        conn.execute(select(leads.c.account_id).where(leads.c.account_id.is_not(None)).distinct()).scalars()
    )
    found = named_account_scores(conn, name, ids, now_ms)
    if cfg is None or not found:
        return [], 0
    primary = active_model(conn)
    targets = target_domains(primary.model if primary is not None else None)
    shown = sorted(found.items(), key=lambda item: (-item[1].score, item[0]))[offset:end]
    about = {
        int(r.id): (r.domain, r.name)
        for r in conn.execute(
            select(accounts.c.id, accounts.c.domain, accounts.c.name).where(
                accounts.c.id.in_(sorted(a for a, _ in shown))
            )
        )
    }
    rows = [
        {"account_id": a, "stage": s.stage(cfg), "score": s.score, "fit_score": s.fit_score,
         "engagement_score": s.engagement_score, "engaged_contacts": s.engaged_contacts,
         "target": (about[a][0] or "").lower() in targets, "updated_ms": now_ms, "domain": about[a][0],
         "name": about[a][1], "score_name": name}
        for a, s in shown
    ]  # fmt: skip
    return rows, len(found)
