"""``regression.fit_logistic`` is ``LogisticRegression(C=C, max_iter=max_iter).fit`` (the same floats,
not close ones: the learned model must not depend on which of the two ran), and ``decision`` and
``probability`` are its ``decision_function`` and ``predict_proba(...)[:, 1]``. From a given start
it reaches the same optimum within the solver's tolerance."""

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


def _objective_gradient(
    X: np.ndarray, y: np.ndarray, C: float, coef: np.ndarray, intercept: float
) -> np.ndarray:
    """The gradient of what ``LogisticRegression`` minimises, the mean log loss plus ``|w|² / (2 C n)``
    (the intercept unpenalised), written out: coefficients, then the intercept."""
    n = len(y)
    residual = 1.0 / (1.0 + np.exp(-(X @ coef + intercept))) - y
    return np.concatenate([X.T @ residual / n + coef / (C * n), [residual.mean()]])


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(50, 1500), st.integers(2, 20))
def test_a_warm_start_reaches_the_optimum(seed: int, n: int, d: int) -> None:
    """From the fit at a stronger penalty, and from the fit without the last column (its coefficient
    starting at 0), the solver stops where the gradient is within its tolerance (1e-4), as from zeros."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = (X[:, 0] * rng.uniform(0, 3) + rng.standard_normal(n) > 0).astype(np.int64)
    if len(set(y.tolist())) < 2:
        return
    weaker = fit_logistic(X, y, 1.0, 1000, start=fit_logistic(X, y, 0.1, 1000))
    wider = fit_logistic(X, y, 1.0, 1000, start=fit_logistic(X[:, :-1], y, 1.0, 1000))
    cold = fit_logistic(X, y, 1.0, 1000)
    for lr in (weaker, wider, cold):
        g = _objective_gradient(X, y.astype(float), 1.0, lr.coef_.ravel(), float(lr.intercept_[0]))
        assert np.abs(g).max() <= 1e-4


def test_a_start_at_the_optimum_is_kept() -> None:
    """Started where the fit from zeros ended (the gradient already within tolerance), the solver takes
    no step: the same coefficients, 0 iterations."""
    rng = np.random.default_rng(3)
    X = rng.standard_normal((400, 4))
    y = (X[:, 0] + rng.standard_normal(400) > 0).astype(np.int64)
    cold = fit_logistic(X, y, 0.5, 1000)
    again = fit_logistic(X, y, 0.5, 1000, start=cold)
    assert np.array_equal(again.coef_, cold.coef_)
    assert np.array_equal(again.intercept_, cold.intercept_)
    assert again.n_iter_.tolist() == [0]


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 3000), st.integers(1, 40), st.floats(1e-6, 10.0))
def test_the_loss_is_scikit_learns_to_the_bit(seed: int, n: int, d: int, l2: float) -> None:
    """``loss_gradient`` at any coefficients: the very floats of scikit-learn's ``LinearModelLoss``."""
    from sklearn._loss.loss import HalfBinomialLoss
    from sklearn.linear_model._linear_loss import LinearModelLoss

    from leadscore.learn.regression import loss_gradient

    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = (rng.random(n) < 0.3).astype(np.float64)
    coef = rng.standard_normal(d + 1) * rng.uniform(0, 4)
    want = LinearModelLoss(base_loss=HalfBinomialLoss(), fit_intercept=True).loss_gradient(
        coef, X, y, None, l2, 1
    )
    got = loss_gradient(coef, X, y, None, l2, 1)
    assert got[0] == want[0]
    assert np.array_equal(got[1], want[1])


@settings(max_examples=60, deadline=None)
@given(
    st.integers(0, 2**32 - 1),
    st.integers(20, 2000),
    st.integers(1, 25),
    st.sampled_from([0.001, 0.1, 10.0]),
    st.sampled_from([1, 3, 1000]),
    st.booleans(),
)
def test_the_solver_loop_is_minimizes(seed: int, n: int, d: int, C: float, max_iter: int, warm: bool) -> None:
    """``lbfgsb`` (SciPy's L-BFGS-B loop without its wrappers) against ``optimize.minimize`` with the
    same options, from zeros or from random coefficients, also where the iterations run out: the same
    point to the bit, the same iterations, status and message."""
    from scipy import optimize

    from leadscore.learn.regression import _OPTIONS, lbfgsb, loss_gradient

    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)) * rng.uniform(0.2, 4, d)
    y = (X[:, 0] + rng.standard_normal(n) > rng.uniform(-1, 1)).astype(np.float64)
    start = rng.standard_normal(d + 1) if warm else np.zeros(d + 1)
    args = (X, y, None, 1.0 / (C * n), 1)
    want = optimize.minimize(loss_gradient, start, method="L-BFGS-B", jac=True, args=args,
                             options={"maxiter": max_iter, **_OPTIONS})  # fmt: skip
    given = start.copy()
    x, iterations, status, message = lbfgsb(loss_gradient, start, args, max_iter)
    assert np.array_equal(x, want.x)
    assert (iterations, status, message) == (want.nit, want.status, want.message)
    assert np.array_equal(start, given)  # the start is not written


def test_the_solver_loop_stops_at_its_iterations_by_hand() -> None:
    """One iteration allowed on rows a single coefficient separates: status 1 (the limit), the message
    minimize gives, and the point moved from zeros towards a positive coefficient."""
    from leadscore.learn.regression import lbfgsb, loss_gradient

    X = np.asarray([[-2.0], [-1.0], [1.0], [2.0]])
    y = np.asarray([0.0, 0.0, 1.0, 1.0])
    x, iterations, status, message = lbfgsb(loss_gradient, np.zeros(2), (X, y, None, 0.25, 1), 1)
    assert (iterations, status) == (1, 1)
    assert message == "STOP: TOTAL NO. OF ITERATIONS REACHED LIMIT"
    assert x[0] > 0
