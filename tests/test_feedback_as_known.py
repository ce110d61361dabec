"""Sales feedback reads the rules that gave a lead points as of the seller's decision with the lead's
attributes as known then (``scoring.as_known``, as history, ``explain --as-of`` and the backtest do), not
as they are today: a lead whose job title changed after the decision was credited to the rules of her new
title."""

from __future__ import annotations

import time
from typing import Any

from leadscore.ingest.segment import normalise
from leadscore.learn.labels import DAY_MS
from leadscore.learn.sales_feedback import feedback_evidence
from leadscore.model import loads_model
from leadscore.scoring.pipeline import ingest, publish
from leadscore.store import Store
from leadscore.store.lifecycle_tables import add_feedback
from leadscore.store.people import find_lead

T0 = 1_714_521_600_000  # 2024-05-01T00:00:00Z
DECIDED = T0 + 40 * DAY_MS  # sales decides on day 40; both titles change on day 50
MODEL = """
model: m
fit:
  - {id: student, name: Student, when: {attribute: job_title, contains: student}, points: 20}
engagement:
  - {id: demo, name: Asked for a demo, event: {type: track, name: Demo}, points: 30}
  - {id: webinar, name: Attended a webinar, event: {type: track, name: Webinar}, points: 10}
scale: {weights: {fit: 0, engagement: 1}, grades: {A: 90, B: 60, C: 30}, bands: {hot: 60, warm: 40}}
"""


def _iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + "Z"


def _identify(user: str, day: int, title: str) -> dict[str, Any]:
    return {"type": "identify", "userId": user, "messageId": f"id-{user}-{day}", "timestamp": _iso(T0 + day * DAY_MS),
            "traits": {"email": f"{user}@x.example", "job_title": title}}  # fmt: skip


def _track(user: str, name: str) -> dict[str, Any]:
    return {"type": "track", "event": name, "userId": user, "messageId": f"{user}-{name}",
            "timestamp": _iso(T0 + DAY_MS + 60_000)}  # fmt: skip


def test_feedback_credits_the_rules_of_the_title_known_at_the_decision(store: Store) -> None:
    # dana: a student on day 1, one webinar; rejected (reason "student") on day 40; marketing from day 50.
    # eve: a manager on day 1, one demo; accepted on day 40; a student from day 50.
    # At the decision the student rule gave points to dana only: accepted 0, rejected 1; acceptance among
    # the MQLs it gave points to 0/1 = 0.0, among the others (eve) 1/1 = 1.0, lift 0.0, reasons {student: 1}.
    # Today's titles instead: the student rule gave points to eve only (accepted 1, rejected 0, lift
    # undefined or infinite, no reasons).
    publish(store, loads_model(MODEL))
    raws = [
        _identify("dana", 1, "Student"),
        _identify("eve", 1, "Manager"),
        _track("dana", "Webinar"),
        _track("eve", "Demo"),
        _identify("dana", 50, "Marketing Manager"),
        _identify("eve", 50, "Student"),
    ]
    ingest(store, [normalise(r, received_ms=T0 + 60 * DAY_MS) for r in raws], source="test")
    with store.begin() as conn:
        for user, decision, reason in (("dana", "rejected", "student"), ("eve", "accepted", None)):
            lead = find_lead(conn, external_id=user)
            assert lead is not None
            add_feedback(conn, {"lead_id": lead, "decision": decision, "reason": reason, "note": "", "by": "seller",
                                "at_ms": DECIDED, "stage_from": "mql", "recorded_ms": DECIDED})  # fmt: skip
    with store.connect() as conn:
        ev = feedback_evidence(conn, store.sources(), loads_model(MODEL), "m@1")
    assert (ev.decisions, ev.accepted, ev.rejected) == (2, 1, 1)
    student = ev.rule("student")
    assert (student.accepted, student.rejected) == (0, 1)
    assert (student.acceptance_hit, student.acceptance_miss, student.lift) == (0.0, 1.0, 0.0)
    assert student.reasons == {"student": 1}
    # the engagement rules read events, unchanged by the titles: demo eve (accepted), webinar dana (rejected)
    assert (ev.rule("demo").accepted, ev.rule("demo").rejected) == (1, 0)
    assert (ev.rule("webinar").accepted, ev.rule("webinar").rejected) == (0, 1)
