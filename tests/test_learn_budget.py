"""Ratio features (the last window against the one before) as the model language's ratio rules, and the
candidate chosen by time-forward cross-validation within the rule budget."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from leadscore.ingest.segment import ms_to_iso, normalise
from leadscore.learn.budget import folds
from leadscore.learn.dataset import Dataset
from leadscore.learn.features import EventCount, EventRatio, Feature, family
from leadscore.learn.labels import DAY_MS
from leadscore.learn.scorecard import Scorecard
from leadscore.learn.store_data import event_features, event_kinds, feature_matrix, known_at_cutoffs
from leadscore.learn.to_model import to_model
from leadscore.learn.train import learn
from leadscore.scoring.pipeline import ingest
from leadscore.scoring.run import score_points
from leadscore.store import Store
from leadscore.store.people import find_lead

T0 = 1_714_521_600_000  # 2024-05-01T00:00:00Z
CUTOFF = T0 + 30 * DAY_MS  # the last 14 days are days 16-30, the 14 before them days 2-16


@pytest.mark.parametrize(
    ("recent", "before", "value"),
    [
        (0, 0, None),  # nothing in either window: missing (no drop, no growth)
        (3, 1, 2.0),  # 3 >= 2 x 1, 3 < 4 x 1
        (1, 0, 4.0),  # from nothing to something: every factor holds
        (0, 2, 0.0),  # nothing recent: no factor holds
        (1, 4, 0.25),  # 1 >= 0.25 x 4, 1 < 0.5 x 4
        (1, 5, 0.0),  # 1 < 0.25 x 5 = 1.25
        (2, 2, 1.0),
    ],
)
def test_a_ratio_is_the_largest_factor_its_growth_test_meets(recent: int, before: int, value: float) -> None:
    assert EventRatio.value(recent, before) == value


# (days of Pricing Viewed, converted out of 10 copies): the last fortnight against the one before
PATTERNS: dict[str, tuple[tuple[float, ...], int]] = {
    "rise": ((5, 20, 25, 28), 9),  # 3 recent, 1 before: 2
    "new": ((29,), 9),  # 1 recent, 0 before: 4
    "same": ((5, 10, 20, 25), 9),  # 2 and 2: 1
    "gone": ((5, 10), 1),  # 0 recent, 2 before: 0
    "cooling": ((3, 6, 9, 12, 20), 1),  # 1 recent, 4 before: 0.25
    "never": ((), 0),  # only a sign-up on day 1: missing
}


def _ratio_history(store: Store) -> tuple[list[tuple[int, int]], list[float | None], list[int]]:
    raw: list[dict[str, Any]] = []
    for name, (days, _) in PATTERNS.items():
        for copy in range(10):
            user = f"{name}{copy}"
            raw.append({"type": "identify", "userId": user, "messageId": f"{user}-0", "traits": {"email": f"{user}@x.example"},
                        "timestamp": ms_to_iso(T0 + DAY_MS)})  # fmt: skip
            raw += [{"type": "track", "event": "Pricing Viewed", "userId": user, "messageId": f"{user}-{n}",
                     "timestamp": ms_to_iso(int(T0 + day * DAY_MS))} for n, day in enumerate(days, start=1)]  # fmt: skip
    ingest(store, [normalise(m, received_ms=T0 + 40 * DAY_MS) for m in raw], source="test")
    values = {"rise": 2.0, "new": 4.0, "same": 1.0, "gone": 0.0, "cooling": 0.25, "never": None}
    pairs, expected, y = [], [], []
    with store.connect() as conn:
        for name, (_, converted) in PATTERNS.items():
            for copy in range(10):
                lead = find_lead(conn, external_id=f"{name}{copy}")
                assert lead is not None
                pairs.append((lead, CUTOFF))
                expected.append(values[name])
                y.append(int(copy < converted))
    return pairs, expected, y


def test_a_learned_ratio_is_written_as_ratio_rules_that_score_as_the_estimator(store: Store) -> None:
    pairs, expected, y = _ratio_history(store)
    with store.connect() as conn:
        ratios = [f for f in event_features(conn) if isinstance(f.source, EventRatio)]
        assert [f.name for f in ratios] == ["Pricing Viewed: last 14d against the 14d before"]
        X = feature_matrix(conn, store.sources(), ratios, pairs)
    assert X[:, 0].tolist() == expected
    sc = Scorecard(ratios, min_class_count=1, C=1.0, min_bin_share=0.05).fit(X, np.asarray(y))
    model = to_model(sc, "ratio")
    rules = {r.kind: r for r in model.engagement}
    # growth (1, 2, 4: 27 of 30 converted) against a drop (0, 0.25: 2 of 20) is one edge, at factor 1;
    # below it, any event in the 28 days against none (0 of 10)
    assert sorted(rules) == ["ratio", "threshold"] and len(model.engagement) == 2
    assert (rules["ratio"].at_least, rules["ratio"].within) == (1.0, "14d")  # type: ignore[union-attr]
    assert rules["ratio"].name == "Pricing Viewed: as many in the last 14 days as in the 14 before"
    assert (rules["threshold"].at_least, rules["threshold"].within) == (1, "28d")  # type: ignore[union-attr]
    assert rules["threshold"].name == "Pricing Viewed in the last 28 days"
    assert rules["ratio"].points > 0 and rules["threshold"].points > 0
    with store.connect() as conn:
        compiled = {
            (lg.lead_id, lg.as_of): lg.score
            for known, group in known_at_cutoffs(conn, store.sources(), pairs)
            for lg in score_points(conn, model, known, group)
        }
    estimated = sc.score_100(X)
    assert max(abs(compiled[p] - e) for p, e in zip(pairs, estimated, strict=True)) < 1e-9
    # three levels: none 0, a drop the threshold's points, growth all 100
    assert sorted({round(float(e), 6) for e in estimated}) == [
        0.0,
        round(100 * rules["threshold"].points / (rules["threshold"].points + rules["ratio"].points), 6),
        100.0,
    ]


def test_time_forward_folds_train_on_earlier_rows_of_other_leads() -> None:
    keys = [f"lead:{i}" for i in range(40)]
    times = np.asarray([float(c) for c in range(5) for _ in range(8)])  # 8 rows at each of 5 cutoffs
    split, how = folds(times, keys)
    assert how.startswith("time-forward cross-validation (3 folds")
    for k, (train, val) in enumerate(split):
        start = k + 2  # the last three cutoffs (2, 3, 4) start the folds
        assert val.any() and times[val].min() == start and times[val].max() == start  # one cutoff each
        assert times[train].max() < start  # trained only on earlier rows
        assert not {keys[i] for i in np.flatnonzero(train)} & {keys[i] for i in np.flatnonzero(val)}
    no_times, how = folds(None, keys)
    assert how.startswith("3-fold cross-validation by a hash of the id")
    # every row is validated exactly once
    assert (np.sum([v for _, v in no_times], axis=0) == 1).all()


def test_learn_chooses_its_candidate_time_forward_and_says_so() -> None:
    # 6 cutoffs x 300 leads; the outcome follows a count (events) while a second count is noise
    rng = np.random.default_rng(3)
    n = 1800
    signal = rng.poisson(2.0, n)
    noise = rng.poisson(2.0, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-(signal - 3.0)))).astype(np.int64)
    features = (
        Feature("demo (30d)", "numeric", EventCount({"type": "track", "name": "Demo"}, "30d", label="demo")),
        Feature("blog (30d)", "numeric", EventCount({"type": "page"}, "30d", distinct="day", label="blog")),
    )
    assert [family(f) for f in features] == ["counts", "distinct days"]
    data = Dataset(features, np.column_stack([signal, noise]).astype(object), y,
                   tuple(f"lead:{i % 300}" for i in range(n)), lead_ids=np.arange(n) % 300,
                   as_of=np.repeat(np.arange(6) * 14 * DAY_MS, 300))  # fmt: skip
    result = learn(data, "x", challenger=None, C=1.0, interactions=0, max_rules=3, min_class_count=10)
    assert result.choice.startswith("candidate chosen by time-forward cross-validation (3 folds")
    assert len(result.model.engagement) <= 3
    assert result.as_dict()["choice"] == result.choice


def test_event_kinds_are_chosen_by_leads_reached_not_by_volume(store: Store) -> None:
    # one lead views /careers 30 times; three leads start a trial once each, two read /pricing once
    raw: list[dict[str, Any]] = [
        {"type": "page", "userId": "bot", "messageId": f"c-{n}", "properties": {"path": f"/careers/{n}"},
         "timestamp": ms_to_iso(T0 + n * 60_000)} for n in range(30)
    ]  # fmt: skip
    raw += [{"type": "track", "event": "Trial Started", "userId": f"t{n}", "messageId": f"t-{n}",
             "timestamp": ms_to_iso(T0 + DAY_MS)} for n in range(3)]  # fmt: skip
    raw += [{"type": "page", "userId": f"t{n}", "messageId": f"p-{n}", "properties": {"path": "/pricing"},
             "timestamp": ms_to_iso(T0 + DAY_MS)} for n in range(2)]  # fmt: skip
    ingest(store, [normalise(m, received_ms=T0 + 2 * DAY_MS) for m in raw], source="test")
    with store.connect() as conn:
        kinds = [label for label, _, _ in event_kinds(conn, limit=2)]
    assert kinds == ["Trial Started", "/pricing pages"]  # 3 and 2 leads; /careers: 30 views, 1 lead


def test_colleagues_active_on_any_page_are_counted_over_three_windows(store: Store) -> None:
    """Ann, Bob and Dan are one account (acme), Cid another. Days before the cutoff (day 100): Ann viewed
    a page 5 days before, Bob 20, Dan 60, and Dan's bot burst (12 views in 12 s) 3 days before is not a
    person's visit. So every acme lead has 1 colleague active in 14 days (Ann), 2 in 30 (Ann, Bob) and 3
    in 90 (with Dan), whoever the lead is; Cid's account has only Cid, 1 in each window."""
    cutoff = T0 + 100 * DAY_MS
    raw: list[dict[str, Any]] = []
    for user, account in (("ann", "acme"), ("bob", "acme"), ("dan", "acme"), ("cid", "other")):
        raw.append({"type": "group", "groupId": account, "userId": user, "messageId": f"g-{user}",
                    "traits": {"name": account}, "timestamp": ms_to_iso(T0)})  # fmt: skip
    for user, day in (("ann", 95), ("bob", 80), ("dan", 40), ("cid", 99)):
        raw.append({"type": "page", "userId": user, "messageId": f"p-{user}", "properties": {"path": "/blog/x"},
                    "timestamp": ms_to_iso(T0 + day * DAY_MS)})  # fmt: skip
    raw += [{"type": "page", "userId": "dan", "messageId": f"burst-{n}", "properties": {"path": "/pricing"},
             "timestamp": ms_to_iso(T0 + 97 * DAY_MS + n * 1000)} for n in range(12)]  # fmt: skip
    ingest(store, [normalise(m, received_ms=T0 + 200 * DAY_MS) for m in raw], source="test")
    with store.connect() as conn:
        features = [f for f in event_features(conn) if f.name.startswith("any page: people of the account")]
        assert [f.name for f in features] == [
            f"any page: people of the account ({w})" for w in ("14d", "30d", "90d")
        ]
        assert {family(f) for f in features} == {"committee"}
        users = ("ann", "bob", "dan", "cid")
        pairs = []
        for user in users:
            lead = find_lead(conn, external_id=user)
            assert lead is not None
            pairs.append((lead, cutoff))
        X = feature_matrix(conn, store.sources(), features, pairs)
    assert [[float(v) for v in row] for row in X] == [[1, 2, 3], [1, 2, 3], [1, 2, 3], [1, 1, 1]]


