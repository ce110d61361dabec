"""Getting warmer is the current score minus the score the lead had ``days`` ago, also for a lead whose
history a flood thinned (``scoring.history.thinned``: a batch's rows for her at most its budget, each the
last event time of the run it stands for), whose rows skip the moves between them.

Model: a page view is one engagement point of 100, the score its engagement (weights fit 0, engagement 1).
Ulla views a page every day, days 1 to 30, all sent in one batch on day 30: with the test's budget (150 /
30 events = 5 rows) her rows are at days 6, 12, 18, 24 and 30 (scores 6 ... 30). Vera views pages on days
27, 28 and 29 (three rows, within the budget). On day 33, seven days back is day 26: Ulla's score then
was 26 (26 page views), now 30: +4 (her newest row at or before day 26 says 24: +6). Vera had no score
then (0), now 3: +3.
"""

from __future__ import annotations

from leadscore.ingest.segment import normalise, parse_time
from leadscore.lifecycle.reports import getting_warmer
from leadscore.model import loads_model
from leadscore.scoring.pipeline import ingest, publish
from leadscore.store import Store
from leadscore.store.people import find_lead
from leadscore.store.results import read_history

T0 = parse_time("2024-05-01T00:00:00Z", "t0")
DAY = 86_400_000
MODEL = loads_model("""
model: pages
engagement:
  - {id: visit, name: Visit, event: {type: page}, points: 1}
scale: {engagement_max: 100, weights: {fit: 0, engagement: 1}}
""")


def _page(user: str, day: int) -> dict[str, object]:
    return {"type": "page", "userId": user, "messageId": f"{user}-{day:02d}", "timestamp": T0 + day * DAY}


def test_getting_warmer_reads_the_score_then_past_a_thinned_history(
    store: Store, small_history_budget: None
) -> None:
    publish(store, MODEL, as_of=T0)
    raw = [_page("ulla", d) for d in range(1, 31)] + [_page("vera", d) for d in (27, 28, 29)]
    ingest(
        store, [normalise(m, received_ms=T0 + 30 * DAY) for m in raw], source="test", as_of=T0 + 30 * DAY + 1
    )
    with store.connect() as conn:
        ulla, vera = find_lead(conn, external_id="ulla"), find_lead(conn, external_id="vera")
        assert ulla is not None and vera is not None
        rows = [(r["at_ms"], r["score"]) for r in read_history(conn, ulla) if r["cause"] == "event"]
        assert rows == [(T0 + d * DAY, float(d)) for d in (6, 12, 18, 24, 30)]  # thinned
        warmer = getting_warmer(conn, T0 + 33 * DAY, days=7)
    assert [(r["lead_id"], r["score_then"], r["score"], r["increase"]) for r in warmer] == [
        (ulla, 26.0, 30.0, 4.0),
        (vera, 0.0, 3.0, 3.0),
    ]
