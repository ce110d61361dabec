"""The account page's weekly score chart scores each week with the contacts' attributes as they were known
then (``scoring.as_known``, as score history and the lead page's journey read a past score), not with
today's: a contact who withdrew tracking consent this week was engaged three weeks ago, and the chart, the
MQA status changes the lifecycle recorded then and the contact's own history all say so.

Model: a demo request is 60 engagement points (of 100); the account score is the committee engagement of
its one most engaged contact (committee 1, weights fit 0, engagement 1); an MQA has 40 or more and one
engaged contact (35 or more). Ann (ACME) requests a demo on day 0 (an hour in): 60 → the account's score
60, MQA. On day 10 she withdraws tracking consent: her behaviour is no longer scored, 0 → the account 0,
not MQA. Now is day 20: the chart's week ends are day 6, day 13 and day 20 (now), the first activity
being day 0: 60 (MQA), 0, 0.
"""

from __future__ import annotations

from typing import Any

from leadscore.ingest.segment import normalise, parse_time
from leadscore.lifecycle.runner import run_round
from leadscore.model import loads_model
from leadscore.scoring.pipeline import ingest, publish
from leadscore.settings import Settings
from leadscore.store import Store
from leadscore.store.people import find_lead
from leadscore.store.results import read_history
from leadscore.web.data import account as account_data

T0 = parse_time("2024-05-01T00:00:00Z", "t0")
HOUR = 3_600_000
DAY = 24 * HOUR
NOW = T0 + 20 * DAY
MODEL = loads_model("""
model: committee-consent
engagement:
  - {id: demo, name: Requested a demo, kind: once, event: {type: track, name: Demo Requested}, points: 60}
scale: {engagement_max: 100, weights: {fit: 0, engagement: 1}}
lifecycle:
  initial: lead
  stages: [{id: lead, name: Lead}]
  accounts:
    committee_size: 1
    engaged_at_least: 35
    weights: {fit: 0, engagement: 1}
    mqa: {score_at_least: 40, engaged_contacts_at_least: 1}
""")


def _send(store: Store, raw: dict[str, Any]) -> None:
    at = int(raw["timestamp"])
    ingest(store, [normalise(raw, received_ms=at)], source="test", as_of=at)
    run_round(store, Settings(), now_ms=at, deliver=False)


def test_the_weekly_chart_scores_past_weeks_with_the_attributes_known_then(store: Store) -> None:
    publish(store, MODEL, as_of=T0 - HOUR)
    _send(store, {"type": "identify", "userId": "ann", "messageId": "i1", "timestamp": T0,
                  "traits": {"email": "ann@acme.example", "first_name": "Ann"}})  # fmt: skip
    _send(store, {"type": "group", "userId": "ann", "messageId": "g1", "timestamp": T0, "groupId": "acme",
                  "traits": {"name": "Acme", "domain": "acme.example"}})  # fmt: skip
    _send(store, {"type": "track", "userId": "ann", "messageId": "d1", "timestamp": T0 + HOUR,
                  "event": "Demo Requested"})  # fmt: skip
    _send(store, {"type": "identify", "userId": "ann", "messageId": "i2", "timestamp": T0 + 10 * DAY,
                  "traits": {"consent": {"tracking": False}}})  # fmt: skip
    with store.connect() as conn:
        ann = find_lead(conn, external_id="ann")
        assert ann is not None
        # Ann's own history: 60 from the demo request, 0 from the withdrawal
        assert [(r["at_ms"], r["score"]) for r in read_history(conn, ann) if r["at_ms"] >= T0 + HOUR] == [
            (T0 + HOUR, 60.0),
            (T0 + 10 * DAY, 0.0),
        ]
        view = account_data.load(conn, MODEL, _account_of(conn, ann), NOW)
    assert view is not None
    # the lifecycle's record: MQA at 60 after the demo, not MQA at 0 after the withdrawal
    assert [(m["to_stage"], m["score"]) for m in view.moves][-2:] == [("mqa", 60.0), ("none", 0.0)]
    assert [(h["t"], h["score"], h["engaged_contacts"], h["stage"]) for h in view.history] == [
        (T0 + 6 * DAY, 60.0, 1, "mqa"),
        (T0 + 13 * DAY, 0.0, 0, "none"),
        (NOW, 0.0, 0, "none"),
    ]


def _account_of(conn: Any, lead_id: int) -> int:
    from sqlalchemy import select

    from leadscore.store.schema import leads

    return int(conn.execute(select(leads.c.account_id).where(leads.c.id == lead_id)).scalar_one())
