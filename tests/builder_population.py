"""A small hand-made population for the rule builder's tests: a commented model and leads and events whose
matches are counted by hand below (each count is written next to the data that makes it)."""

from __future__ import annotations

import json

from leadscore.ingest.segment import parse_line
from leadscore.model import loads_model
from leadscore.scoring.pipeline import ingest, publish
from leadscore.scoring.run import now_ms
from leadscore.store import Store

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


def _message(payload: dict[str, object], n: int, received: int) -> object:
    return parse_line(json.dumps(payload), n, "builder.jsonl", received_ms=received)


def populate(store: Store) -> None:
    """Publish the model (as its text) and ingest the people and their page views."""
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


def _iso(ms: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat().replace("+00:00", "Z")
