"""``regression.fit_logistic`` is ``LogisticRegression(C=C, max_iter=max_iter).fit`` (the same floats,
not close ones: the learned model must not depend on which of the two ran), and ``decision`` and
``probability`` are its ``decision_function`` and ``predict_proba(...)[:, 1]``."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from leadscore.learn.regression import decision, fit_logistic, probability


@settings(max_examples=60, deadline=None)
@given(
    st.integers(0, 2**32 - 1),
    st.integers(20, 2000),
    st.integers(1, 30),
    st.sampled_from([0.001, 0.0316, 1.0, 10.0]),
)
def test_the_same_fit_as_logistic_regression(seed: int, n: int, d: int, C: float) -> None:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = (X[:, 0] * rng.uniform(0, 5) + rng.standard_normal(n) > rng.uniform(-1, 2)).astype(np.int64)
    if len(set(y.tolist())) < 2:
        return
    want = LogisticRegression(C=C, max_iter=1000).fit(X, y)
    got = fit_logistic(X, y, C, 1000)
    assert np.array_equal(got.coef_, want.coef_)
    assert np.array_equal(got.intercept_, want.intercept_)
    assert np.array_equal(got.n_iter_, want.n_iter_)
    assert np.array_equal(got.classes_, want.classes_)
    held = rng.standard_normal((50, d))
    assert np.array_equal(decision(got, held), want.decision_function(held))
    assert np.array_equal(probability(got, held), want.predict_proba(held)[:, 1])
    assert np.array_equal(got.predict_proba(held), want.predict_proba(held))


def test_separable_rows_by_hand() -> None:
    """Two rows per class on either side of 0: the fit puts the boundary at 0 (intercept 0 by symmetry),
    the coefficient positive, and the probabilities mirror each other."""
    X = np.asarray([[-2.0], [-1.0], [1.0], [2.0]])
    y = np.asarray([0, 0, 1, 1])
    got = fit_logistic(X, y, 1.0, 1000)
    assert got.coef_[0, 0] > 0
    assert abs(got.intercept_[0]) < 1e-6
    p = probability(got, X)
    np.testing.assert_allclose(p, 1 - p[::-1])


def test_one_class_is_scikit_learns_error() -> None:
    with pytest.raises(ValueError, match="class"):
        fit_logistic(np.zeros((4, 1)), np.zeros(4, dtype=np.int64), 1.0, 100)


def test_a_fit_cut_short_warns_as_scikit_learn_does() -> None:
    rng = np.random.default_rng(1)
    X = rng.standard_normal((200, 5))
    y = (X[:, 0] > 0).astype(np.int64)
    with pytest.warns(ConvergenceWarning):
        got = fit_logistic(X, y, 10.0, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        want = LogisticRegression(C=10.0, max_iter=1).fit(X, y)
    assert np.array_equal(got.coef_, want.coef_)
    assert got.n_iter_.tolist() == want.n_iter_.tolist() == [1]
