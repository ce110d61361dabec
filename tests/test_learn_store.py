"""Learning against the store on both engines: the learned YAML scores exactly as the scorecard does,
labels respect censoring, and a backtest counts MQLs on a hand-made history."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select

from leadscore.ingest.csv_import import ImportOptions, import_leads
from leadscore.ingest.segment import ms_to_iso, normalise
from leadscore.learn.backtest import backtest
from leadscore.learn.dataset import csv_data
from leadscore.learn.labels import DAY_MS, label, outcome_times
from leadscore.learn.scorecard import Scorecard
from leadscore.learn.store_data import LATER, event_features, feature_matrix, store_data
from leadscore.learn.to_model import to_model
from leadscore.model import loads_model
from leadscore.scoring.pipeline import ingest
from leadscore.scoring.run import all_leads, score
from leadscore.store import Store
from leadscore.store.people import find_lead
from leadscore.store.schema import leads, outcomes

FIXTURE = Path(__file__).resolve().parent / "data" / "learn" / "x_education_400.csv"
T0 = 1_714_521_600_000  # 2024-05-01T00:00:00Z


def test_learned_csv_model_scores_like_the_scorecard_through_the_compiled_query(store: Store) -> None:
    data = csv_data(FIXTURE, "Converted", id_column="Prospect ID")
    additive = Scorecard(data.features, min_class_count=20, max_bins=6, min_bin_share=0.03).fit(
        data.X, data.y
    )
    # coarse bins leave 400 rows enough per cell for a pair to carry evidence
    paired = Scorecard(data.features, min_class_count=20, max_bins=3, min_bin_share=0.1, interactions=2).fit(
        data.X, data.y
    )
    assert paired.pairs_ and any(c.points < 0 for c in paired.cells())
    import_leads(store, FIXTURE, ImportOptions(mapping={"Prospect ID": "user_id"}))
    for sc in (additive, paired):
        model = to_model(sc, "x-education")
        with store.connect() as conn:
            external = dict(conn.execute(select(leads.c.id, leads.c.external_id)).all())
            compiled = {
                external[lg.lead_id]: lg.score for lg in score(conn, model, store.sources(), all_leads(T0))
            }
        expected = dict(zip(data.keys, sc.score_100(data.X).tolist(), strict=True))
        assert len(compiled) == len(expected) == 400
        assert max(abs(compiled[k] - v) for k, v in expected.items()) < 1e-9


def _event(user: str, n: int, day: float, **fields: Any) -> dict[str, Any]:
    return {
        "userId": user,
        "messageId": f"{user}-{n}",
        "timestamp": ms_to_iso(int(T0 + day * DAY_MS)),
        **fields,
    }


def _history(store: Store) -> dict[str, int]:
    """ann asks for a demo on day 2 and becomes an opportunity on day 5; carl asks on day 9 and never
    converts; dora asked before the period (day -5); bob only browses (last on day 14)."""
    raw = [
        _event("ann", 1, 0.5, type="identify", traits={"email": "ann@a.example"}),
        _event("ann", 2, 2, type="track", event="Demo Requested"),
        _event("carl", 1, 1, type="identify", traits={"email": "carl@c.example"}),
        _event("carl", 2, 9, type="track", event="Demo Requested"),
        _event("dora", 1, -6, type="identify", traits={"email": "dora@d.example"}),
        _event("dora", 2, -5, type="track", event="Demo Requested"),
        _event("bob", 1, 1, type="identify", traits={"email": "bob@b.example"}),
        _event("bob", 2, 14, type="page", properties={"path": "/blog/x"}),
    ]
    ingest(store, [normalise(m, received_ms=T0 + 20 * DAY_MS) for m in raw], source="test")
    with store.begin() as conn:
        ids = {u: find_lead(conn, external_id=u) for u in ("ann", "bob", "carl", "dora")}
        conn.execute(insert(outcomes), [{"lead_id": ids["ann"], "kind": "opportunity", "at_ms": T0 + 5 * DAY_MS,
                                         "source": "test", "recorded_ms": T0}])  # fmt: skip
    return {k: int(v) for k, v in ids.items() if v is not None}


DEMO_MODEL = """
model: demo-only
engagement:
  - id: demo
    name: Requested a demo
    kind: once
    event: {type: track, name: Demo Requested}
    points: 100
