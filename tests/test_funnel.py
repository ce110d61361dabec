"""The funnel simulator (deterministic, propensity rising with the hidden buying state, machine noise as
the model language excludes it) and the learner on it: the rule budget, points that never fall as a
bin's evidence rises, readable names, and the compiled model scoring exactly what the estimator fitted."""

from __future__ import annotations

import numpy as np
import pytest

from leadscore.demo.funnel import (
    BUYING,
    CONVERT,
    DAY,
    DORMANT,
    EVALUATING,
    RESEARCHING,
    START_MS,
    _absorption,
    simulate,
    write,
)
from leadscore.learn.store_data import known_at_cutoffs, store_data
from leadscore.learn.train import learn
from leadscore.scoring.run import score_points
from leadscore.store import Store


def test_same_seed_same_funnel() -> None:
    a, b, c = (
        simulate(leads=120, seed=5, days=60),
        simulate(leads=120, seed=5, days=60),
        simulate(leads=120, seed=6, days=60),
    )
    assert a.messages == b.messages
    assert all((p.states == q.states).all() for p, q in zip(a.people, b.people, strict=True))
    assert a.messages != c.messages


@pytest.mark.parametrize("tier", [0, 1, 2])
@pytest.mark.parametrize("horizon", [4, 30, 90])  # 4 days: the fewest from dormant to converted
def test_true_propensity_rises_with_the_buying_state(tier: int, horizon: int) -> None:
    p = _absorption(tier, horizon)
    for project in (0, 1):
        row = p[project, [DORMANT, RESEARCHING, EVALUATING, BUYING]]
        assert (np.diff(row) > 0).all(), row  # each step up the funnel is nearer to buying
    assert (p[1, :4] > p[0, :4]).all()  # a running buying project makes every state likelier to convert


def test_one_day_propensity_is_the_daily_conversion_chance() -> None:
    # from buying, one day converts with the daily chance; from dormant, nobody converts in a day
    p = _absorption(1, 1)
    assert p[1, BUYING] == pytest.approx(CONVERT[0]) and p[0, BUYING] == pytest.approx(CONVERT[1])
    assert p[1, DORMANT] == 0.0 and p[0, EVALUATING] == 0.0


def test_noise_is_as_the_model_language_excludes_it() -> None:
    funnel = simulate(leads=300, seed=2, days=90)
    delivered = {
        (m["userId"], m["properties"]["email_id"]): ts
        for ts, m in funnel.messages
        if m.get("event") == "Email Delivered"
    }
    opens = [(ts, m) for ts, m in funnel.messages if m.get("event") == "Email Opened"]
    seconds = [(ts - delivered[(m["userId"], m["properties"]["email_id"])]) / 1000 for ts, m in opens]
    assert any(s < 10 for s in seconds) and any(s >= 600 for s in seconds)  # scanners and people
    assert all(p.converted_day is None for p in funnel.people if p.persona != "buyer")
    per_minute: dict[tuple[str, int], int] = {}
    for ts, m in funnel.messages:
        if m["type"] == "page":
            per_minute[(m["userId"], ts // 60_000)] = per_minute.get((m["userId"], ts // 60_000), 0) + 1
    assert max(per_minute.values()) > 10  # bot bursts


def test_learned_model_on_the_funnel(store: Store) -> None:
    funnel = simulate(leads=260, seed=4, days=150)
    write(store, funnel)
    at = [START_MS + d * DAY for d in (60, 80, 100)]
    with store.connect() as conn:
        data, _ = store_data(conn, store.sources(), outcome="opportunity", horizon_ms=40 * DAY, at=at,
                             end_ms=START_MS + 150 * DAY)  # fmt: skip
    # the account's id (kept by ingest among the account's attributes) is never a feature
    assert "account.group_id" not in [f.name for f in data.features]
    assert dict(data.dropped)["account.group_id"].startswith("the account's id")
    result = learn(data, "funnel", challenger=None, holdout="none", max_rules=12, C=1.0, interactions=0,
                   min_class_count=10)  # fmt: skip
    model, sc = result.model, result.scorecard
    rules = [*model.fit, *model.engagement]
    assert 0 < len(rules) <= 12
    assert all("cells:" not in r.name and "p0" not in r.name for r in rules)
    assert any(n in r.name for r in rules for n in ("separate days", "people of the account", "+ in "))
    # points never fall as a bin's evidence (its shrunk conversion log-odds) rises
    for feature, woe, pts in zip(sc.features_, sc.woe_, sc.points_, strict=True):
        for a in range(len(woe)):
            for b in range(len(woe)):
                if woe[a] > woe[b] + 1e-12:
                    assert pts[a] >= pts[b], (feature.name, woe, pts)
    # the compiled model scores every row exactly as the estimator does
    cols = [data.features.index(f) for f in sc.features_]
    expected = dict(zip(zip(data.lead_ids.tolist(), data.as_of.tolist(), strict=True),  # type: ignore[union-attr]
                        sc.score_100(data.X[:, cols]).tolist(), strict=True))  # fmt: skip
    with store.connect() as conn:
        compiled = {
            (lg.lead_id, lg.as_of): lg.score
            for known, group in known_at_cutoffs(conn, store.sources(), list(expected))
            for lg in score_points(conn, model, known, group)
        }
    assert len(compiled) == len(expected) > 300
    assert max(abs(compiled[k] - v) for k, v in expected.items()) < 1e-9
