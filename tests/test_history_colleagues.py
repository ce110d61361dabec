"""A lead scored for a colleague's event alone (a rule over the account's events) gets a history row
where her score moved (cause ``account``, the colleague's messages as its reference), so her newest row
is the score every page shows: before, her replay had points at her own event times only, and her history
ended at 1 while her score was 11."""

from __future__ import annotations

import time

from sqlalchemy import select

from leadscore.model import loads_model
from leadscore.scoring.pipeline import publish
from leadscore.store import Store
from leadscore.store.schema import leads, score_history, scores
from test_history_flood import send

MINUTE = 60_000
# a point a page view; 10 more once the account has read 3 pages in 30 days
MODEL = loads_model("""
model: colleagues
engagement:
  - {id: visit, name: Visit, event: {type: page}, points: 1}
  - {id: team, name: The account reads, kind: threshold, scope: account, event: {type: page}, at_least: 3,
     within: 30d, points: 10}
""")


def test_a_colleagues_pages_give_her_a_row_at_her_new_score(store: Store) -> None:
    now = int(time.time() * 1000)
    t0 = now - 60 * MINUTE  # the scores are as of now: the events within the rule's 30 days
    publish(store, MODEL, as_of=t0 - MINUTE)
    joined = [
        {"type": "group", "userId": who, "groupId": "acme", "messageId": f"g-{who}", "timestamp": t0}
        for who in ("ann", "col")
    ]
    send(
        store,
        [*joined, {"type": "page", "userId": "ann", "messageId": "ann-1", "timestamp": t0 + MINUTE}],
        now,
    )
    # col's two pages make the account's third and fourth: ann 1 + 10, col 2 + 10
    pages = [
        {"type": "page", "userId": "col", "messageId": f"col-{n}", "timestamp": t0 + (1 + n) * MINUTE}
        for n in (1, 2)
    ]
    send(store, pages, now)
    with store.connect() as conn:
        rows = conn.execute(
            select(score_history.c.cause, score_history.c.engagement_score, score_history.c.cause_ref)
            .join(leads, leads.c.id == score_history.c.lead_id)
            .where(leads.c.external_id == "ann")
            .order_by(score_history.c.at_ms, score_history.c.id)
        ).all()
        current = conn.execute(
            select(scores.c.engagement_score)
            .join(leads, leads.c.id == scores.c.lead_id)
            .where(leads.c.external_id == "ann")
        ).scalar_one()
    assert [(c, float(e)) for c, e, _ in rows] == [("created", 0.0), ("event", 1.0), ("account", 11.0)]
    assert rows[-1][2] == "col-1, col-2"
    assert float(current) == 11.0
