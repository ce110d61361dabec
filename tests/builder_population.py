"""A small hand-made population for the rule builder's tests: a commented model and leads and events whose
matches are counted by hand below (each count is written next to the data that makes it)."""

from __future__ import annotations

import json

from leadscore.ingest.segment import parse_line
from leadscore.lifecycle.feedback import record_outcome
from leadscore.model import loads_model
from leadscore.scoring.pipeline import ingest, publish
from leadscore.scoring.run import now_ms
from leadscore.settings import Settings
from leadscore.store import Store
from leadscore.store.people import find_lead

DAY = 86_400_000

MODEL = """\
# Builder test model: every comment line here must survive the builder and publishing.
model: builder_test   # the name
description: A small model to build rules on.

# Named lists of domains.
lists:
  free_mail:
    description: Consumer mailboxes.
    values: [gmail.com, hotmail.com,
             outlook.com]

fit:
  # Titles that buy.
  - id: title_growth
    name: Growth title
    when: {attribute: job_title, contains: growth}
    points: 20
  - id: free_mail
    name: Free mail
    when: {attribute: email_domain, in_list: free_mail}
    points: -10     # a private person

engagement:
  - id: pricing
    name: Pricing views
    event: {type: page}
    where: {property: path, prefix: /pricing}
    points: 5
    cap: 15
    half_life: 7d   # pricing interest goes stale fast

# The scale.
scale:
  fit_max: 40
  engagement_max: 40
  weights: {fit: 0.5, engagement: 0.5}
  grades: {A: 70, B: 45, C: 25}
  levels: {1: 60, 2: 35, 3: 15}
  bands: {hot: 60, warm: 35}

# A lead is handed to sales when its score reaches 45.
lifecycle:
  initial: lead
  stages:
    - {id: lead, name: Lead}
    - {id: mql, name: Marketing-qualified lead}
  transitions:
    - {id: qualified, from: [lead], to: mql, when: {score_at_least: 45}}   # the MQL threshold
"""

COMMENT_LINES = [line for line in MODEL.splitlines() if "#" in line]

# (user id, job title, country)
PEOPLE = [
    ("u1", "Growth Manager", "se"),  # contains "growth" (any case); country se
    ("u2", "VP Growth", "dk"),  # contains "growth"; country dk
    ("u3", "Engineer", "se"),  # no
    ("u4", "growth hacker", "de"),  # contains "growth"; country de
    ("u5", "Sales Director", "no"),  # no
]
# Hand counts: job_title contains "growth" → u1, u2, u4 = 3 leads; country in [se, dk] → u1, u2, u3 = 3;
# both (all) → u1, u2 = 2; either (any) → u1, u2, u3, u4 = 4.

# (user id, page path, days ago)
PAGES = [
    ("u1", "/pricing", 1),
    ("u1", "/pricing", 3),
    ("u2", "/pricing/enterprise", 10),
    ("u3", "/pricing", 100),  # outside the last 90 days
    ("u3", "/blog/a", 2),
    ("u4", "/product", 5),
]
# Hand counts, last 90 days: path starts with /pricing → 3 events (u1 twice, u2 once) from 2 leads;
# path starts with /blog → 1 event from 1 lead; any page → 5 events from 4 leads.

# (user id, outcome, days ago): what became of the leads, for the backtest.
OUTCOMES = [
    ("u1", "opportunity", 2),  # after its pricing view 3 days ago
    ("u3", "opportunity", 2),  # an engineer: off profile, yet converted
]
# Hand-computed backtest of the browser test's draft (this model plus the fit rule growth_nordics: job title
# contains "growth" and country in [se, dk], 15 points) against this model, outcome opportunity within 30 days.
# The period: the 84 days up to the newest event or outcome (u1's pricing view 1 day ago), in 12 weeks;
# outcomes end 2 days ago, before it. score = 0.5 × fit points × 100/40 + 0.5 × engagement points × 100/40
# = 1.25 × (fit + engagement points); MQL when the score reaches 45 (the lifecycle's only way in, for good).
# A lead is scored at the period's start and at each active day's last event: a pricing view scored at its own
# time counts its full 5 points.
#   This model: the fit points are u1 20, u2 20, u4 20, u3 0, u5 0. The highest score anyone reaches is u1's
#   1 day ago: 1.25 × (20 + 5 + 5 × 0.5^(2/7)) ≈ 1.25 × 29.10 ≈ 36.4 < 45 → 0 MQLs, precision undefined ("—"),
#   recall 0 of 2 (u1, u3 converted in the period) = 0.0 %.
#   The draft: u1 and u2 have 35 fit points (43.75, below 45, at the start). u2's pricing view 10 days ago →
#   1.25 × (35 + 5) = 50 → MQL in week 11 (75 days into the period: days 70 to 77); u1's 3 days ago
#   (day 82) → 50 → MQL in week 12; u4 (de) stays at 25, u3 and u5 at 0 → 2 MQLs, weekly 0 × 10, 1, 1.
#   u1 converted 1 day after its MQL (within 30 days) → converted 1; u2's 30 days have not passed and it
#   has not converted → unlabelled; precision 1 / 1 = 100.0 %; recall 1 of 2 (u1 was MQL before
#   converting, u3 never) = 50.0 %.
#   The draft gains 2 MQLs (u1, u2) of which 1 converted (u1), and loses 0.


def _message(payload: dict[str, object], n: int, received: int) -> object:
    return parse_line(json.dumps(payload), n, "builder.jsonl", received_ms=received)


def populate(store: Store) -> None:
    """Publish the model (as its text), ingest the people and their page views and record their outcomes."""
    stamp = now_ms()
    publish(store, loads_model(MODEL), text=MODEL, as_of=stamp)
    messages = []
    n = 0
    for user, title, country in PEOPLE:
        n += 1
        traits = {"email": f"{user}@acme{n}.example", "job_title": title, "country": country}
        messages.append(
            _message(
                {
                    "type": "identify",
                    "userId": user,
                    "messageId": f"id-{user}",
                    "traits": traits,
                    "timestamp": _iso(stamp - 200 * DAY),
                },
                n,
                stamp,
            )
        )
    for user, path, days in PAGES:
        n += 1
        messages.append(
            _message(
                {
                    "type": "page",
                    "userId": user,
                    "messageId": f"page-{n}",
                    "properties": {"path": path},
                    "timestamp": _iso(stamp - days * DAY),
                },
                n,
                stamp,
            )
        )
    ingest(store, messages, source="jsonl", as_of=stamp)  # type: ignore[arg-type]
    model = loads_model(MODEL)
    settings = Settings(database_url=str(store.url), run_processor=False)
    for user, kind, days in OUTCOMES:
        with store.connect() as conn:
            lead = find_lead(conn, external_id=user)
        assert lead is not None, user
        record_outcome(store, model, lead, kind, at_ms=stamp - days * DAY, amount=None, reason=None,
                       source="crm", settings=settings, now_ms=stamp)  # fmt: skip


def _iso(ms: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat().replace("+00:00", "Z")
