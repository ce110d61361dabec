"""What counts as an MQL, per named score, in the backtest and the health checks: the two-team store of
``tests/two_teams.py`` (numbers worked out by hand in ``tests/test_web_scores_browser.py``'s docstring).

Its one assignment stage, ``ready``, is shared: core's gates lead there through ``mql_core``, analytics'
through ``mql_analytics``. So the core team's MQLs are the entries into ``ready`` that came through
``mql_core`` (carl, eve, frank), the analytics team's those through ``mql_analytics`` (ann). carl is an MQL
for the core team and not for the analytics team, ann the reverse.

Backtest (period T0 − 1 day to T0 + 1 day: no lead known before it; each lead observed at its day's last
event, T0 + 2 h, T0 + 1 h for bob and dana): replaying the core model as the core team runs the lifecycle
(gates on analytics never hold), lead → mql_core at core ≥ 55 (carl, eve, frank: 55; ann 50, bob 20, dana 0)
then mql_core → ready at grade ≥ B (all three): 3 MQLs. Replaying the analytics model (no lifecycle of its
own) through the primary's, as the analytics team runs it: lead → mql_analytics at analytics ≥ 60 (ann 90,
dana 80), then → ready at ≥ 85 (ann): 1 MQL. (Replayed alone, as before, the analytics model had no
lifecycle: an MQL was its hot band, 70, reached: ann and dana, 2.)

Health (the window of 7 days before T0 + 4 h, capacity 1 a week): volume 3 a week for core, 1 for
analytics (``volume:analytics``).
"""

from __future__ import annotations

import math

import pytest

from leadscore.errors import InputError
from leadscore.learn.backtest import backtest
from leadscore.learn.health import Mqls, checks
from leadscore.learn.labels import DAY_MS
from leadscore.lifecycle.replay import for_score, mql_stage
from leadscore.model import loads_model
from leadscore.settings import AlertSettings, Settings
from leadscore.store import Store
from two_teams import ANALYTICS, CORE, HOUR, T0, build


def _backtest(store: Store, model_text: str, score: str | None) -> tuple[int, set[int]]:
    with store.connect() as conn:
        result = backtest(
            conn, store.sources(), ("candidate", loads_model(model_text), None), None,
            start_ms=T0 - DAY_MS, end_ms=T0 + DAY_MS, outcome="opportunity", horizon_ms=30 * DAY_MS,
            score=score,
        )  # fmt: skip
    return result.candidate.mqls, result.candidate.leads


def test_each_teams_mqls_in_the_backtest(store: Store) -> None:
    ids = build(store)
    assert _backtest(store, CORE, "core") == (3, {ids["carl"], ids["eve"], ids["frank"]})
    assert _backtest(store, CORE, None) == (3, {ids["carl"], ids["eve"], ids["frank"]})  # the primary's
    assert _backtest(store, ANALYTICS, "analytics") == (1, {ids["ann"]})
    with pytest.raises(InputError):
        _backtest(store, ANALYTICS, "Not A Name")


def test_each_teams_mqls_in_the_health_checks(store: Store) -> None:
    ids = build(store)
    lifecycle = loads_model(CORE).lifecycle
    assert lifecycle is not None
    now = T0 + 4 * HOUR
    with store.connect() as conn:
        core = Mqls.of(lifecycle, "core", "core")
        analytics = Mqls.of(lifecycle, "analytics", "core")
        assert (core.stage, analytics.stage) == ("ready", "ready")
        core_leads = sorted(lead for lead, _ in core.entries(conn, now - 7 * DAY_MS, now))
        analytics_leads = sorted(lead for lead, _ in analytics.entries(conn, now - 7 * DAY_MS, now))
        settings = Settings(alerts=AlertSettings(capacity_per_week=1.0))
        found = {c.check: c for c in checks(conn, settings, now)}
    assert core_leads == sorted([ids["carl"], ids["eve"], ids["frank"]])
    assert analytics_leads == [ids["ann"]]
    assert sorted(found) == [
        "acceptance", "calibration", "calibration:analytics", "drift", "drift:analytics", "volume",
        "volume:analytics",
    ]  # fmt: skip
    assert math.isclose(found["volume"].value, 3.0) and found["volume"].failing
    assert math.isclose(found["volume:analytics"].value, 1.0) and found["volume:analytics"].failing is False
    assert found["volume:analytics"].message.startswith("score analytics: MQL volume: 1.0 a week")


def test_a_scores_own_mql_stage() -> None:
    """With a stage per team, each score's MQL stage is its own, and the replayed lifecycle puts it first."""
    text = CORE.replace("assignment: {stage: ready, default_team: sales}",
                        "assignment: {stages: [mql_core, mql_analytics], default_team: sales}")  # fmt: skip
    model = loads_model(text)
    assert model.lifecycle is not None
    assert mql_stage(model.lifecycle) == "mql_core"
    assert mql_stage(model.lifecycle, "analytics", "core") == "mql_analytics"
    assert mql_stage(model.lifecycle, "core", "core") == "mql_core"
    team = for_score(loads_model(ANALYTICS), "analytics", "core", model.lifecycle).lifecycle
    assert team is not None and team.assignment is not None
    assert team.assignment.stage_ids == ("mql_analytics", "mql_core")
    gates = {t.id: t.when.score for t in team.transitions}
    # analytics' gates test the replayed model's score; core's (the primary's) never hold in its replay
    assert gates["analytics_mql"] is None and gates["core_mql"] == "core"


