"""The model and helpers shared by the lifecycle tests: scores are driven by counted events (each
``Plus`` adds a point, each ``Minus`` removes one; fit only sets the grade)."""

from __future__ import annotations

import itertools
import time
from typing import Any

from leadscore.ingest.segment import normalise
from leadscore.model import ScoringModel, loads_model
from leadscore.scoring.pipeline import ingest
from leadscore.settings import LifecycleSettings, Settings, SmtpSettings, WebhookSettings
from leadscore.store import Store

DAY = 86_400_000
HOUR = 3_600_000
T0 = 1_714_521_600_000  # 2024-05-01T00:00:00Z
HOOK_ENV = "LEADSCORE_TEST_HOOK_URL"

MODEL = """
model: lc
fit:
  - {id: marketing, name: Marketing role, when: {attribute: job_title, contains: marketing}, points: 60}
  - {id: big, name: 50+ employees, when: {attribute: employees, gte: 50}, points: 40}
engagement:
  - {id: plus, name: Showed interest, event: {type: track, name: Plus}, points: 1}
  - {id: minus, name: Lost interest, event: {type: track, name: Minus}, points: -1}
scale: {weights: {fit: 0, engagement: 1}, grades: {A: 90, B: 60, C: 30}, bands: {hot: 70, warm: 40}}
lifecycle:
  initial: lead
  hysteresis: 5
  stages:
    - {id: lead, name: Lead}
    - {id: mql, name: MQL}
    - {id: sql, name: SQL}
    - {id: opportunity, name: Opportunity}
    - {id: customer, name: Customer}
    - {id: recycled, name: Recycled}
  funnel: [lead, mql, sql, opportunity, customer]
  nurture: [lead, recycled]
  transitions:
    - {id: qualified, from: [lead], to: mql, when: {score_at_least: 60, grade_at_least: B}}
    - {id: requalified, from: [recycled], to: mql, when: {score_at_least: 60, grade_at_least: B, new_activity: true}}
    - {id: cooled, from: [mql], to: lead, when: {score_below: 60}}
    - {id: quiet, from: [mql], to: recycled, when: {inactive_for: 30d}}
    - {id: accepted, from: [mql], to: sql, trigger: accepted}
    - {id: rejected, from: [mql, sql], to: recycled, trigger: rejected}
    - {id: opened, from: [sql], to: opportunity, trigger: opportunity}
    - {id: won, from: [sql, opportunity], to: customer, trigger: won}
  teams:
    - id: nordics
      name: Nordics
      manager: {name: Maja Lind, email: maja@vendor.example}
      sellers:
        - {id: erik, name: Erik Holm, email: erik@vendor.example}
        - {id: sara, name: Sara Nyberg, email: sara@vendor.example}
    - id: emea
      name: EMEA
      manager: {name: Tom Becker, email: tom@vendor.example}
      sellers:
        - {id: lena, name: Lena Vogt, email: lena@vendor.example}
        - {id: paul, name: Paul Martin, email: paul@vendor.example}
        - {id: ines, name: Ines Garcia, email: ines@vendor.example}
  assignment:
    stage: mql
    territories:
      - {team: nordics, when: {attribute: country, in: [se, dk]}}
    default_team: emea
    sla: 4h
  actions:
    - id: manager_alert
      trigger: {enter: mql}
      webhook: {url_env: LEADSCORE_TEST_HOOK_URL, format: slack, text: "New MQL {{ lead.name }} for {{ seller.name }}"}
    - id: hot_crossing
      trigger: {crossing: [band, hot]}
      webhook: {url_env: LEADSCORE_TEST_HOOK_URL}
    - id: seller_mail
      trigger: {assigned: true}
      mail:
        to: seller
        subject: "New lead: {{ lead.name }}"
        body: "{{ seller.name }}: {{ lead.name }} ({{ lead.email }}), score {{ lead.score }}. {% for r in reasons %}{{ r.name }}; {% endfor %}"
    - id: escalate
      trigger: {sla_breach: true}
      mail: {to: manager, subject: "Untouched: {{ lead.name }}", body: "{{ seller.name }} has not answered."}
    - id: nurture_mail
      trigger: {enter: recycled}
      mail: {to: lead, subject: "Shall we meet?", body: "Hi {{ lead.first_name }}. {{ unsubscribe_url }}"}
  segments:
    - {id: hot, name: Hot leads, bands: [hot], webhook: {url_env: LEADSCORE_TEST_HOOK_URL}}
    - {id: nurture_b, name: Grade B in nurture, stages: [lead, recycled], grades: [B]}
"""

_ids = itertools.count()


def model() -> ScoringModel:
    return loads_model(MODEL)


def settings(smtp_port: int = 25, **webhook: Any) -> Settings:
    """Settings for tests: fast retries, short timeouts, the test receivers' secret and SMTP port; users'
    Slack URLs may reach the test receivers on the loopback network (as a deployment allows an in-house
    chat server's)."""
    defaults = {"secret": "test-webhook-secret", "timeout_s": 2.0, "total_timeout_s": 4.0}
    return Settings(
        smtp=SmtpSettings(port=smtp_port, timeout_s=2.0),
        webhook=WebhookSettings(**{**defaults, "private_networks": "127.0.0.0/8", **webhook}),
        lifecycle=LifecycleSettings(retry_base_s=0.05, retry_max_s=0.2, max_attempts=100),
    )


def person(
    user: str, *, title: str = "Marketing Manager", country: str = "de", at: int = T0, **traits: Any
) -> dict[str, Any]:
    return {
        "type": "identify",
        "userId": user,
        "messageId": f"id-{user}-{next(_ids)}",
        "timestamp": at,
        "traits": {
            "email": f"{user}@{traits.pop('domain', user + '.example')}",
            "firstName": user.title(),
            "title": title,
            "country": country,
            **traits,
        },
    }


def points(user: str, n: int, at: int = T0 + HOUR) -> list[dict[str, Any]]:
    name = "Plus" if n > 0 else "Minus"
    return [
        {
            "type": "track",
            "event": name,
            "userId": user,
            "messageId": f"ev-{user}-{next(_ids)}",
            "timestamp": at,
        }
        for _ in range(abs(n))
    ]


def send(store: Store, raws: list[dict[str, Any]]) -> None:
    stamp = int(time.time() * 1000)
    msgs = []
    for raw in raws:
        raw = dict(raw)
        if isinstance(raw.get("timestamp"), int):
            raw["timestamp"] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(raw["timestamp"] / 1000)) + "Z"
        msgs.append(normalise(raw, received_ms=stamp))
    ingest(store, msgs, source="test")
