"""``getting_warmer`` over more leads with a history row of several messages since then than a statement
can bind parameters (PostgreSQL: 65,535): each of 65,600 leads scored 1.0 eight days ago and 2.0 a day
ago (a row caused by two messages, "a, b": a candidate for a thinned history), with no event in between
(no history was thinned). Every one warmed by 1.0; the top 20 are the first 20 leads by id (ties by id).
Before, the candidates were listed in one ``IN (...)`` of 65,600 parameters: PostgreSQL refused it."""

from __future__ import annotations

from sqlalchemy import func, insert, select

from leadscore.lifecycle.reports import getting_warmer
from leadscore.model import loads_model
from leadscore.scoring.pipeline import publish
from leadscore.store import Store
from leadscore.store.schema import leads, model_versions, score_history, scores

DAY = 86_400_000
NOW = 100 * DAY
LEADS = 65_600


def test_getting_warmer_over_more_candidate_leads_than_a_statement_binds(store: Store) -> None:
    publish(store, loads_model("model: m\nengagement:\n  - {id: v, name: V, event: {type: page}, points: 1}\n", "m.yaml"), as_of=1_000)  # fmt: skip
    with store.begin() as conn:
        version = conn.execute(select(func.max(model_versions.c.id))).scalar()
        ids = range(10, 10 + LEADS)
        conn.execute(
            insert(leads), [{"id": i, "attributes": {}, "created_ms": 0, "updated_ms": 0} for i in ids]
        )
        totals = {"model_version_id": version, "fit_score": 0.0, "grade": "D", "level": 4, "band": "cold"}
        conn.execute(
            insert(scores),
            [{**totals, "lead_id": i, "as_of_ms": NOW - DAY, "score": 2.0, "engagement_score": 4.0,
              "scored_ms": NOW - DAY} for i in ids],
        )  # fmt: skip
        row = {**totals, "cause": "event", "recorded_ms": NOW}
        conn.execute(
            insert(score_history),
            [{**row, "lead_id": i, "at_ms": at, "score": score, "engagement_score": 2 * score, "cause_ref": ref}
             for i in ids for at, score, ref in ((NOW - 8 * DAY, 1.0, "m"), (NOW - DAY, 2.0, "a, b"))],
        )  # fmt: skip
    with store.connect() as conn:
        warmer = getting_warmer(conn, NOW)
    assert [(r["lead_id"], r["score_then"], r["score"], r["increase"]) for r in warmer] == [
        (i, 1.0, 2.0, 1.0) for i in range(10, 30)
    ]
