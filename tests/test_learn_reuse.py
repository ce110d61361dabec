"""Work ``learn`` does once and uses again gives what doing it again gives: the fine bins merged at
several numbers of bins, each bins' evidence, and the full model's rounds that the chosen candidate's
fit repeats (``budget.fit_within(..., earlier=)``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from leadscore.learn import budget
from leadscore.learn.binning import fit_bins, merge_prebinned, prebin
from leadscore.learn.budget import fit_within
from leadscore.learn.checks import check_leakage, univariate_auc
from leadscore.learn.features import Attribute, Feature
from leadscore.learn.scorecard import Scorecard, evidence, forget_bins, read_columns


def test_one_pre_binning_merged_at_each_number_of_bins() -> None:
    """Values 0–39, 10 rows each (each value a pre-bin of its own: it holds one pre-bin's share), in four
    steps of ten values converting 1, 4, 7 and 10 rows of 10: within a step merging loses no information,
    and neighbouring steps differ significantly (chi-square 18 and more on 100 rows each), so at most 4
    bins are the steps; at most 2 merge further; each is what ``fit_bins`` of the rows gives."""
    x = np.repeat(np.arange(40), 10).astype(float)
    y = np.zeros(400, dtype=np.int64)
    for value in range(40):
        y[value * 10 : value * 10 + (1, 4, 7, 10)[value // 10]] = 1
    pre = prebin(x, y, "numeric", min_count=20, max_prebins=40)
    assert pre.counts == (10,) * 40 and pre.edges == tuple(float(v) for v in range(1, 40))
    four = merge_prebinned(pre, max_bins=4, min_count=20)
    assert four.edges == (10.0, 20.0, 30.0) and four.counts == (100,) * 4 and four.events == (10, 40, 70, 100)
    assert four == fit_bins(x, y, "numeric", max_bins=4, min_count=20, max_prebins=40)
    two = merge_prebinned(pre, max_bins=2, min_count=20)
    assert two.n_bins == 2 and sum(two.events) == 220
    assert two == fit_bins(x, y, "numeric", max_bins=2, min_count=20, max_prebins=40)


def test_categories_pre_binned_once_merge_as_fit_bins_does() -> None:
    """Categories a (100 rows, 10 converted), b (100, 60), c (100, 90) and two rare ones (5 rows each, the
    'other' group): at most 2 bins, a with other, and b with c; at 12, each group its own bin."""
    column = np.asarray(["a"] * 100 + ["b"] * 100 + ["c"] * 100 + ["d"] * 5 + ["e"] * 5, dtype=object)
    y = np.asarray([1] * 10 + [0] * 90 + [1] * 60 + [0] * 40 + [1] * 90 + [0] * 10 + [0] * 10, dtype=np.int64)
    read = read_columns(column[:, None], [Feature("x", "categorical", Attribute("x"))])[0]
    pre = prebin(read, y, "categorical", min_count=20, max_prebins=40)
    for most in (2, 12):
        got = merge_prebinned(pre, max_bins=most, min_count=20)
        assert got == fit_bins(read, y, "categorical", max_bins=most, min_count=20, max_prebins=40)
    # by conversion rate: other (0 of 10), a (10 of 100), b (60 of 100), c (90 of 100)
    assert merge_prebinned(pre, max_bins=2, min_count=20).counts == (110, 200)


def test_evidence_is_kept_per_bins_object_and_the_leakage_check_takes_it() -> None:
    x = np.repeat(np.arange(40), 10).astype(float)
    y = (x >= 20).astype(np.int64)
    bins = fit_bins(x, y, "numeric", max_bins=4, min_count=20, max_prebins=40)
    try:
        woe, auc = evidence(bins)
        assert auc == univariate_auc(bins) == 1.0  # the bins split the classes exactly
        assert np.array_equal(woe, bins.woe()) and not woe.flags.writeable
        assert evidence(bins)[0] is woe
        feature = Feature("x", "numeric", Attribute("x"))
        assert check_leakage([feature], [bins], 0.95, [auc]) == check_leakage([feature], [bins], 0.95)
    finally:
        forget_bins()


def _rows(seed: int) -> tuple[np.ndarray, np.ndarray, list[Feature]]:
    """600 rows of four categorical attributes, the outcome driven by the first two and their pair."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 4, (600, 4))
    logit = -1.0 + 0.8 * codes[:, 0] - 0.5 * codes[:, 1] + 1.5 * ((codes[:, 0] == 3) & (codes[:, 1] == 0))
    y = (rng.random(600) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    X = np.asarray([[f"v{v}" for v in row] for row in codes], dtype=object)
    return X, y, [Feature(f"f{j}", "categorical", Attribute(f"f{j}")) for j in range(4)]


def test_a_fit_repeating_the_full_models_rounds_takes_them_and_learns_the_same() -> None:
    """The full model (C and pairs by cross-validation, no budget: its features without pairs, then the
    same features with the pairs chosen) then, with its C and number of pairs, a budget of 6 rules,
    settling its features as the full model did (the chosen candidate's fit): its first two rounds are
    the full model's fits, taken as they are, and the scorecard within the budget is the one fitted
    without them, to the float."""
    X, y, features = _rows(3)
    groups = [str(i) for i in range(len(y))]
    params = {"C": "cv", "interactions": "cv", "min_class_count": 10}
    try:
        columns = read_columns(X, features)
        full = fit_within(X, y, groups, features, range(4), params, 100, columns)
        fixed = {**params, "C": full.scorecard.C_, "interactions": len(full.scorecard.pairs_)}
        again = fit_within(X, y, groups, features, full.keep, fixed, 6, columns, full, settle=True)
        alone = fit_within(X, y, groups, features, full.keep, fixed, 6, columns, settle=True)
    finally:
        forget_bins()
    settings = [(k, sc.get_params()["interactions"]) for k, sc in full.rounds]
    assert settings == [((0, 1, 2, 3), 0), ((0, 1, 2, 3), "cv")]
    settled, first = again.rounds[0][1], again.rounds[1][1]
    assert settled is not full.rounds[0][1] and settled.coef_ is full.rounds[0][1].coef_  # a copy
    assert first is not full.scorecard and first.coef_ is full.scorecard.coef_  # a copy of the same fit
    assert settled.get_params()["interactions"] == 0 and not settled.pairs_
    assert first.get_params()["C"] == full.scorecard.C_
    assert first.get_params()["interactions"] == fixed["interactions"]
    assert alone.rounds[1][1].coef_ is not full.scorecard.coef_
    assert again.keep == alone.keep and again.rules == alone.rules <= 6
    for got, want in ((again.scorecard, alone.scorecard), (first, alone.rounds[1][1])):
        assert np.array_equal(got.coef_, want.coef_)
        assert [p.tolist() for p in got.points_] == [p.tolist() for p in want.points_]
        assert got.intercept_ == want.intercept_ and got.pairs_ == want.pairs_


def _suppressed(seed: int) -> tuple[np.ndarray, np.ndarray, list[Feature]]:
    """3,000 rows: ``b`` is ``a`` plus noise and the outcome rises with ``a`` and falls with ``b`` (alone
    ``b`` rises with the outcome through ``a``: fitted beside ``a`` it is against its own evidence), and
    the cell c2 × d0 converts more than ``c`` and ``d`` alone say (a pair worth points)."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=3000)
    b = a + 0.5 * rng.normal(size=3000)
    c, d = rng.integers(0, 3, 3000), rng.integers(0, 3, 3000)
    logit = -1.0 + 2.0 * a - 1.2 * b + 1.5 * ((c == 2) & (d == 0))
    y = (rng.random(3000) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    X = np.empty((3000, 4), dtype=object)
    X[:, 0], X[:, 1] = a, b
    X[:, 2], X[:, 3] = [f"c{v}" for v in c], [f"d{v}" for v in d]
    kinds = {"a": "numeric", "b": "numeric", "c": "categorical", "d": "categorical"}
    return X, y, [Feature(name, kind, Attribute(name)) for name, kind in kinds.items()]


def test_the_features_settle_without_pairs_then_the_pairs_are_chosen_once() -> None:
    """C and pairs by cross-validation: the first round, without pairs, leaves ``b`` out (fitted against
    its evidence with or without the pair); the round after, on a, c and d, still without pairs, leaves
    none out; the pairs are searched (their number chosen by cross-validation) once, on those features.
    The choice is the one a scorecard of a, c and d alone makes with that C, to the float: the same
    number of pairs, the same pair (c × d), the same coefficients and points."""
    X, y, features = _suppressed(0)
    params = {"C": "cv", "interactions": "cv", "min_class_count": 10}
    groups = [str(i) for i in range(3000)]
    try:
        columns = read_columns(X, features)
        fitted = fit_within(X, y, groups, features, range(4), params, 300, columns)
        C = fitted.rounds[0][1].C_
        alone = Scorecard([features[j] for j in (0, 2, 3)], C=C, interactions="cv", min_class_count=10)
        alone.fit(X[:, [0, 2, 3]], y, groups=groups)
    finally:
        forget_bins()
    settings = [(keep, sc.get_params()["interactions"]) for keep, sc in fitted.rounds]
    assert settings == [((0, 1, 2, 3), 0), ((0, 2, 3), 0), ((0, 2, 3), "cv")]
    assert not fitted.rounds[0][1].pairs_ and not fitted.rounds[1][1].pairs_
    assert fitted.keep == [0, 2, 3] and fitted.scorecard is fitted.rounds[-1][1]
    sc = fitted.scorecard
    assert [(p.first, p.second) for p in sc.pairs_] == [(1, 2)]  # c × d
    assert sc.C_ == fitted.rounds[1][1].C_ == C
    assert sc.pairs_ == alone.pairs_ and np.array_equal(sc.coef_, alone.coef_)
    assert [p.tolist() for p in sc.points_] == [p.tolist() for p in alone.points_]
    assert [p.tolist() for p in sc.cell_points_] == [p.tolist() for p in alone.cell_points_]


def test_a_fixed_number_of_pairs_is_taken_in_every_round() -> None:
    """With the number of pairs given (the candidates' fits on the folds) the features do not settle
    without pairs first: every round takes its pair; ``b`` is left out all the same. With ``settle``
    they do, and the pair is searched once, on the features that stay: the same scorecard here, to the
    float (what changes is which rounds run, not the fit kept)."""
    X, y, features = _suppressed(0)
    params = {"C": 0.1, "interactions": 1, "min_class_count": 10}
    try:
        columns = read_columns(X, features)
        fitted = fit_within(X, y, None, features, range(4), params, 300, columns)
        settled = fit_within(X, y, None, features, range(4), params, 300, columns, settle=True)
    finally:
        forget_bins()
    settings = [(keep, sc.get_params()["interactions"], len(sc.pairs_)) for keep, sc in fitted.rounds]
    assert settings == [((0, 1, 2, 3), 1, 1), ((0, 2, 3), 1, 1)]
    assert fitted.keep == [0, 2, 3] and all(c >= 0 for c in fitted.scorecard.coef_)
    settings = [(keep, sc.get_params()["interactions"], len(sc.pairs_)) for keep, sc in settled.rounds]
    assert settings == [((0, 1, 2, 3), 0, 0), ((0, 2, 3), 0, 0), ((0, 2, 3), 1, 1)]
    assert settled.keep == [0, 2, 3] and settled.scorecard.pairs_ == fitted.scorecard.pairs_
    assert np.array_equal(settled.scorecard.coef_, fitted.scorecard.coef_)


def test_the_candidates_ranking_fits_no_pairs(monkeypatch: pytest.MonkeyPatch) -> None:
    """``rank`` orders features by their points in scorecards of every feature at 2, 3 and 4 bins: those
    scorecards take no pair, whatever number of pairs the candidates are fitted with."""
    X, y, features = _suppressed(1)
    seen: list[tuple[object, object]] = []
    real = budget.fit_within

    def recording(*args: Any, **kwargs: Any) -> budget.Fitted:
        seen.append((args[5].get("max_bins"), args[5].get("interactions")))
        return real(*args, **kwargs)

    monkeypatch.setattr(budget, "fit_within", recording)
    params = {"C": 0.1, "interactions": 2, "min_class_count": 10}
    try:
        ranked = budget.rank(X, y, [str(i) for i in range(3000)], features, params, read_columns(X, features))
    finally:
        forget_bins()
    assert seen == [(2, 0), (3, 0), (4, 0)]
    assert set(ranked) == {2, 3, 4} and all(ranked[b] for b in ranked)
