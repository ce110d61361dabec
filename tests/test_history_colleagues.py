"""A lead's newest history row is the score every page shows, where her replay alone cannot leave it so
(``pipeline._rows_after_replay``): a lead scored for a colleague's event alone (a rule over the account's
events) gets a row where her score moved (cause ``account``: her replay had points at her own event times
only, and her history ended at 1 while her score was 11); one whose late event came before a row of
another cause (a publication's) gets a row of the batch; one whose event had left its window before it was
processed gets a row now (her history said 1, her score 0, and nothing was due for the clock)."""

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
    assert _ann(store) == (
        [("created", 0.0, "before any activity"), ("event", 1.0, "ann-1"), ("account", 11.0, "col-1, col-2")],
        11.0,
    )


# a point a page view of the last two hours
WINDOWED_TEXT = """
model: windowed
engagement:
  - {id: visit, name: Visit, event: {type: page}, points: 1, window: 2h}
"""
WINDOWED = loads_model(WINDOWED_TEXT)


def _ann(store: Store) -> tuple[list[tuple[str, float, str]], float]:
    """Ann's history rows (cause, engagement, reference) and her current engagement score."""
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
    return [(c, float(e), ref) for c, e, ref in rows], float(current)


def test_an_event_that_left_its_window_before_it_was_processed_gives_her_a_row_now(store: Store) -> None:
    # ann's page of five hours ago, processed now, has left the 2-hour window: her score is 0, while her
    # replay's newest row (at the page) says 1 and nothing is due for the clock to write: a row now says 0
    now = int(time.time() * 1000)
    publish(store, WINDOWED, as_of=now - 6 * 60 * MINUTE)
    send(
        store, [{"type": "page", "userId": "ann", "messageId": "p1", "timestamp": now - 5 * 60 * MINUTE}], now
    )
    tick(store, now=now)  # nothing due: the clock writes nothing
    assert _ann(store) == (
        [
            ("created", 0.0, "before any activity"),
            ("event", 1.0, "p1"),
            ("event", 0.0, "windows and decay as of now"),
        ],
        0.0,
    )
    # a page of half an hour ago arrives: at that row's time her score was 1 after all; the replay rewrites
    # it with the event rows (from the new page on), and p1's row (1) is her score again
    send(store, [{"type": "page", "userId": "ann", "messageId": "p2", "timestamp": now - 30 * MINUTE}], now)
    assert _ann(store) == ([("created", 0.0, "before any activity"), ("event", 1.0, "p1")], 1.0)


def test_a_late_event_before_a_publications_row_gives_her_a_row_at_her_score(store: Store) -> None:
    # a publication (v2: 2 points a view) writes a row of its own at its time; a page from before it,
    # arriving late, leaves that row newest (2) while her score is 4: a row of the batch says so
    now = int(time.time() * 1000)
    publish(store, WINDOWED, as_of=now - 6 * 60 * MINUTE)
    send(store, [{"type": "page", "userId": "ann", "messageId": "p1", "timestamp": now - 60 * MINUTE}], now)
    doubled = loads_model(WINDOWED_TEXT.replace("points: 1,", "points: 2,"))
    publish(store, doubled, as_of=now)
    send(store, [{"type": "page", "userId": "ann", "messageId": "p2", "timestamp": now - 30 * MINUTE}], now)
    rows, current = _ann(store)
    assert current == 4.0
    assert rows[-1] == ("event", 4.0, "p2")
    assert ("model", 2.0) in [(c, e) for c, e, _ in rows]
