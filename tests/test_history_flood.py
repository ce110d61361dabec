"""One person's flood of events makes her score history coarser, never every batch about her dearer: a
lead's history points in one replay are at most max(FEW_POINTS, POINT_EVENTS / her events), each kept
point the last of the run it stands for and caused by all its messages (``scoring.history.thinned``)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from leadscore.ingest.apply import event_row
from leadscore.ingest.committer import GroupCommitter
from leadscore.ingest.segment import normalise
from leadscore.model import loads_model
from leadscore.scoring import history
from leadscore.scoring.pipeline import publish
from leadscore.scoring.processor import process_pending
from leadscore.store import Store
from leadscore.store.schema import leads, score_history, scores

START = 1_700_000_000_000
MINUTE = 60_000
# a point a page view; the score is half the engagement (the default weights, 0.5 each, of 100 points)
MODEL = loads_model("""
model: flood
engagement:
  - {id: visit, name: Visit, event: {type: page}, points: 1}
""")


def _page(user: str, n: int) -> dict[str, Any]:
    return {"type": "page", "userId": user, "messageId": f"{user}-{n:02d}", "timestamp": START + n * MINUTE}


def send(store: Store, messages: list[dict[str, Any]], received_ms: int = START) -> None:
    """Acknowledge ``messages`` as the API does, then process them in one batch."""
    committer = GroupCommitter(store).start()
    try:
        committer.submit(
            [event_row(normalise(m, received_ms=received_ms), "test") for m in messages]
        ).result()
    finally:
        committer.stop()
    assert process_pending(store, limit=len(messages)) == len(messages)


def _rows(store: Store, user: str) -> list[tuple[str, int, float, str]]:
    """The lead's history rows: cause, time, engagement points, cause reference."""
    with store.connect() as conn:
        found = conn.execute(
            select(
                score_history.c.cause,
                score_history.c.at_ms,
                score_history.c.engagement_score,
                score_history.c.cause_ref,
            )
            .join(leads, leads.c.id == score_history.c.lead_id)
            .where(leads.c.external_id == user)
            .order_by(score_history.c.at_ms, score_history.c.id)
        )
        return [(c, at, float(s), ref) for c, at, s, ref in found]


def test_a_flood_is_thinned_to_the_budget_and_the_newest_row_is_the_score(
    store: Store, small_history_budget: None
) -> None:
    publish(store, MODEL, as_of=START)
    # bot: 30 page views a minute apart (one point each) with 30 events: 150 / 30 = 5 points, the last of
    # each run of 6; ann: 3 views, within the budget: a point each
    send(store, [_page("bot", n) for n in range(30)] + [_page("ann", n) for n in range(3)])
    # then 30 more: 60 events, 150 / 60 = 2 (the floor, FEW_POINTS): the last of each run of 15
    send(store, [_page("bot", n) for n in range(30, 60)])
    got = _rows(store, "bot")
    assert [(c, at, s) for c, at, s, _ in got] == [
        ("created", START - 1, 0.0),
        *(("event", START + n * MINUTE, float(n + 1)) for n in (5, 11, 17, 23, 29, 44, 59)),
    ]
    # each kept row is caused by the messages of the run it stands for
    assert got[1][3] == "bot-00, bot-01, bot-02 and 3 more"
    assert got[-1][3] == "bot-45, bot-46, bot-47 and 12 more"
    assert [(c, s) for c, _, s, _ in _rows(store, "ann")] == [
        ("created", 0.0),
        ("event", 1.0),
        ("event", 2.0),
        ("event", 3.0),
    ]
    with store.connect() as conn:
        now = conn.execute(
            select(scores.c.engagement_score, scores.c.score)
            .join(leads, leads.c.id == scores.c.lead_id)
            .where(leads.c.external_id == "bot")
        ).one()
    assert (float(now[0]), float(now[1])) == (60.0, 30.0)
    assert got[-1][2] == 60.0


ACCOUNT_MODEL = loads_model("""
model: flood_account
engagement:
  - {id: visit, name: Visit, event: {type: page}, points: 1}
  - {id: team, name: The account reads, kind: threshold, scope: account, event: {type: page}, at_least: 1,
     within: 30d, points: 1}
""")


def test_a_point_over_the_account_counts_the_accounts_events(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # with a rule over the account's events a point reads the colleagues' events too: ann's 10 page views in
    # one batch beside a colleague's 45 are 57 events with the two group calls (150 / 57: the floor, 2
    # points, the last of each run of 5: 5 and 10 visits, and a point for the account's reading); counting
    # her own 11 events alone would have kept all 10 (150 / 11 = 13)
    monkeypatch.setattr(history, "POINT_EVENTS", 150)
    monkeypatch.setattr(history, "FEW_POINTS", 2)
    publish(store, ACCOUNT_MODEL, as_of=START)
    joined = [
        {
            "type": "group",
            "userId": who,
            "groupId": "acme",
            "messageId": f"g-{who}",
            "timestamp": START - MINUTE,
        }
        for who in ("col", "ann")
    ]
    send(store, [*joined, *(_page("col", n) for n in range(45))])
    send(store, [_page("ann", n) for n in range(50, 60)])
    rows = _rows(store, "ann")
    got = [(c, at, s) for c, at, s, ref in rows if c == "event" and ref != history.TIME_REF]
    assert got == [("event", START + 54 * MINUTE, 6.0), ("event", START + 59 * MINUTE, 11.0)]
    # processed years later (as of now): the account's pages have left the 30 days, her score is her 10
    # visits, and a row at the batch's time says so
    assert [(s, ref) for _, _, s, ref in rows[-1:]] == [(10.0, history.TIME_REF)]


def test_within_the_budget_every_event_time_is_a_point() -> None:
    due = [(t, [f"m{t}"]) for t in range(10)]
    # 10 points of a lead with 10,000 events: 100,000 / 10,000 = 10, all kept
    assert history.thinned(due, 10_000) == due
    # 10,001 events: 9 points (100,000 // 10,001); the k-th run ends at k * 10 // 9: 1, 2, ..., 8, 10
    kept = history.thinned(due, 10_001)
    assert [t for t, _ in kept] == [0, 1, 2, 3, 4, 5, 6, 7, 9]
    assert kept[7] == (7, ["m7"]) and kept[8] == (9, ["m8", "m9"])
    # a history beyond any budget: FEW_POINTS (4), runs ending at 2, 5, 7, 10
    assert [t for t, _ in history.thinned(due, 10**9)] == [1, 4, 6, 9]


@given(
    times=st.lists(st.integers(0, 10**6), min_size=1, max_size=300, unique=True),
    events_count=st.integers(0, 10**6),
)
def test_thinned_keeps_the_newest_and_every_message_within_the_bound(
    times: list[int], events_count: int
) -> None:
    due = [(t, [f"m{t}a", f"m{t}b"]) for t in sorted(times)]
    kept = history.thinned(due, events_count)
    bound = max(history.FEW_POINTS, history.POINT_EVENTS // max(events_count, 1))
    assert len(kept) == min(len(due), bound)
    assert kept[-1][0] == due[-1][0]
    assert [m for _, mids in kept for m in mids] == [m for _, mids in due for m in mids]
    assert {t for t, _ in kept} <= {t for t, _ in due}