"""


def test_backtest_counts_mqls_on_a_hand_made_history(store: Store) -> None:
    _history(store)
    model = loads_model(DEMO_MODEL)  # a demo request gives 50 score points (engagement weight ½)
    with store.connect() as conn:
        bt = backtest(conn, store.sources(), ("candidate", model, 40.0), ("baseline", model, 60.0),
                      start_ms=T0, end_ms=T0 + 14 * DAY_MS, outcome="opportunity", horizon_ms=3 * DAY_MS,
                      per_week=1, precision=0.5)  # fmt: skip
    c = bt.candidate
    # ann (day 2, week 1) and carl (day 9, week 2) cross 40; dora was above it before the period
    assert (c.mqls, c.already_mql, c.weekly) == (2, 1, [1, 1])
    # ann converted 3 days after her MQL; carl's 3 days passed (day 12 ≤ day 14) without a conversion
    assert (c.converted, c.labelled, c.precision) == (1, 2, 0.5)
    assert c.recall == 1.0  # the one conversion in the period (ann) was an MQL first
    assert c.median_days_to_mql == pytest.approx((1.5 + 8) / 2)  # identified on day 0.5 and day 1
    assert (bt.baseline.mqls if bt.baseline else None, bt.gained, bt.lost, bt.gained_converted) == (
        0,
        2,
        0,
        1,
    )
    # threshold 0 also makes bob an MQL (1.5 a week, precision ⅓); from 1 on, ann and carl: 1 a week, ½
    assert (bt.advice.capacity_threshold, bt.advice.capacity_mqls_per_week) == (1.0, 1.0)
    assert (bt.advice.precision_threshold, bt.advice.precision_reached) == (1.0, 0.5)


def test_labels_leave_out_censored_and_converted_rows(store: Store) -> None:
    ids = _history(store)
    with store.connect() as conn:
        history = outcome_times(conn)
    pairs = [(ids["ann"], T0 + DAY_MS), (ids["ann"], T0 + 6 * DAY_MS), (ids["bob"], T0 + DAY_MS),
             (ids["bob"], T0 + 12 * DAY_MS), (ids["carl"], T0 + DAY_MS)]  # fmt: skip
    labels = label(pairs, history, "opportunity", 7 * DAY_MS, T0 + 14 * DAY_MS)
    # ann on day 1: opportunity on day 5 (within 7 days) → 1; ann on day 6: already converted;
    # bob and carl on day 1: 7 days passed by day 14 → 0; bob on day 12: window open until day 19 → censored
    assert labels.pairs == [(ids["ann"], T0 + DAY_MS), (ids["bob"], T0 + DAY_MS), (ids["carl"], T0 + DAY_MS)]
    assert labels.y == [1, 0, 0]
    assert (labels.censored, labels.already_converted, labels.closed) == (1, 1, 0)


def test_point_in_time_rows_use_identities_as_known_at_the_cutoff(store: Store) -> None:
    # a visitor reads /pricing on days 1 and 2 and signs in as ann on day 10: on day 5 those visits were
    # an anonymous visitor's, not ann's; on day 12 they are ann's
    raw = [
        {"type": "page", "anonymousId": "v1", "messageId": "v-1", "properties": {"path": "/pricing"},
         "timestamp": ms_to_iso(T0 + 1 * DAY_MS)},
        {"type": "page", "anonymousId": "v1", "messageId": "v-2", "properties": {"path": "/pricing"},
         "timestamp": ms_to_iso(T0 + 2 * DAY_MS)},
        {"type": "identify", "userId": "ann", "anonymousId": "v1", "messageId": "v-3",
         "traits": {"email": "ann@a.example"}, "timestamp": ms_to_iso(T0 + 10 * DAY_MS)},
    ]  # fmt: skip
    ingest(store, [normalise(m, received_ms=T0 + 20 * DAY_MS) for m in raw], source="test")
    with store.connect() as conn:
        ann = find_lead(conn, external_id="ann")
        assert ann is not None
        features = [f for f in event_features(conn) if f.name == "/pricing pages (30d)"]
        X = feature_matrix(conn, store.sources(), features, [(ann, T0 + 5 * DAY_MS), (ann, T0 + 12 * DAY_MS)])
    assert X[:, 0].tolist() == [0, 2]


def test_an_event_kind_only_rows_left_out_had_is_learned_without_a_crash(store: Store) -> None:
    # x attends five webinars on day 1 and is an opportunity on day 2: left out at the day-10 cutoff
    # (already converted), so no labelled row has ever attended one; u0-u2 convert on day 15
    raw = [_event(u, 1, 1, type="track", event="Visited") for u in ("u0", "u1", "u2", "u3", "u4", "u5", "x")]
    raw += [_event("x", n, 1, type="track", event="Webinar") for n in range(2, 7)]
    ingest(store, [normalise(m, received_ms=T0 + 60 * DAY_MS) for m in raw], source="test")
    with store.begin() as conn:
        ids = {u: find_lead(conn, external_id=u) for u in ("u0", "u1", "u2", "x")}
        conn.execute(insert(outcomes), [
            {"lead_id": ids[u], "kind": "opportunity", "at_ms": T0 + day * DAY_MS, "source": "test", "recorded_ms": T0}
            for u, day in (("x", 2), ("u0", 15), ("u1", 15), ("u2", 15))
        ])  # fmt: skip
    with store.connect() as conn:
        data, labels = store_data(conn, store.sources(), outcome="opportunity", horizon_ms=30 * DAY_MS,
                                  at=[T0 + 10 * DAY_MS], end_ms=T0 + 60 * DAY_MS)  # fmt: skip
    assert (labels.already_converted, sorted(labels.y)) == (1, [0, 0, 0, 1, 1, 1])
    names = [f.name for f in data.features]
    assert "Webinar: days since last" in names
    sc = Scorecard(data.features, min_class_count=1, C=1.0).fit(data.X, data.y)
    recency = sc.bins_[names.index("Webinar: days since last")]
    assert recency.edges == () and recency.counts == (6,) and recency.missing == 0


def test_point_in_time_rows_use_attributes_as_known_at_the_cutoff(store: Store) -> None:
    # ann identifies as a student on day 1 and as a marketing VP on day 20; bob's title comes only from
    # an identify on day 20; cy identifies on day 1 with an industry, no title (``title`` is stored as
    # ``job_title``). At the day-10 cutoff ann was a
    # student and bob had no title; at day 25 both are VPs. Her industry, set on day 1 and never
    # changed, is known at both cutoffs.
    raw = [
        _event("ann", 1, 1, type="identify", traits={"title": "Student", "industry": "Retail"}),
        _event("bob", 1, 1, type="track", event="Visited"),
        _event("cy", 1, 1, type="identify", traits={"industry": "Software"}),
        _event("ann", 2, 20, type="identify", traits={"title": "VP Marketing"}),
        _event("bob", 2, 20, type="identify", traits={"title": "VP Marketing"}),
        _event("cy", 2, 30, type="identify", traits={"budget": "50k"}),
    ]
    ingest(store, [normalise(m, received_ms=T0 + 60 * DAY_MS) for m in raw], source="test")
    with store.begin() as conn:
        ids = {u: find_lead(conn, external_id=u) for u in ("ann", "bob", "cy")}
        conn.execute(insert(outcomes), [
            {"lead_id": ids["ann"], "kind": "opportunity", "at_ms": T0 + 50 * DAY_MS, "source": "test",
             "recorded_ms": T0}
        ])  # fmt: skip
    with store.connect() as conn:
        data, _ = store_data(conn, store.sources(), outcome="opportunity", horizon_ms=60 * DAY_MS,
                             at=[T0 + 10 * DAY_MS, T0 + 25 * DAY_MS], end_ms=T0 + 90 * DAY_MS)  # fmt: skip
    names = [f.name for f in data.features]
    rows = {(key, int(at)): row for key, at, row in zip(data.keys, data.as_of, data.X, strict=True)}
    lead_key = {u: f"lead:{ids[u]}" for u in ids}
    title = names.index("job_title")
    day10, day25 = T0 + 10 * DAY_MS, T0 + 25 * DAY_MS
    assert rows[(lead_key["ann"], day10)][title] == "Student"
    assert rows[(lead_key["ann"], day25)][title] == "VP Marketing"
    assert rows[(lead_key["bob"], day10)][title] is None
    assert rows[(lead_key["bob"], day25)][title] == "VP Marketing"
    assert rows[(lead_key["cy"], day10)][title] is None
    industry = names.index("industry")
    assert [rows[(lead_key["ann"], at)][industry] for at in (day10, day25)] == ["Retail", "Retail"]
    # cy's budget, first seen on day 30, is known at no cutoff: left out, and said so
    assert "budget" not in names and ("budget", LATER) in data.dropped
    with store.connect() as conn:  # and naming it in --exclude is not a misspelling
        excluded, _ = store_data(conn, store.sources(), outcome="opportunity", horizon_ms=60 * DAY_MS,
                                 at=[day10, day25], end_ms=T0 + 90 * DAY_MS, exclude=["budget"])  # fmt: skip
    assert ("budget", "excluded (outcome or sales-entered)") in excluded.dropped
