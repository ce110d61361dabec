"""A backtest (and the draft replays of the model page and the review, which run it) scores each checkpoint
with the lead's attributes as known then (``scoring.as_known``, as ``history``, ``explain --as-of`` and
the account chart do), not as they are today: a lead whose job title changed after she qualified was
replayed with her new title at every checkpoint, and MQLs appeared (or vanished) before the change."""

from __future__ import annotations

import time
from typing import Any

from leadscore.ingest.segment import normalise
from leadscore.learn.backtest import backtest
from leadscore.learn.labels import DAY_MS
from leadscore.model import loads_model
from leadscore.scoring.pipeline import ingest
from leadscore.store import Store
from leadscore.store.people import find_lead

T0 = 1_714_521_600_000  # 2024-05-01T00:00:00Z, the start of the period
END = T0 + 14 * DAY_MS  # two weeks
HOUR = 3_600_000

# A marketing title gives fit 60 (grade B); any other title fit 0 (grade D). Engagement alone makes the
# score: each demo 30. An MQL needs a score of 60 and grade B; it cools below 60 − 5 only.
MODEL = """
model: titles
fit:
  - {id: marketing, name: Marketing role, when: {attribute: job_title, contains: marketing}, points: 60}
engagement:
  - {id: demo, name: Asked for a demo, event: {type: track, name: Demo}, points: 30}
scale: {weights: {fit: 0, engagement: 1}, grades: {A: 90, B: 60, C: 30}, bands: {hot: 60, warm: 40}}
lifecycle:
  initial: lead
  hysteresis: 5
  stages:
    - {id: lead, name: Lead}
    - {id: mql, name: MQL}
  transitions:
    - {id: qualified, from: [lead], to: mql, when: {score_at_least: 60, grade_at_least: B}}
    - {id: cooled, from: [mql], to: lead, when: {score_below: 60}}
"""


def _iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + "Z"


def _identify(user: str, day: int, title: str) -> dict[str, Any]:
    return {"type": "identify", "userId": user, "messageId": f"id-{user}-{day}", "timestamp": _iso(T0 + day * DAY_MS + 12 * HOUR),
            "traits": {"email": f"{user}@x.example", "job_title": title}}  # fmt: skip


def _demo(user: str, i: int) -> dict[str, Any]:
    return {"type": "track", "event": "Demo", "userId": user, "messageId": f"{user}-demo-{i}",
            "timestamp": _iso(T0 + DAY_MS + 10 * HOUR + i * 60_000)}  # fmt: skip


def test_a_backtest_scores_each_checkpoint_with_the_title_known_then(store: Store) -> None:
    # dana: marketing on day 0, two demos on day 1 (score 60, grade B: an MQL on day 1, week 1), a student
    #   from day 9 (grade D; her score stays 60, not below 55: she stays an MQL, no second entry).
    # eve: a student on day 0, two demos on day 1 (score 60, grade D: no MQL), marketing from day 9 (grade
    #   B at her day-9 checkpoint, the identify: an MQL on day 9, week 2).
    # Today's titles instead: dana never (student), eve on day 1 (week 1): one MQL, weekly [1, 0].
    raws = [
        _identify("dana", 0, "Marketing Manager"),
        _identify("eve", 0, "Student"),
        *(_demo(user, i) for user in ("dana", "eve") for i in range(2)),
        _identify("dana", 9, "Student"),
        _identify("eve", 9, "Marketing Director"),
    ]
    ingest(store, [normalise(r, received_ms=END) for r in raws], source="test")
    with store.connect() as conn:
        dana, eve = find_lead(conn, external_id="dana"), find_lead(conn, external_id="eve")
        result = backtest(conn, store.sources(), ("candidate", loads_model(MODEL), None), None, start_ms=T0,
                          end_ms=END, outcome="opportunity", horizon_ms=3 * DAY_MS)  # fmt: skip
    assert (result.candidate.mqls, result.candidate.weekly) == (2, [1, 1])
    assert result.candidate.leads == {dana, eve}
