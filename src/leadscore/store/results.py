"""Scoring results: current scores, the per-rule ledger, and the append-only score history, per lead and
named score (store/score_names.py)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BindParameter, Connection, Text, bindparam, delete, select, text

from leadscore.compile import Ledger
from leadscore.store.bulk import insert_rows
from leadscore.store.id_lists import in_list
from leadscore.store.schema import leads, ledger, score_events, score_history, scores
from leadscore.store.score_names import named

CHUNK = 500

# Built once, executed with the lead ids bound as one list (store/id_lists.py): the real-time processor
# runs these for every batch, and building an IN (...) statement costs more than running it.
_SCORE: BindParameter[str] = bindparam("score_name")
# the rows replaced come back (RETURNING): the states crossings compare with, read in the same statement
_DELETE_SCORES = (
    delete(scores)
    .where(in_list(scores.c.lead_id, "ids"), scores.c.score_name == _SCORE)
    .returning(scores.c.lead_id, scores.c.band, scores.c.grade, scores.c.level, scores.c.score)
)
_DELETE_LEDGER = delete(ledger).where(in_list(ledger.c.lead_id, "ids"), ledger.c.score_name == _SCORE)
_NAMES = in_list(scores.c.score_name, "names", Text)
_DELETE_NAMED_SCORES = (
    delete(scores)
    .where(in_list(scores.c.lead_id, "ids"), _NAMES)
    .returning(
        scores.c.lead_id, scores.c.score_name, scores.c.band, scores.c.grade, scores.c.level, scores.c.score
    )
)
_DELETE_NAMED_LEDGER = delete(ledger).where(
    in_list(ledger.c.lead_id, "ids"), in_list(ledger.c.score_name, "names", Text)
)
_NEWEST_ID = (
    select(score_history.c.id)
    .where(score_history.c.lead_id == leads.c.id, score_history.c.score_name == _SCORE)
    .order_by(score_history.c.at_ms.desc(), score_history.c.id.desc())
    .limit(1)
    .correlate(leads)
    .scalar_subquery()
)
_NEWEST_HISTORY = select(_NEWEST_ID).select_from(leads).where(in_list(leads.c.id, "ids"))
# transaction-scoped advisory locks, one per lead id, taken in id order: held in memory only, where
# ``FOR UPDATE`` marks every lead's row (a page write and a WAL record each) on every batch
_LOCK_LEADS = text(
    "SELECT count(pg_advisory_xact_lock(id)) "
    "FROM (SELECT unnest(CAST(:ids AS BIGINT[])) AS id ORDER BY 1) AS locked"
)
_LAST_HISTORY = select(score_history).where(score_history.c.id.in_(_NEWEST_HISTORY))


def score_values(r: Ledger, version_id: int, scored_ms: int) -> dict[str, Any]:
    """A ledger's score columns as a scores (or shadow_scores) row holds them (a scores row adds its
    ``score_name``)."""
    return {
        "lead_id": r.lead_id,
        "model_version_id": version_id,
        "as_of_ms": r.as_of,
        "score": r.score,
        "fit_score": r.fit_score,
        "engagement_score": r.engagement_score,
        "grade": r.grade,
        "level": r.level,
        "band": r.band,
        "scored_ms": scored_ms,
    }


@dataclass(frozen=True)
class NamedResults:
    """One score's new current results: the ledgers of ``score_name`` by version ``version_id`` and
    ``due``: lead → when time alone may next change that score (scoring/due.py; a lead left out is never
    due)."""

    score_name: str
    version_id: int
    results: Sequence[Ledger]
    due: Mapping[int, int | None] | None = None


def save_current(
    conn: Connection,
    results: Sequence[Ledger],
    version_id: int,
    scored_ms: int,
    due: Mapping[int, int | None] | None = None,
    *,
    score_name: str,
) -> dict[int, dict[str, Any]]:
    """Replace the current score ``score_name`` and its ledger of every lead in ``results``; ``due``: lead
    → when time alone may next change that score (scoring/due.py; a lead left out is never due). Returns
    the replaced scores' band, grade, level and score by lead (a lead scored for the first time: none)."""
    replaced = save_current_scores(conn, [NamedResults(score_name, version_id, results, due)], scored_ms)
    return {lead_id: state for (lead_id, _), state in replaced.items()}


