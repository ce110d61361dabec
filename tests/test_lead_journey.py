"""The lead page's journey: the score at each event time as score history reads it (the attributes known
then), so the chart and the history table agree; a lead with many events charts as many points as
history's budget allows (``scoring.history.thinned``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from leadscore.ingest.segment import normalise
from leadscore.model import loads_model
from leadscore.scoring.pipeline import ingest, publish
from leadscore.store import Store
from leadscore.store.results import read_history
from leadscore.store.schema import leads
from leadscore.web.data import lead as lead_data

T0 = 1_700_000_000_000
MINUTE = 60_000
# fit 40 for a VP (a `title` trait is the `job_title` attribute), a point a page view; the score is half of each (the default weights)
MODEL = loads_model("""
model: journey
fit:
  - {id: vp, name: VP, when: {attribute: job_title, contains: vp}, points: 40}
engagement:
  - {id: visit, name: Visit, event: {type: page}, points: 1}
""")


def _ingest(store: Store, messages: list[dict[str, Any]], as_of: int) -> int:
    publish(store, MODEL, as_of=T0 - MINUTE)
    ingest(store, [normalise(m, received_ms=as_of) for m in messages], source="test", as_of=as_of)
    with store.connect() as conn:
        return int(conn.execute(select(leads.c.id)).scalar_one())


def _journey(store: Store, lead_id: int) -> list[dict[str, Any]]:
    with store.connect() as conn:
        view = lead_data.load(conn, store.sources(), lead_id)
        assert view is not None
        return list(lead_data.journey(conn, store.sources(), view)["points"])


def _page(n: int, minute: int) -> dict[str, Any]:
    return {"type": "page", "userId": "u1", "messageId": f"p{n:02d}", "timestamp": T0 + minute * MINUTE}


def test_the_journey_scores_each_time_with_the_attributes_known_then(store: Store) -> None:
    messages = [
        {"type": "identify", "userId": "u1", "messageId": "i1", "timestamp": T0, "traits": {"title": "Intern"}},
        _page(1, 1),
        _page(2, 2),
        {"type": "identify", "userId": "u1", "messageId": "i2", "timestamp": T0 + 3 * MINUTE,
         "traits": {"title": "VP Sales"}},
        _page(3, 4),
    ]  # fmt: skip
    lead_id = _ingest(store, messages, as_of=T0 + 10 * MINUTE)
    points = _journey(store, lead_id)
    # an intern until minute 3 (fit 0), then a VP (fit 40 → 20 score points); half a point a page view
    assert [(p["t"], p["score"], p["fit"], p["engagement"]) for p in points] == [
        (T0 - 1, 0.0, 0.0, 0.0),
        (T0, 0.0, 0.0, 0.0),
        (T0 + MINUTE, 0.5, 0.0, 1.0),
        (T0 + 2 * MINUTE, 1.0, 0.0, 2.0),
        (T0 + 3 * MINUTE, 21.0, 40.0, 2.0),
        (T0 + 4 * MINUTE, 21.5, 40.0, 3.0),
        (T0 + 10 * MINUTE, 21.5, 40.0, 3.0),
    ]
    # wherever the history table has a row, the chart has the same score
    with store.connect() as conn:
        rows = read_history(conn, lead_id)
    charted = {p["t"]: p["score"] for p in points}
    assert [(r["at_ms"], r["score"]) for r in rows if r["at_ms"] in charted] == [
        (r["at_ms"], charted[r["at_ms"]]) for r in rows if r["at_ms"] in charted
    ]
    assert {r["at_ms"] for r in rows} <= set(charted)


def test_a_lead_with_many_events_charts_what_the_budget_allows(
    store: Store, small_history_budget: None
) -> None:
    lead_id = _ingest(store, [_page(n, n) for n in range(30)], as_of=T0 + 40 * MINUTE)
    points = _journey(store, lead_id)
    # 30 events: 150 / 30 = 5 event points, the last of each run of 6 (page 5, 11, ...), between the
    # moment before the first and now; each lists its run's six page views (five, and "and 1 more")
    assert [(p["t"], p["score"]) for p in points] == [
        (T0 - 1, 0.0),
        *((T0 + n * MINUTE, (n + 1) / 2) for n in (5, 11, 17, 23, 29)),
        (T0 + 40 * MINUTE, 15.0),
    ]
    assert [len(p["events"]) for p in points] == [0, 6, 6, 6, 6, 6, 0]
    assert points[1]["events"][-1] == "and 1 more"


def test_past_the_newest_journey_points_the_older_events_are_counted_not_read(store: Store) -> None:
    """250 page views a minute apart: the journey charts the newest 200 event times (``JOURNEY_POINTS``)
    and its first point, the moment before them, counts the 50 older ones; only those 200 times' events
    are read into the page (a write key can send her any number). A view is a point, 0.5 of score,
    until engagement's 100 points (score 50)."""
    lead_id = _ingest(store, [_page(n, n) for n in range(250)], as_of=T0 + 300 * MINUTE)
    points = _journey(store, lead_id)
    assert lead_data.JOURNEY_POINTS == 200
    assert [(p["t"], p["score"]) for p in points] == [
        (T0 + 50 * MINUTE - 1, 25.0),
        *((T0 + n * MINUTE, min(n + 1, 100) / 2) for n in range(50, 250)),
        (T0 + 300 * MINUTE, 50.0),
    ]
    assert points[0]["events"] == [] and all(len(p["events"]) == 1 for p in points[1:-1])


def test_many_events_at_one_time_are_one_point_listing_five_and_the_rest_counted(store: Store) -> None:
    """1,000 page views sent at one time (a write key chooses timestamps) after one a minute earlier: the
    point at that time lists the first five (in the order they were stored) and "and 995 more", and the
    score counts all of them (1,001 views: engagement capped at 100 points, score 50)."""
    flood = [
        {**_page(n, 1), "messageId": f"f{n:04d}", "properties": {"path": f"/f/{n}"}} for n in range(1000)
    ]
    lead_id = _ingest(store, [_page(0, 0), *flood], as_of=T0 + 5 * MINUTE)
    points = _journey(store, lead_id)
    assert [(p["t"], p["score"]) for p in points] == [
        (T0 - 1, 0.0),
        (T0, 0.5),
        (T0 + MINUTE, 50.0),
        (T0 + 5 * MINUTE, 50.0),
    ]
    assert points[2]["events"] == [*(f"page /f/{n}" for n in range(5)), "and 995 more"]
    assert points[1]["events"] == ["page"] and points[3]["events"] == []
