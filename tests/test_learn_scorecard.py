"""The scorecard estimator: scikit-learn's contract, bins, guards, and the model YAML it becomes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from leadscore.learn.binning import Bins, fit_bins, prebin_edges, shrunk_rates
from leadscore.learn.checks import NotEnoughDataError
from leadscore.learn.dataset import csv_data, in_holdout
from leadscore.learn.features import Attribute, Feature
from leadscore.learn.metrics import roc_auc
from leadscore.learn.scorecard import LeakageWarning, Scorecard, one_standard_error
from leadscore.learn.to_model import to_model
from leadscore.model import dump_model, loads_model

ROOT = Path(__file__).resolve().parent
FIXTURE = ROOT / "data" / "learn" / "x_education_400.csv"
SALES_ENTERED = ("Tags", "Lead Quality", "Lead Profile", "Last Notable Activity", "Asymmetrique Activity Index",
                 "Asymmetrique Profile Index", "Asymmetrique Activity Score", "Asymmetrique Profile Score")  # fmt: skip


@pytest.mark.filterwarnings("ignore::leadscore.learn.scorecard.LeakageWarning")
@parametrize_with_checks([Scorecard(min_class_count=1)])
def test_scikit_learn_contract(estimator: Scorecard, check: object) -> None:
    """Each of scikit-learn's estimator checks raises when the scorecard breaks its contract; and none
    may change the parameters it was constructed with (fitting never sets them)."""
    given = estimator.get_params()
    check(estimator)  # type: ignore[operator]
    assert estimator.get_params() == given


def _synthetic(n: int = 600, seed: int = 1) -> tuple[np.ndarray, np.ndarray, tuple[Feature, ...]]:
    rng = np.random.default_rng(seed)
    size = rng.integers(1, 1000, n).astype(object)
    size[:40] = None
    role = rng.choice(["Manager", "Director", "Intern", "Select"], n).astype(object)
    logit = -1 + 2 * (role == "Director") - 2 * (role == "Intern") + (np.where(size == None, 0, size) > 300)  # noqa: E711
    y = (rng.random(n) < 1 / (1 + np.exp(-logit.astype(float)))).astype(int)
    features = (
        Feature("employees", "numeric", Attribute("employees")),
        Feature("role", "categorical", Attribute("role")),
    )
    return np.column_stack([size, role]), y, features


def test_missing_values_and_placeholders_have_their_own_bin() -> None:
    X, y, _ = _synthetic()
    numeric = fit_bins(X[:, 0], y, "numeric", max_bins=4, min_count=20, max_prebins=20)
    assert numeric.has_missing and numeric.counts[-1] == 40
    categories = fit_bins(X[:, 1], y, "categorical", max_bins=4, min_count=20, max_prebins=20)
    assert categories.has_missing and categories.counts[-1] == int((X[:, 1] == "Select").sum())
    assert "select" not in {c for group in categories.groups for c in group}


def test_points_are_integers_with_a_zero_baseline_per_feature() -> None:
    X, y, features = _synthetic()
    sc = Scorecard(features, min_class_count=20).fit(X, y)
    for points in sc.points_:
        assert points.dtype.kind == "i" and points.min() == 0
    rows = sc.table()
    assert {r.feature.name for r in rows} == {"employees", "role"}
    director = next(r for r in rows if r.feature.name == "role" and "director" in sc.bins_[1].groups[r.index])
    intern = next(r for r in rows if r.feature.name == "role" and "intern" in sc.bins_[1].groups[r.index])
    assert director.points > intern.points
    assert sc.score_100(X).max() <= 100


def test_a_feature_that_is_the_outcome_warns_by_name() -> None:
    X, y, features = _synthetic()
    leak = Feature("lead_status", "categorical", Attribute("lead_status"))
    X2 = np.column_stack([X, np.where(y == 1, "Closed won", "Open").astype(object)])
    with pytest.warns(LeakageWarning, match="'lead_status' alone predicts the outcome"):
        sc = Scorecard((*features, leak), min_class_count=20).fit(X2, y)
    assert len(sc.warnings_) == 1


def test_too_few_outcomes_is_a_clear_error() -> None:
    X, y, features = _synthetic(n=200)
    y = np.zeros(200, dtype=int)
    y[:12] = 1
    with pytest.raises(NotEnoughDataError, match=r"12 converted and 188 not converted; at least 50 of each"):
        Scorecard(features).fit(X, y)


def test_csv_columns_declared_sales_entered_are_not_features() -> None:
    data = csv_data(FIXTURE, "Converted", id_column="Prospect ID", exclude=SALES_ENTERED)
    names = {f.name for f in data.features}
    assert "tags" not in names and "lead_quality" not in names and "lead_origin" in names
    assert ("lead_number", "an identifier (a different value in every row)") in data.dropped
    assert ("magazine", "constant (one value, or none)") in data.dropped
    assert "converted" not in names and "prospect_id" not in names


def test_holdout_is_a_fixed_hash_of_the_key() -> None:
    data = csv_data(FIXTURE, "Converted", id_column="Prospect ID")
    train, holdout = data.split(0.3)
    assert len(train) + len(holdout) == len(data) == 400
    assert all(in_holdout(k, 0.3) for k in holdout.keys) and not any(in_holdout(k, 0.3) for k in train.keys)
    assert 0.2 < len(holdout) / len(data) < 0.4


def test_model_yaml_round_trips_and_validates() -> None:
    data = csv_data(FIXTURE, "Converted", id_column="Prospect ID")
    sc = Scorecard(data.features, min_class_count=20, max_bins=5, min_bin_share=0.05).fit(data.X, data.y)
    model = to_model(sc, "x-education", "Learned in a test.", bands=(60.0, 30.0))
    text = dump_model(model)
    assert loads_model(text) == model
    assert loads_model(dump_model(loads_model(text))) == model
    assert model.scale.weights.fit == sc.fit_max_ and model.scale.fit_max == sc.fit_max_
    assert all(float(r.points).is_integer() for r in model.fit)
    assert model.scale.bands.hot == 60.0


def test_weight_of_evidence_shrinks_by_the_spread_of_the_bins() -> None:
    # two bins of 100 rows, 10 and 30 conversions: overall rate 0.2; the rates' count-weighted variance is
    # 0.01, binomial noise explains 2 × 0.2 × 0.8 / 200 = 0.0016, so the true rates' variance is 0.0084 and
    # the prior is worth m = 0.16 / 0.0084 - 1 = 18.05 observations
    m = 0.16 / 0.0084 - 1
    low, high = (10 + m * 0.2 + 0.5) / (100 + m + 1), (30 + m * 0.2 + 0.5) / (100 + m + 1)
    odds = np.log(0.2 / 0.8)
    assert shrunk_rates(np.array([100.0, 100.0]), np.array([10.0, 30.0])) == pytest.approx([low, high])
    bins = Bins("numeric", (5.0,), (), None, False, (100, 100), (10, 30))
    assert bins.woe() == pytest.approx([np.log(low / (1 - low)) - odds, np.log(high / (1 - high)) - odds])
    # bins no further apart than chance carry no evidence at all
    assert Bins("numeric", (5.0,), (), None, False, (100, 100), (19, 21)).woe().tolist() == [0.0, 0.0]


def test_one_standard_error_rule_uses_the_fold_by_fold_differences() -> None:
    # setting 2 is best (mean 0.80); setting 1 trails it by 0.01 in every fold (standard error 0): not within
    # one standard error; setting 0 trails by -0.04, 0, +0.01 (mean 0.01, standard error
    # √(0.0007) / √3 = 0.0153): within, and simplest
    scores = [[0.75, 0.80, 0.82], [0.78, 0.79, 0.80], [0.79, 0.80, 0.81]]
    assert one_standard_error(scores) == 0
    assert one_standard_error(scores[1:]) == 1


def test_a_pair_learns_what_no_additive_scorecard_can() -> None:
    # converts when exactly one of two switches is on (exclusive or): each alone carries no evidence
    rng = np.random.default_rng(3)
    a, b, noise = (rng.integers(0, 2, 3000) for _ in range(3))
    y = (rng.random(3000) < np.where(a != b, 0.6, 0.1)).astype(int)
    X = np.column_stack([a, b, noise]).astype(float)
    additive = Scorecard(min_class_count=20, C="cv").fit(X, y)
    paired = Scorecard(min_class_count=20, C="cv", interactions="cv").fit(X, y)
    assert [(p.first, p.second) for p in paired.pairs_] == [(0, 1)]
    assert roc_auc(y, paired.score_100(X)) > 0.75 > 0.55 > roc_auc(y, additive.score_100(X))
    cells = {(c.first, c.second): c.points for c in paired.cells()}
    assert cells[0, 1] > 0 and cells[1, 0] > 0 and cells[0, 0] <= 0 and cells[1, 1] <= 0


def test_numeric_intervals_whose_rates_do_not_differ_are_one_interval() -> None:
    # x = 0 … 399: one in ten converts below 200, one in two from 200 on; four quantile pre-bins split
    # at 99, 199 and 299, and only the step between the halves is significant
    x = np.arange(400, dtype=float)
    y = np.asarray([int(v % 10 == 0) if v < 200 else int(v % 2 == 0) for v in range(400)])
    bins = fit_bins(x, y, "numeric", max_bins=12, min_count=1, max_prebins=4)
    assert bins.edges == (199.0,)
    assert bins.counts == (199, 201) and bins.events == (20, 100)  # 0, 10 … 190; 200, 202 … 398


def test_a_number_no_row_has_gets_only_the_missing_bin() -> None:
    # an event kind that only rows left out of the labels had: every recency is missing
    bins = fit_bins(np.full(6, None, dtype=object), np.asarray([0, 1, 0, 1, 0, 0]), "numeric",
                    max_bins=4, min_count=1, max_prebins=4)  # fmt: skip
    assert bins.edges == () and bins.counts == (6,) and bins.events == (2,) and bins.missing == 0


def test_a_spike_value_is_a_pre_bin_and_the_other_values_keep_their_quantiles() -> None:
    # 80 sessions with page value 0 and 20 with 1 … 20: four quantiles of all 100 values all fall on 0,
    # which would leave every positive value in the zeros' interval. The spike (80 rows, at least a
    # quarter) is an interval of its own; the values after it are cut at their own quartiles (lower
    # method over 1 … 20: positions 4.75, 9.5 and 14.25 → the 5th, 10th and 15th values)
    x = np.asarray([0.0] * 80 + [float(v) for v in range(1, 21)])
    assert prebin_edges(x, 4).tolist() == [1.0, 5.0, 10.0, 15.0]
    # zeros convert 4 in 80, the positive values 10 in 20 (the even ones): the positives' quartile
    # intervals (rates 2/4, 2/5, 3/5, 3/6) do not differ and merge; zeros against positives do
    y = np.asarray([int(i % 20 == 0) for i in range(80)] + [int(v % 2 == 0) for v in range(1, 21)])
    bins = fit_bins(x, y, "numeric", max_bins=12, min_count=1, max_prebins=4)
    assert bins.edges == (1.0,)
    assert bins.counts == (80, 20) and bins.events == (4, 10)


def test_a_tied_value_holding_a_pre_bins_share_is_a_spike() -> None:
    # 3.0 holds 2 of 8 rows, a quarter at 4 pre-bins: an interval of its own, from 3 to the next value
    # (5); the other values (1, 2, 5, 6, 7, 8) are cut at their quartiles (lower method: positions 1.25,
    # 2.5 and 3.75 → 2, 5, 6)
    x = np.asarray([1.0, 2.0, 3.0, 3.0, 5.0, 6.0, 7.0, 8.0])
    assert prebin_edges(x, 4).tolist() == [2.0, 3.0, 5.0, 6.0]
    assert prebin_edges(np.zeros(0), 4).tolist() == []


def test_labels_as_numpy_integers_or_booleans_are_typed_as_scikit_learn_types_them() -> None:
    """``learn`` hands every fit a numpy row of 0/1 labels, typed without scikit-learn's checks: the
    same type and classes as ``type_of_target`` and ``np.unique`` give, and the same refusal of three
    classes; other labels (texts, numbers with fractions) go through scikit-learn's own checks."""
    from sklearn.utils.multiclass import type_of_target

    from leadscore.learn.scorecard import _target_type

    rows = [np.asarray([0, 1, 1, 0]), np.asarray([1, 1]), np.asarray([0, 2, 1]), np.asarray([True, False]),
            np.asarray([7, 3], dtype=np.uint8), np.asarray(["a", "b"], dtype=object)]  # fmt: skip
    assert [_target_type(y)[0] for y in rows] == [type_of_target(y) for y in rows]
    assert [_target_type(y)[0] for y in rows] == [
        "binary",
        "binary",
        "multiclass",
        "binary",
        "binary",
        "binary",
    ]
    assert _target_type(np.asarray([7, 3], dtype=np.uint8))[1].tolist() == [3, 7]
    X, y, features = _synthetic()
    with pytest.raises(ValueError, match="The type of the target is multiclass"):
        Scorecard(features).fit(X, np.arange(len(y)) % 3)
    with pytest.raises(ValueError, match="Unknown label type: continuous"):
        Scorecard(features).fit(X, np.linspace(0, 1, len(y)))
    as_bool = Scorecard(features).fit(X, y.astype(bool))
    as_int = Scorecard(features).fit(X, y)
    assert as_bool.classes_.tolist() == [False, True]
    assert [p.tolist() for p in as_bool.points_] == [p.tolist() for p in as_int.points_]