def test_which_lifecycle_a_backtest_replays() -> None:
    """A score no gate names has no stage of its own: its candidate is replayed as any model without a
    lifecycle (the hot band), as before; so is the primary's candidate without a lifecycle (publishing it
    would leave the store without one); a lifecycle whose gates name no score is replayed as written."""
    plain = loads_model(ANALYTICS)
    unnamed_text = CORE.replace("{score: analytics, ", "{").replace("{score: core, ", "{")
    unnamed = loads_model(unnamed_text)
    assert unnamed.lifecycle is not None
    assert for_score(plain, "analytics", "core", unnamed.lifecycle) is plain
    assert for_score(plain, "core", "core", loads_model(CORE).lifecycle) is plain
    assert for_score(unnamed, "core", "core", unnamed.lifecycle) is unnamed
    borrowed = for_score(plain, "analytics", "core", loads_model(CORE).lifecycle).lifecycle
    assert borrowed is not None
    # the primary's lifecycle as the analytics team runs it: its gates on the replayed score, core's never
    assert {t.id: t.when.score for t in borrowed.transitions if t.trigger == "score"} == {
        "core_mql": "core", "analytics_mql": None, "core_ready": "core", "analytics_ready": None,
    }  # fmt: skip


def test_each_teams_alerts_listed_apart(store: Store) -> None:
    """Capacity 0.4 a week: core's 3 MQLs (650 % above) and analytics' 1 (150 % above) are both beyond the
    50 % tolerance, so ``volume`` and ``volume:analytics`` are raised; each score's list holds its own."""
    from typer.testing import CliRunner

    from leadscore.cli.main import app
    from leadscore.learn.health import run_checks
    from leadscore.store.alerts import list_alerts

    build(store)
    run_checks(store, Settings(alerts=AlertSettings(capacity_per_week=0.4)), T0 + 4 * HOUR)
    with store.connect() as conn:
        core = [a["check"] for a in list_alerts(conn, score="core")]
        analytics = [a["check"] for a in list_alerts(conn, score="analytics")]
        everything = [a["check"] for a in list_alerts(conn)]
    assert "volume" in core and not any(":" in c for c in core)
    assert "volume:analytics" in analytics and all(c.endswith(":analytics") for c in analytics)
    assert sorted(everything) == sorted(core + analytics)
    runner = CliRunner()
    listed = runner.invoke(app, ["alerts", "list", "--score", "analytics", "--db", store.url])
    assert listed.exit_code == 0, listed.output
    assert "volume:analytics" in listed.output and "volume " not in listed.output.replace("volume:", "")
    unknown = runner.invoke(app, ["alerts", "list", "--score", "Not A Name", "--db", store.url])
    assert isinstance(unknown.exception, InputError) and "Not A Name" in str(unknown.exception)


def test_the_calibration_check_counts_conversions_as_the_backtest_does(store: Store) -> None:
    """The health check's calibration (the share of MQLs that converted) is the backtest's precision,
    counted alike: per lead at its first MQL, a lead that converted before it left out (not the model's
    doing). core's MQLs are carl, eve and frank (both in the backtest and the stage history, at T0 + 3 h
    at the latest); carl's opportunity came at T0, before; eve's at T0 + 2 days, within 30 days after;
    frank has none, and bob's loss at T0 + 40 days closes every 30-day window. Backtest precision: eve of
    eve and frank, 1/2. The check 31 days on reads the MQLs of the 7 days before its horizon (carl, eve,
    frank): the same 1/2. Before, it counted carl as an MQL that did not convert: 1/3, a 17-point gap
    the backtest never promised, raised as an alert (calibration_gap 0.15)."""
    from leadscore.scoring.pipeline import active_model
    from leadscore.store.backtests import save_backtest
    from leadscore.store.schema import outcomes

    ids = build(store)
    with store.begin() as conn:
        conn.execute(outcomes.insert(), [
            {"lead_id": ids["carl"], "kind": "opportunity", "at_ms": T0, "source": "test", "recorded_ms": T0},
            {"lead_id": ids["eve"], "kind": "opportunity", "at_ms": T0 + 2 * DAY_MS, "source": "test",
             "recorded_ms": T0},
            {"lead_id": ids["bob"], "kind": "lost", "at_ms": T0 + 40 * DAY_MS, "source": "test", "recorded_ms": T0},
        ])  # fmt: skip
    with store.connect() as conn:
        result = backtest(
            conn, store.sources(), ("candidate", loads_model(CORE), None), None,
            start_ms=T0 - DAY_MS, end_ms=T0 + DAY_MS, outcome="opportunity", horizon_ms=30 * DAY_MS,
            score="core",
        )  # fmt: skip
        active = active_model(conn, "core")
    assert active is not None and active.version is not None
    with store.begin() as conn:
        save_backtest(conn, version_id=active.version.id, baseline_id=None, outcome="opportunity",
                      start_ms=T0 - DAY_MS, end_ms=T0 + DAY_MS, threshold=result.candidate.threshold,
                      summary=result.as_dict(), now_ms=T0 + DAY_MS)  # fmt: skip
    settings = Settings(alerts=AlertSettings(min_decisions=2))
    with store.connect() as conn:
        found = {c.check: c for c in checks(conn, settings, T0 + 31 * DAY_MS)}

    assert (result.candidate.converted, result.candidate.labelled, result.candidate.precision) == (1, 2, 0.5)
    assert found["calibration"].value == 0.5
    assert found["calibration"].failing is False
    assert "50 % of 2 MQLs converted (opportunity)" in found["calibration"].message
