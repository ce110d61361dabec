"""Health checks of every named score's active model, run on a schedule (the lifecycle runner's ``checks``
hook, or ``leadscore alerts check``), raising alerts that are delivered through the outbox.

* **drift**: PSI (``metrics.psi``, the one implementation ``evaluate`` uses too) of the scores the active
  version gave on events in the last window against those of the window before;
* **calibration**: the share of MQLs (entries into the MQL stage) of the window ending one horizon ago
  that converted within the horizon, against the precision the version's latest stored backtest promised;
* **volume**: MQLs per week in the last window against the sales capacity target;
* **acceptance**: acceptance by sales in the last window against the window before.

Drift, calibration and volume are checked per named score: its active version, its MQLs (``Mqls``: the
score's MQL stage in the primary's lifecycle, the backtest's, and the entries that count for the score),
each alert named ``volume:NAME`` and so on for a score other than the primary.

A check without enough data says nothing. A failing check raises one alert, which stays open (and is
not raised again) until the check passes; raising enqueues an ``alert`` row per mail address and for the
webhook, which the ``Deliverer`` sends like every other notification.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import Connection, select

from leadscore.errors import ModelError
from leadscore.learn.labels import DAY_MS, first_conversions, mql_converted, outcome_times
from leadscore.lifecycle.actions import iso
from leadscore.lifecycle.decisions import mql_decisions
from leadscore.lifecycle.replay import mql_stage
from leadscore.lifecycle.score_stages import ScoreView
from leadscore.model import Lifecycle
from leadscore.scoring.pipeline import active_models
from leadscore.settings import Settings
from leadscore.store import Store
from leadscore.store.alerts import check_name, clear_alert, open_alerts, raise_alert
from leadscore.store.backtests import backtests_of
from leadscore.store.outbox import enqueue
from leadscore.store.schema import score_history, stage_history
from leadscore.store.score_names import primary_score

WEEK_MS = 7 * DAY_MS


@dataclass(frozen=True)
class Check:
    check: str
    failing: bool | None  # None: not enough data to say
    value: float
    threshold: float
    message: str


def drift(conn: Connection, version_id: int, settings: Settings, now_ms: int) -> Check:
    a = settings.alerts
    w = int(a.window_days * DAY_MS)
    # one score per lead and window: its last event-caused score there (history has a row at every event
    # time, so counting rows would weigh each lead by how many events it had)
    rows = conn.execute(
        select(score_history.c.lead_id, score_history.c.at_ms, score_history.c.score)
        .where(
            score_history.c.model_version_id == version_id,
            score_history.c.cause == "event",
            score_history.c.at_ms >= now_ms - 2 * w,
            score_history.c.at_ms < now_ms,
        )
        .order_by(score_history.c.at_ms, score_history.c.id)
    ).all()
    last: tuple[dict[int, float], dict[int, float]] = ({}, {})
    for lead_id, t, score in rows:
        last[int(t >= now_ms - w)][int(lead_id)] = float(score)
    before, recent = list(last[0].values()), list(last[1].values())
    if len(before) < a.min_scores or len(recent) < a.min_scores:
        return Check("drift", None, math.nan, a.drift_psi, "too few scores to measure drift")
    from leadscore.learn import metrics  # scipy: only when there is drift to measure

    psi = metrics.psi(before, recent)
    return Check("drift", psi >= a.drift_psi, psi, a.drift_psi,
                 f"score drift: PSI {psi:.3f} between the last {a.window_days:g} days and the "
                 f"{a.window_days:g} before ({len(recent)} and {len(before)} scores; alert at {a.drift_psi:g})")  # fmt: skip


@dataclass(frozen=True)
class Mqls:
    """What counts as a score's MQL: an entry into its MQL stage (``replay.mql_stage``, the backtest's)
    that counts for the score (``score_stages.ScoreView.counted``: a shared hand-off stage counts the leads
    that came through the score's own stages)."""

    stage: str
    view: ScoreView

    @classmethod
    def of(cls, lifecycle: Lifecycle, score: str, primary: str) -> Mqls:
        return cls(mql_stage(lifecycle, score, primary), ScoreView.of(lifecycle, score, primary))

    def entries(self, conn: Connection, start_ms: int, end_ms: int) -> list[tuple[int, int]]:
        """(lead, time) of each MQL in [start, end)."""
        query = select(stage_history.c.lead_id, stage_history.c.at_ms).where(
            stage_history.c.to_stage == self.stage,
            stage_history.c.at_ms >= start_ms,
            stage_history.c.at_ms < end_ms,
        )
        found = [(int(lead), int(at)) for lead, at in conn.execute(query)]
        if self.view.whole or self.stage in self.view.own or not found:
            return found
        # a shared stage: each entry counts by the lead's path through the stages before it
        paths = conn.execute(
            select(stage_history.c.lead_id, stage_history.c.to_stage, stage_history.c.at_ms)
            .where(stage_history.c.lead_id.in_(sorted({lead for lead, _ in found})))
            .order_by(stage_history.c.lead_id, stage_history.c.at_ms, stage_history.c.id)
        ).all()
        counted: set[tuple[int, int]] = set()
        for lead, rows in itertools.groupby(paths, key=lambda r: int(r[0])):
            moves = [(str(to), int(at)) for _, to, at in rows]
            for (to, at), counts in zip(moves, self.view.counted([to for to, _ in moves]), strict=True):
                if counts and to == self.stage:
                    counted.add((lead, at))
        return [entry for entry in found if entry in counted]


def volume(conn: Connection, mqls: Mqls, settings: Settings, now_ms: int) -> Check:
    a = settings.alerts
    if a.capacity_per_week is None:
        return Check("volume", None, math.nan, math.nan, "no capacity target set")
    w = int(a.window_days * DAY_MS)
    rate = len(mqls.entries(conn, now_ms - w, now_ms)) / (w / WEEK_MS)
    off = abs(rate - a.capacity_per_week) / a.capacity_per_week
    side = "above" if rate > a.capacity_per_week else "below"
    return Check("volume", off > a.capacity_tolerance, rate, a.capacity_per_week,
                 f"MQL volume: {rate:.1f} a week, {100 * off:.0f} % {side} the capacity of "
                 f"{a.capacity_per_week:g} (alert beyond {100 * a.capacity_tolerance:.0f} %)")  # fmt: skip


def acceptance(conn: Connection, settings: Settings, now_ms: int) -> Check:
    a = settings.alerts
    w = int(a.window_days * DAY_MS)
    rows = [(d["at_ms"], d["decision"]) for d in mql_decisions(conn, now_ms - 2 * w, now_ms)]
    before = [d == "accepted" for t, d in rows if t < now_ms - w]
    recent = [d == "accepted" for t, d in rows if t >= now_ms - w]
    if len(before) < a.min_decisions or len(recent) < a.min_decisions:
        return Check("acceptance", None, math.nan, a.acceptance_drop, "too few sales decisions")
    was, now = sum(before) / len(before), sum(recent) / len(recent)
    return Check("acceptance", was - now >= a.acceptance_drop, now, was - a.acceptance_drop,
                 f"acceptance by sales fell from {100 * was:.0f} % to {100 * now:.0f} % "
                 f"({len(recent)} decisions in the last {a.window_days:g} days)")  # fmt: skip


def calibration(conn: Connection, version_id: int, mqls: Mqls, settings: Settings, now_ms: int) -> Check:
    a = settings.alerts
    stored = backtests_of(conn, version_id)
    promised = stored[-1].summary.get("candidate", {}).get("precision") if stored else None
    if promised is None:
        return Check("calibration", None, math.nan, math.nan, "no stored backtest of the active version")
    kind, horizon = stored[-1].outcome, int(float(stored[-1].summary.get("horizon_days", 30)) * DAY_MS)
    w = int(a.window_days * DAY_MS)
    # each lead at its first MQL of the window, counted as the backtest's precision counts it
    first: dict[int, int] = {}
    for lead, at in sorted(mqls.entries(conn, now_ms - horizon - w, now_ms - horizon), key=lambda e: e[1]):
        first.setdefault(lead, at)
    converted = first_conversions(outcome_times(conn, sorted(first)), kind)
    verdicts = [mql_converted(converted.get(lead), at, horizon, now_ms) for lead, at in first.items()]
    counted = [v for v in verdicts if v is not None]
    if len(counted) < a.min_decisions:
        return Check("calibration", None, math.nan, float(promised), "too few MQLs past their horizon")
    seen = sum(counted) / len(counted)
    return Check("calibration", float(promised) - seen >= a.calibration_gap, seen, float(promised),
                 f"calibration: {100 * seen:.0f} % of {len(counted)} MQLs converted ({kind}), the backtest "
                 f"promised {100 * float(promised):.0f} %")  # fmt: skip


def checks(conn: Connection, settings: Settings, now_ms: int) -> list[Check]:
    """Every check of every named score's active model (none without one): drift, volume and calibration
    per score, on its own version and its own MQLs (``Mqls``), acceptance by sales once. The primary's
    checks are named ``drift``, ``volume``, ``calibration``; another score's ``volume:NAME`` and so on."""
    actives = [a for a in active_models(conn) if a.version is not None]
    if not actives:
        return []
    primary = primary_score(conn)
    shared = next((a.model.lifecycle for a in actives if a.version and a.version.score_name == primary), None)
    drifts: list[Check] = []
    per_score: list[Check] = []
    for active in actives:
        assert active.version is not None
        score = active.version.score_name
        found = [drift(conn, active.version.id, settings, now_ms)]
        if shared is not None:
            try:
                mqls = Mqls.of(shared, score, primary)
            except ModelError as exc:  # no stage hands this score's leads to sales: no MQLs to check
                found += [Check(c, None, math.nan, math.nan, str(exc)) for c in ("volume", "calibration")]
            else:
                found += [
                    volume(conn, mqls, settings, now_ms),
                    calibration(conn, active.version.id, mqls, settings, now_ms),
                ]
        if score != primary:
            found = [
                replace(c, check=check_name(c.check, score, primary), message=f"score {score}: {c.message}")
                for c in found
            ]
        drifts += found[:1]
        per_score += found[1:]
    return [*drifts, acceptance(conn, settings, now_ms), *per_score]


def _notifications(alert_id: int, check: Check, settings: Settings, now_ms: int) -> list[dict[str, Any]]:
    text = f"leadscore alert ({check.check}): {check.message}"
    rows: list[dict[str, Any]] = [
        {"key": f"alert:{alert_id}:mail:{to}", "channel": "mail", "action": "alert", "lead_id": None,
         "target": to, "payload": {"to": to, "subject": f"leadscore alert: {check.check}",
                                   "body": f"{text}\nRaised {iso(now_ms)}. Review the model: "
                                           f"{settings.lifecycle.public_url}/review\n",
                                   "to_lead": False, "unsubscribe_url": ""}}
        for to in settings.alerts.mail_to
    ]  # fmt: skip
    if settings.alerts.webhook_url:
        rows.append({"key": f"alert:{alert_id}:webhook", "channel": "webhook", "action": "alert",
                     "lead_id": None, "target": settings.alerts.webhook_url,
                     "payload": {"body": {"text": text}, "event": "alert.raised"}})  # fmt: skip
    return rows


@dataclass
class CheckRun:
    checks: list[Check]
    raised: list[int]
    cleared: list[int]


def run_checks(store: Store, settings: Settings, now_ms: int) -> CheckRun:
    """Run every check; raise (and enqueue) an alert for a failing check that has none open, clear the
    open alert of a check that passes."""
    with store.begin() as conn:
        found = checks(conn, settings, now_ms)
        opened = open_alerts(conn)
        raised, cleared = [], []
        for check in found:
            current = opened.get(check.check)
            if check.failing and current is None:
                value = check.value if math.isfinite(check.value) else 0.0
                threshold = check.threshold if math.isfinite(check.threshold) else 0.0
                alert_id = raise_alert(conn, check.check, value, threshold, check.message, now_ms)
                enqueue(conn, _notifications(alert_id, check, settings, now_ms), now_ms)
                raised.append(alert_id)
            elif check.failing is False and current is not None:
                clear_alert(conn, int(current["id"]), now_ms)
                cleared.append(int(current["id"]))
    return CheckRun(found, raised, cleared)