def test_the_accounts_separate_days_on_any_page_are_counted_over_two_windows(store: Store) -> None:
    """Ann, Bob and Dan are one account (acme), Cid another; the cutoff is day 100. Ann viewed two pages
    on day 95 (one day), Bob one on day 95 and one on day 88, Dan one on day 80, and Dan's bot burst (12
    views in 12 s) on day 97 is not a visit. So every acme lead's account was active on 2 separate days
    within 14 days (95, 88) and on 3 within 30 (with 80); Cid's account on 1 (day 99) in each."""
    cutoff = T0 + 100 * DAY_MS
    raw: list[dict[str, Any]] = []
    for user, account in (("ann", "acme"), ("bob", "acme"), ("dan", "acme"), ("cid", "other")):
        raw.append({"type": "group", "groupId": account, "userId": user, "messageId": f"g-{user}",
                    "traits": {"name": account}, "timestamp": ms_to_iso(T0)})  # fmt: skip
    views = (("ann", 95, 0), ("ann", 95, 1), ("bob", 95, 2), ("bob", 88, 0), ("dan", 80, 0), ("cid", 99, 0))
    for n, (user, day, minute) in enumerate(views):
        raw.append({"type": "page", "userId": user, "messageId": f"p-{n}", "properties": {"path": "/blog/x"},
                    "timestamp": ms_to_iso(T0 + day * DAY_MS + 3_600_000 + minute * 60_000)})  # fmt: skip
    raw += [{"type": "page", "userId": "dan", "messageId": f"burst-{n}", "properties": {"path": "/pricing"},
             "timestamp": ms_to_iso(T0 + 97 * DAY_MS + n * 1000)} for n in range(12)]  # fmt: skip
    ingest(store, [normalise(m, received_ms=T0 + 200 * DAY_MS) for m in raw], source="test")
    with store.connect() as conn:
        features = [
            f for f in event_features(conn) if f.name.startswith("any page: separate days of the account")
        ]
        assert [f.name for f in features] == [
            f"any page: separate days of the account ({w})" for w in ("14d", "30d")
        ]
        assert {family(f) for f in features} == {"committee"}
        pairs = []
        for user in ("ann", "bob", "dan", "cid"):
            lead = find_lead(conn, external_id=user)
            assert lead is not None
            pairs.append((lead, cutoff))
        X = feature_matrix(conn, store.sources(), features, pairs)
    assert [[float(v) for v in row] for row in X] == [[2, 3], [2, 3], [2, 3], [1, 1]]
    source = features[0].source
    assert isinstance(source, EventCount)
    assert source.rule_name(2) == "the account's people on any page on 2+ separate days in 14 days"
