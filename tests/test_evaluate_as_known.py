"""``evaluate`` scores each lead as of each cutoff with her attributes as known then (``scoring.as_known``,
as history, ``explain --as-of``, the backtest and sales feedback do), not as they are today: a lead whose
job title changed after the cutoff was credited to the rules of her new title."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import select

from leadscore.ingest.segment import normalise
from leadscore.learn.evaluate import evaluate_store
from leadscore.learn.labels import DAY_MS
from leadscore.model import loads_model
from leadscore.scoring.as_known import _SOURCES, as_known_sources
from leadscore.scoring.pipeline import ingest
from leadscore.scoring.run import STATEMENTS
from leadscore.store import Store
from leadscore.store.people import find_lead
from leadscore.store.schema import identities, outcomes

T0 = 1_714_521_600_000  # 2024-05-01T00:00:00Z
CUTOFF = T0 + 5 * DAY_MS  # one cutoff, day 5; every title changes on day 20
MODEL = """
model: m
fit:
  - {id: marketing, name: Marketing role, when: {attribute: job_title, contains: marketing}, points: 60}
engagement:
  - {id: demo, name: Asked for a demo, event: {type: track, name: Demo}, points: 30}
scale: {weights: {fit: 1, engagement: 1}, grades: {A: 90, B: 60, C: 30}, bands: {hot: 60, warm: 40}}
"""
# (day-1 title, day-20 title, converts on day 10)
LEADS = {
    "dana": ("Marketing Manager", "Student", False),
    "eve": ("Student", "Marketing Director", True),
    "fay": ("Marketing Lead", "Marketing Lead", True),
    "gus": ("Student", "Student", False),
}


def _iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + "Z"


def _identify(user: str, day: int, title: str) -> dict[str, Any]:
    return {"type": "identify", "userId": user, "messageId": f"id-{user}-{day}", "timestamp": _iso(T0 + day * DAY_MS),
            "traits": {"email": f"{user}@x.example", "job_title": title}}  # fmt: skip


def test_evaluate_scores_each_cutoff_with_the_title_known_then(store: Store) -> None:
    # At the day-5 cutoff the marketing rule gave points to dana (no conversion) and fay (converted on day
    # 10, within the 30-day horizon): rate among them 1/2 = 0.5; among eve (converted) and gus: 1/2 = 0.5;
    # coverage 2/4, lift 1.0. Today's titles instead: eve and fay (both converted) 2/2 = 1.0 against dana
    # and gus 0/2 = 0.0 (lift undefined).
    raws = [_identify(user, 1, then) for user, (then, _, _) in LEADS.items()]
    raws += [_identify(user, 20, now) for user, (then, now, _) in LEADS.items() if now != then]
    ingest(store, [normalise(r, received_ms=T0 + 60 * DAY_MS) for r in raws], source="test")
    with store.begin() as conn:
        for user, (_, _, converts) in LEADS.items():
            lead = find_lead(conn, external_id=user)
            assert lead is not None
            if converts:
                conn.execute(outcomes.insert().values(lead_id=lead, kind="opportunity", at_ms=T0 + 10 * DAY_MS,
                                                      source="test", recorded_ms=T0 + 10 * DAY_MS))  # fmt: skip
    ev = evaluate_store(store, loads_model(MODEL), "m@1", outcome="opportunity", horizon_ms=30 * DAY_MS,
                        at=[CUTOFF], end_ms=T0 + 60 * DAY_MS)  # fmt: skip
    assert (ev.rows, ev.converted) == (4, 2)
    marketing = next(r for r in ev.rules if r.rule == "marketing")
    assert (marketing.coverage, marketing.rate_hit, marketing.rate_miss) == (0.5, 0.5, 0.5)
    assert marketing.lift == pytest.approx(1.0)


def test_the_as_known_sources_are_kept_as_the_statements_over_them_are() -> None:
    # an evaluation's every cutoff reads sources of its own (the identities stitched by then): the sources
    # over the known attributes made for each were kept for the life of the process
    base = Store.sources()
    first, *more = (
        replace(base, identities=select(identities).subquery(f"i{i}")) for i in range(STATEMENTS + 8)
    )
    made = as_known_sources(first)
    assert as_known_sources(first) is made  # kept: the statement compiled over it is found again
    for sources in more:
        as_known_sources(sources)
    assert len(_SOURCES) <= STATEMENTS
    assert first not in _SOURCES  # the least recently used went first
    assert as_known_sources(more[-1]) is _SOURCES[more[-1]]