def save_current_scores(
    conn: Connection, parts: Sequence[NamedResults], scored_ms: int
) -> dict[tuple[int, str], dict[str, Any]]:
    """``save_current`` for several scores of the same leads, one statement each for all of them: the
    delete of the old scores (returning their band, grade, level and score: the states crossings compare
    with) and ledgers, the insert of the new ones. Returns the replaced states by (lead, score name)."""
    replaced: dict[tuple[int, str], dict[str, Any]] = {}
    if not parts:
        return replaced
    by_lead = [{r.lead_id: r for r in part.results} for part in parts]
    order = [r.lead_id for r in parts[0].results]
    if any(found.keys() != by_lead[0].keys() for found in by_lead[1:]):
        raise ValueError("save_current_scores: the scores' results name different leads")
    names = [part.score_name for part in parts]
    one = len(parts) == 1  # ``score_name = ?``: the statements of one score, as before several existed
    drop_scores, drop_ledger = (
        (_DELETE_SCORES, _DELETE_LEDGER) if one else (_DELETE_NAMED_SCORES, _DELETE_NAMED_LEDGER)
    )
    for start in range(0, len(order), CHUNK):
        ids = order[start : start + CHUNK]
        params: dict[str, Any] = {"ids": ids, "score_name": names[0]} if one else {"ids": ids, "names": names}
        for row in conn.execute(drop_scores, params).mappings():
            state = dict(row)
            replaced[(state["lead_id"], state.get("score_name", names[0]))] = state
        conn.execute(drop_ledger, params)
        insert_rows(
            conn,
            scores,
            [
                {
                    **score_values(r, part.version_id, scored_ms),
                    "score_name": part.score_name,
                    "due_ms": None if part.due is None else part.due.get(r.lead_id),
                }
                for part, found in zip(parts, by_lead, strict=True)
                for r in (found[lid] for lid in ids)
            ],
        )
        lines = [
            {
                "lead_id": r.lead_id,
                "score_name": part.score_name,
                "rule_id": line.rule_id,
                "section": line.section,
                "kind": line.kind,
                "rule_group": line.group,
                "matched": line.matched,
                "raw": line.raw,
                "value": line.value,
                "decay": line.decay,
                "score_points": line.score_points,
                "note": line.note,
            }
            for part, found in zip(parts, by_lead, strict=True)
            for r in (found[lid] for lid in ids)
            for line in r.lines
        ]
        insert_rows(conn, ledger, lines)
    return replaced


def last_history(conn: Connection, lead_ids: Iterable[int], *, score_name: str) -> dict[int, dict[str, Any]]:
    """The most recent history row of each lead's score ``score_name`` (by effective time, then insertion)."""
    ids = list(lead_ids)
    out: dict[int, dict[str, Any]] = {}
    for start in range(0, len(ids), CHUNK):
        params = {"ids": ids[start : start + CHUNK], "score_name": score_name}
        rows = conn.execute(_LAST_HISTORY, params).mappings()
        out.update({r["lead_id"]: dict(r) for r in rows})
    return out


def append_history(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    insert_rows(conn, score_history, rows)


def read_history(conn: Connection, lead_id: int, score_name: str | None = None) -> list[dict[str, Any]]:
    """A lead's history of one score (the primary when None)."""
    query = (
        select(score_history)
        .where(score_history.c.lead_id == lead_id, named(score_history.c.score_name, score_name))
        .order_by(score_history.c.at_ms, score_history.c.id)
    )
    return [dict(r) for r in conn.execute(query).mappings()]


def read_current(
    conn: Connection, lead_id: int, score_name: str | None = None
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """A lead's current score and ledger of one score (the primary when None)."""
    score = (
        conn.execute(
            select(scores).where(scores.c.lead_id == lead_id, named(scores.c.score_name, score_name))
        )
        .mappings()
        .first()
    )
    lines = conn.execute(
        select(ledger).where(ledger.c.lead_id == lead_id, named(ledger.c.score_name, score_name))
    ).mappings()
    return (dict(score) if score else None), [dict(r) for r in lines]


CROSSING_KEY = ("lead_id", "model_version_id", "kind", "at_ms", "to_value")


def record_crossings(conn: Connection, rows: Sequence[dict[str, Any]]) -> int:
    """Record threshold crossings; one already recorded (same lead, version, kind, time, value) is skipped."""
    return insert_rows(conn, score_events, rows, ignore=CROSSING_KEY)


def read_crossings(
    conn: Connection, lead_id: int | None = None, score_name: str | None = None
) -> list[dict[str, Any]]:
    """Recorded crossings (of one lead when given) of one score (the primary when None)."""
    query = (
        select(score_events).where(named(score_events.c.score_name, score_name)).order_by(score_events.c.id)
    )
    if lead_id is not None:
        query = query.where(score_events.c.lead_id == lead_id)
    return [dict(r) for r in conn.execute(query).mappings()]


def lock_leads(conn: Connection, lead_ids: Sequence[int]) -> None:
    """Serialise concurrent rescoring of the same leads until the transaction ends (PostgreSQL: an
    advisory lock per lead id, in id order, so two rescorers wait for each other and never deadlock;
    SQLite writers are serial). Every rescore goes through here (``scoring/pipeline.py``)."""
    if conn.dialect.name == "postgresql" and lead_ids:
        conn.execute(_LOCK_LEADS, {"ids": sorted(lead_ids)})
