"""Health alerts: a shifted event mix raises exactly one drift alert, delivered by mail and to a
Slack-compatible webhook through the outbox, and not raised again while it lasts (both engines)."""

from __future__ import annotations

import math
import time
from typing import Any

import pytest
from sqlalchemy import func, select

from leadscore.ingest.segment import normalise
from leadscore.learn.health import run_checks
from leadscore.learn.labels import DAY_MS
from leadscore.lifecycle.outbox import deliver_due
from leadscore.lifecycle.runner import run_round
from leadscore.model import loads_model
from leadscore.scoring.pipeline import ingest, publish
from leadscore.settings import AlertSettings, Settings
from leadscore.store import Store
from leadscore.store.alerts import list_alerts
from leadscore.store.schema import outbox
from lifecycle_model import DAY, HOUR, T0, person, points, send
from lifecycle_model import model as lifecycle_model
from lifecycle_model import settings as lifecycle_settings
from receivers import smtp_server, webhook_receiver

NOW = 1_717_200_000_000
MODEL = """
model: drifting
engagement:
  - {id: plus, name: Showed interest, event: {type: track, name: Plus}, points: 1, half_life: none}
  - {id: demo, name: Asked for a demo, event: {type: track, name: Demo}, points: 10, half_life: none}
scale: {weights: {fit: 0, engagement: 1}, bands: {hot: 60, warm: 40}}
"""


def _iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + "Z"


def _lead(store: Store, user: str, plus: int, demo: int, at: int) -> None:
    raws: list[dict[str, Any]] = [
        {"type": "track", "event": name, "userId": user, "messageId": f"{user}-{name}-{i}",
         "timestamp": _iso(at + i * 60_000)}
        for name, n in (("Plus", plus), ("Demo", demo)) for i in range(n)
    ]  # fmt: skip
    ingest(store, [normalise(r, received_ms=NOW) for r in raws], source="test")


def _settings(port: int, hook: str) -> Settings:
    base = lifecycle_settings(smtp_port=port)
    alerts = AlertSettings(mail_to=["ops@vendor.example"], webhook_url=f"{hook}/alerts", min_scores=10)
    return Settings(smtp=base.smtp, webhook=base.webhook, lifecycle=base.lifecycle, alerts=alerts)


def test_a_shifted_event_mix_raises_one_drift_alert(store: Store) -> None:
    publish(store, loads_model(MODEL))
    # the week before last: ten leads with 1..10 interest events (scores 1..10); last week ten others who
    # also asked for a demo (scores 11..20)
    for i in range(1, 11):
        _lead(store, f"early{i}", i, 0, NOW - 10 * DAY_MS)
        _lead(store, f"late{i}", i, 1, NOW - 2 * DAY_MS)
    with webhook_receiver() as hook, smtp_server() as (mailbox, port):
        settings = _settings(port, hook.url)
        first = run_checks(store, settings, NOW)
        # PSI over the deciles of 1..10: each holds one early score (share (1 + ½)/(10 + 5) = 0.1 with
        # the half-observation prior); every late score lands in the top one ((10 + ½)/15 = 0.7, the
        # other nine ½/15 = 1/30): 9 × (1/30 − 0.1) ln(1/3) + 0.6 ln 7 = 0.6 ln 3 + 0.6 ln 7 = 0.6 ln 21
        drift = next(c for c in first.checks if c.check == "drift")
        assert drift.value == pytest.approx(0.6 * math.log(21))
        # no capacity target, no sales decisions, no lifecycle: the other checks say nothing
        assert [c.check for c in first.checks if c.failing is not None] == ["drift"]
        assert len(first.raised) == 1
        again = run_checks(store, settings, NOW + 3_600_000)
        assert (again.raised, again.cleared) == ([], [])
        with store.connect() as conn:
            assert conn.execute(select(func.count()).select_from(outbox)).scalar_one() == 2
            [alert] = list_alerts(conn)
        assert (alert["check"], alert["cleared_ms"]) == ("drift", None)
        stats = deliver_due(store, settings, None)
        assert (stats.sent, stats.failed) == (2, 0)
        [mail] = mailbox.to("ops@vendor.example")
        assert mail["Subject"] == "leadscore alert: drift"
        [delivery] = hook.hooks.processed.values()
        assert delivery["path"] == "/alerts"
        assert delivery["body"]["text"].startswith("leadscore alert (drift): score drift: PSI 1.827")


def test_a_volume_alert_clears_when_the_check_passes_and_is_raised_anew(store: Store) -> None:
    publish(store, lifecycle_model())
    # three marketing managers (grade B) with 60 points: the runner moves each into mql at T
    at = T0 + DAY
    send(store, [m for u in ("ann", "bob", "cy") for m in (person(u, at=at), *points(u, 60, at=at + HOUR))])
    run_round(store, lifecycle_settings(), now_ms=at + 2 * HOUR, deliver=False)
    now = at + 3 * HOUR

    def check(capacity: float) -> Any:
        alerts = AlertSettings(capacity_per_week=capacity, capacity_tolerance=0.5)
        return run_checks(store, Settings(alerts=alerts), now)

    # 3 MQLs in the last 7 days = 3 a week; against a capacity of 1: 200 % above (beyond 50 %)
    first = check(1)
    volume = next(c for c in first.checks if c.check == "volume")
    assert (volume.failing, volume.value) == (True, 3.0)
    assert len(first.raised) == 1
    assert check(1).raised == []  # still failing: the open alert is not raised again
    # against a capacity of 2.5: 20 % above, within 50 %: the alert clears
    cleared = check(2.5)
    assert (cleared.raised, cleared.cleared) == ([], first.raised)
    again = check(1)  # failing again: a new alert
    assert len(again.raised) == 1 and again.raised != first.raised
    with store.connect() as conn:
        assert [(a["check"], a["cleared_ms"] is None) for a in list_alerts(conn)] == [
            ("volume", True),
            ("volume", False),
        ]
