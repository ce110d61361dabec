"""A lead's newest history row is the score every page shows, where her replay alone cannot leave it so:
a lead scored for a colleague's event alone (a rule over the account's events) gets a row where her score
moved (cause ``account``, the colleague's messages as its reference; her replay had points at her own
event times only, and her history ended at 1 while her score was 11), and so does one whose late event
came before the clock's row (cause ``event``; the clock's 0 stayed her newest row while her score was
1)."""

from __future__ import annotations

import time

from sqlalchemy import select

from leadscore.model import loads_model
from leadscore.scoring.clock import tick
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


# a point a page view of the last two hours
WINDOWED = loads_model("""
model: windowed
engagement:
  - {id: visit, name: Visit, event: {type: page}, points: 1, window: 2h}
""")


def test_a_late_event_before_the_clocks_row_gives_her_a_row_at_her_new_score(store: Store) -> None:
    # ann's page of five hours ago, processed now, has left the window: her score is 0, and a row of cause
    # time at now says so (her newest row said 1, and nothing was due for the clock to write). Then a page
    # of half an hour ago arrives, before that row: her score is 1, and the row of time (0) stayed newest
    now = int(time.time() * 1000)
    publish(store, WINDOWED, as_of=now - 6 * 60 * MINUTE)
    send(
        store, [{"type": "page", "userId": "ann", "messageId": "p1", "timestamp": now - 5 * 60 * MINUTE}], now
    )
    tick(store, now=now)
    send(store, [{"type": "page", "userId": "ann", "messageId": "p2", "timestamp": now - 30 * MINUTE}], now)
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
    # created, p1 (1), the time row (0) at the first batch, and p2's batch's row at its score (1): p2's own
    # point, half an hour ago, equals p1's row (1) and writes nothing
    assert [(c, float(e)) for c, e, _ in rows] == [
        ("created", 0.0), ("event", 1.0), ("time", 0.0), ("event", 1.0)
    ]  # fmt: skip
    assert rows[-1][2] == "p2"
    assert float(current) == 1.0
