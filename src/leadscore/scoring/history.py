"""Score history: a row whenever a lead's score, grade, level or band changes, with its cause.

Each row is the compiled model evaluated at the row's time, so history is replayable: the row for a
batch of events holds the score as of the newest of those events (the lead's first row is the score
before any of its activity).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, func, select

from leadscore.compile import Ledger, Sources
from leadscore.model import ScoringModel
from leadscore.scoring.run import score_points
from leadscore.store.id_lists import in_list
from leadscore.store.results import append_history, last_history
from leadscore.store.schema import events, identities, leads

TRACKED = ("score", "fit_score", "engagement_score", "grade", "level", "band")
EPS = 1e-9


def _row(ledger: Ledger, version_id: int, cause: str, ref: str, recorded_ms: int) -> dict[str, Any]:
    return {
        "lead_id": ledger.lead_id,
        "model_version_id": version_id,
        "at_ms": ledger.as_of,
        "score": ledger.score,
        "fit_score": ledger.fit_score,
        "engagement_score": ledger.engagement_score,
        "grade": ledger.grade,
        "level": ledger.level,
        "band": ledger.band,
        "cause": cause,
        "cause_ref": ref,
        "recorded_ms": recorded_ms,
    }


def changed(prev: Mapping[str, Any] | None, ledger: Ledger, version_id: int) -> bool:
    if prev is None or prev["model_version_id"] != version_id:
        return True
    now = {
        "score": ledger.score,
        "fit_score": ledger.fit_score,
        "engagement_score": ledger.engagement_score,
        "grade": ledger.grade,
        "level": ledger.level,
        "band": ledger.band,
    }
    return any(
        abs(prev[k] - now[k]) > EPS if isinstance(now[k], float) else prev[k] != now[k] for k in TRACKED
    )


_FIRST_EVENT = (
    select(identities.c.lead_id, func.min(events.c.ts))
    .join(events, events.c.person_key == identities.c.key)
    .where(in_list(identities.c.lead_id, "ids"))
    .group_by(identities.c.lead_id)
)
_CREATED = select(leads.c.id, leads.c.created_ms).where(in_list(leads.c.id, "ids"))


def baselines(conn: Connection, lead_ids: Sequence[int]) -> dict[int, int]:
    """For each lead: a moment before any of its activity (and no later than its creation)."""
    ids = list(lead_ids)
    first = dict(conn.execute(_FIRST_EVENT, {"ids": ids}).all())
    created = dict(conn.execute(_CREATED, {"ids": ids}).all())
    return {lid: min(created[lid], first[lid] - 1) if lid in first else created[lid] for lid in lead_ids}


def record(
    conn: Connection,
    model: ScoringModel,
    sources: Sources,
    version_id: int,
    changes: Mapping[int, tuple[int, str, str]],
    recorded_ms: int,
) -> int:
    """Append history rows for ``changes`` (lead → (time, cause, cause ref)) where the score moved."""
    lead_ids = list(changes)
    previous = last_history(conn, lead_ids)
    fresh = [lid for lid in lead_ids if lid not in previous]
    pairs: list[tuple[int, int]] = []
    base = baselines(conn, fresh) if fresh else {}
    pairs.extend((lid, base[lid]) for lid in fresh)
    pairs.extend((lid, changes[lid][0]) for lid in lead_ids)
    by_point = {(lg.lead_id, lg.as_of): lg for lg in score_points(conn, model, sources, pairs)}
    rows: list[dict[str, Any]] = []
    for lid in lead_ids:
        prev = previous.get(lid)
        if lid in base:
            start = by_point[(lid, base[lid])]
            rows.append(_row(start, version_id, "created", "before any activity", recorded_ms))
            prev = rows[-1]
        at, cause, ref = changes[lid]
        ledger = by_point[(lid, at)]
        if changed(prev, ledger, version_id):
            rows.append(_row(ledger, version_id, cause, ref, recorded_ms))
    append_history(conn, rows)
    return len(rows)