def test_pairs_are_searched_among_the_strongest_forty_fit_features_of_a_wide_file() -> None:
    """A file of 10,000 columns made 50 million candidate pairs (12 GB before one was measured, killed
    after 10 minutes); the pool is now the pairs of the 40 strongest features alone: 40 × 39 / 2."""
    rng = np.random.default_rng(7)
    n, width = 400, 60
    y = (np.arange(n) % 2).astype(np.int64)
    X = rng.integers(0, 5, size=(n, width)).astype(float).astype(object)  # noise
    for j in (17, 41, 58):  # three features that tell the classes apart (one row in ten the other way)
        X[:, j] = np.where((np.arange(n) % 10 == 0) != (y == 1), 100.0, 1.0)
    features = [Feature(f"c{j}", "numeric", Attribute(f"c{j}")) for j in range(width)]
    sc = Scorecard(features, min_class_count=20, interactions=0).fit(X, y)
    pool = sc._pool()
    assert len(pool) == 40 * 39 // 2
    assert {17, 41, 58} <= {j for pair in pool for j in pair}
    # with 40 fit features or fewer, every pair (as before)
    few = Scorecard(features[:30], min_class_count=20, interactions=0).fit(X[:, :30], y)
    assert len(few._pool()) == 30 * 29 // 2
