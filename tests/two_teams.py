"""Two teams, two scores: ``core`` (the primary) and ``analytics`` score the same six people's events
differently, and the core model's lifecycle gives each team its MQL stage before a shared hand-off stage.
The hand-computed numbers are in ``tests/test_web_scores_browser.py``'s docstring; the browser test and
the store test of the reports by score (``tests/test_named_scores.py``) both read this store."""

from __future__ import annotations

from typing import Any

from leadscore.auth.passwords import hash_password
from leadscore.ingest.segment import normalise, parse_time
from leadscore.lifecycle.feedback import give_feedback
from leadscore.lifecycle.runner import run_round
from leadscore.model import loads_model
from leadscore.scoring.pipeline import ingest, publish
from leadscore.settings import Settings
from leadscore.store import Store
from leadscore.store.people import find_lead
from leadscore.store.users import add_user
from web_support import PASSWORD

T0 = parse_time("2024-05-01T00:00:00Z", "t0")
HOUR = 3_600_000
MANAGER = "manager@example.test"

CORE = """
model: core
fit:
  - {id: marketing, name: Marketing role, when: {attribute: job_title, contains: marketing}, points: 60}
engagement:
  - {id: demo, name: Requested a demo, kind: once, event: {type: track, name: Demo Requested}, points: 40}
  - {id: webinar, name: Joined a webinar, kind: once, event: {type: track, name: Webinar Joined}, points: 10}
lifecycle:
  initial: lead
  stages:
    - {id: lead, name: Lead}
    - {id: mql_core, name: MQL core}
    - {id: mql_analytics, name: MQL analytics}
    - {id: ready, name: Ready for sales}
    - {id: sql, name: Sales qualified}
    - {id: nurture, name: Nurture}
  transitions:
    - {id: core_mql, from: [lead], to: mql_core, when: {score: core, score_at_least: 55}}
    - {id: analytics_mql, from: [lead], to: mql_analytics, when: {score: analytics, score_at_least: 60}}
    - {id: core_ready, from: [mql_core], to: ready, when: {score: core, grade_at_least: B}}
    - {id: analytics_ready, from: [mql_analytics], to: ready, when: {score: analytics, score_at_least: 85}}
    - {id: accept, from: [ready], to: sql, trigger: accepted}
    - {id: reject, from: [ready], to: nurture, trigger: rejected}
  funnel: [lead, mql_core, mql_analytics, ready, sql]
  nurture: [nurture]
  teams:
    - id: sales
      name: Sales
      sellers: [{id: sam, name: Sam Seller, email: sam@example.test}]
  assignment: {stage: ready, default_team: sales}
  accounts:
    committee_size: 2
    engaged_at_least: 35
    weights: {fit: 0, engagement: 1}
    mqa: {score_at_least: 40, engaged_contacts_at_least: 1}
"""

ANALYTICS = """
model: analytics
fit:
  - {id: analyst, name: Analyst role, when: {attribute: job_title, contains: analyst}, points: 80}
engagement:
  - {id: report, name: Built a report, kind: once, event: {type: track, name: Report Built}, points: 80}
  - {id: demo, name: Requested a demo, kind: once, event: {type: track, name: Demo Requested}, points: 20}
"""

PEOPLE = {
    "ann": ("Marketing Analyst", ["Demo Requested", "Report Built"]),
    "bob": ("Sales", ["Demo Requested"]),
    "carl": ("Marketing Manager", ["Demo Requested", "Webinar Joined"]),
    "dana": ("Data Analyst", ["Report Built"]),
    "eve": ("Marketing Director", ["Demo Requested", "Webinar Joined"]),
    "frank": ("Head of Marketing", ["Demo Requested", "Webinar Joined"]),
}


def messages(people: dict[str, tuple[str, list[str]]] | None = None) -> list[Any]:
    """Each person's identify at T0 (title, first name, e-mail), then their track events an hour apart
    (``people``: PEOPLE unless given)."""
    out = []
    for user, (title, events) in (PEOPLE if people is None else people).items():
        traits = {"job_title": title, "first_name": user.capitalize(), "email": f"{user}@example.test"}
        raw = {
            "userId": user,
            "messageId": f"{user}-0",
            "timestamp": T0,
            "type": "identify",
            "traits": traits,
        }
        out.append(normalise(raw, received_ms=T0))
        for n, name in enumerate(events, start=1):
            at = T0 + n * HOUR
            raw = {
                "userId": user,
                "messageId": f"{user}-{n}",
                "timestamp": at,
                "type": "track",
                "event": name,
            }
            out.append(normalise(raw, received_ms=at))
    return out


# each person's account (a group message): ann, carl and dana work at ACME, bob, eve and frank at Globex
ACCOUNTS = {
    "ann": "acme",
    "carl": "acme",
    "dana": "acme",
    "bob": "globex",
    "eve": "globex",
    "frank": "globex",
}


def groups() -> list[Any]:
    """A group message per person at T0 putting them in their account (``ACCOUNTS``)."""
    out = []
    for user, account in ACCOUNTS.items():
        raw = {"userId": user, "messageId": f"{user}-group", "timestamp": T0, "type": "group", "groupId": account,
               "traits": {"name": account.capitalize(), "domain": f"{account}.example"}}  # fmt: skip
        out.append(normalise(raw, received_ms=T0))
    return out


def build(store: Store) -> dict[str, int]:
    """Publish both models, score the events, run the lifecycle and reject eve; each person's lead id."""
    core = loads_model(CORE)
    publish(store, core, score_name="core", as_of=T0)
    publish(store, loads_model(ANALYTICS), score_name="analytics", as_of=T0)
    now = T0 + 3 * HOUR
    ingest(store, messages() + groups(), source="test", as_of=now)
    settings = Settings()
    run_round(store, settings, now_ms=now, deliver=False)
    with store.begin() as conn:
        found = {user: find_lead(conn, external_id=user) for user in PEOPLE}
        add_user(conn, MANAGER, "Mia Manager", "admin", hash_password(PASSWORD), 0)
    ids = {user: int(i) for user, i in found.items() if i is not None}
    assert len(ids) == len(PEOPLE), found
    give_feedback(
        store, core, ids["eve"], "rejected", reason="bad_timing", note="", by=MANAGER,
        at_ms=now + HOUR, settings=settings, now_ms=now + HOUR,
    )  # fmt: skip
    return ids
