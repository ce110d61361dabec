"""The learner's logistic regressions: scikit-learn's ``LogisticRegression`` (L2 penalty, lbfgs, an
intercept), the same fit without the per-call overhead around it.

``learn`` fits hundreds of small regressions on matrices it builds itself (the C grid in every fold, the
pair search's refits, the rule budget's rounds, the candidates' folds). Each ``LogisticRegression.fit``
spends about a millisecond checking its input and parameters and dispatching to the solver, as much as
the solver itself on a few thousand rows. ``fit_logistic`` makes the solver's own call, as scikit-learn
makes it (``_logistic_regression_path``: the loss and gradient of ``LinearModelLoss`` with the binomial
loss, L-BFGS-B from zeros with its options; the loss's arithmetic written out, ``loss_gradient``, as its
array-API dispatch cost a quarter of each evaluation), and returns a ``LogisticRegression`` holding the result, so
the coefficients are the same floats and predictions come from scikit-learn's own methods
(``tests/test_learn_regression.py`` checks both against ``LogisticRegression`` itself). A fit may start
from a neighbouring fit's coefficients instead of zeros (``start``: the C grid's previous C, the pair
search's fit with one pair fewer): the same optimum within the solver's tolerance in fewer iterations,
but not the same floats as from zeros. Where that call
is not available (another scikit-learn's internals) or the input is not the learner's (labels other
than 0 and 1 with both present, no columns), ``LogisticRegression.fit`` runs as it is.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import numpy.typing as npt
import sklearn
from scipy import optimize
from scipy.special import expit
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

try:  # scikit-learn's internals: the loss LogisticRegression minimises
    from sklearn._loss.loss import HalfBinomialLoss
    from sklearn.linear_model._linear_loss import LinearModelLoss
except ImportError:  # pragma: no cover - another scikit-learn: LogisticRegression.fit as it is
    HalfBinomialLoss = LinearModelLoss = None

_BINOMIAL: Any = HalfBinomialLoss() if HalfBinomialLoss is not None else None

FloatArray = npt.NDArray[np.float64]
TOL = 1e-4  # LogisticRegression's default


def fit_logistic(
    M: FloatArray,
    target: npt.NDArray[Any],
    C: float,
    max_iter: int,
    start: LogisticRegression | None = None,
) -> LogisticRegression:
    """``LogisticRegression(C=C, max_iter=max_iter).fit(M, target)`` for 0/1 labels. ``start``: a
    regression on the same rows whose coefficients the solver starts from (a neighbouring ``C``, or
    fewer columns: the columns past its own start at 0) instead of zeros: the same optimum within the
    solver's tolerance, in fewer iterations."""
    X = np.ascontiguousarray(M, dtype=np.float64)  # as LogisticRegression's own check hands it on
    labels = np.unique(target)
    if LinearModelLoss is None or X.ndim != 2 or X.shape[1] == 0 or labels.tolist() != [0, 1]:
        with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
            return LogisticRegression(C=C, max_iter=max_iter).fit(M, target)
    y = (np.asarray(target) == 1).astype(np.float64)
    try:
        result = optimize.minimize(
            loss_gradient,
            _start(start, X.shape[1]),
            method="L-BFGS-B",
            jac=True,
            args=(X, y, None, 1.0 / (C * X.shape[0]), 1),
            options={"maxiter": max_iter, "maxls": 50, "gtol": TOL, "ftol": 64 * np.finfo(float).eps},
        )
    except (TypeError, AttributeError):  # another scikit-learn's internals: its own fit, the same model
        with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
            return LogisticRegression(C=C, max_iter=max_iter).fit(M, target)
    n_iter = min(result.nit, max_iter)
    if result.status != 0:
        warnings.warn(f"lbfgs failed to converge after {n_iter} iteration(s) (status={result.status}):\n"
                      f"{result.message}", ConvergenceWarning, stacklevel=2)  # fmt: skip
    lr = LogisticRegression(C=C, max_iter=max_iter)
    lr.classes_ = labels
    lr.n_features_in_ = X.shape[1]
    lr.n_iter_ = np.asarray([n_iter], dtype=np.int32)
    lr.coef_ = result.x[:-1][None, :]
    lr.intercept_ = result.x[-1:]
    return lr


def loss_gradient(
    coef: FloatArray,
    X: FloatArray,
    y: FloatArray,
    sample_weight: None,
    l2_reg_strength: float,
    n_threads: int,
) -> tuple[float, FloatArray]:
    """``LinearModelLoss(HalfBinomialLoss(), fit_intercept=True).loss_gradient``, the same arithmetic in
    the same order for what the learner hands it (numpy rows, no sample weights), without its array-API
    dispatch: a quarter of each of the solver's ~10 evaluations a fit on a few thousand rows."""
    weights = coef[:-1]
    raw_prediction = X @ weights + coef[-1]
    loss, grad_pointwise = _BINOMIAL.loss_gradient(
        y_true=y, raw_prediction=raw_prediction, sample_weight=sample_weight, n_threads=n_threads
    )
    n_samples = X.shape[0]
    mean = float(np.sum(loss) / n_samples) + float(0.5 * l2_reg_strength * (weights @ weights))
    grad_pointwise /= n_samples
    grad = np.empty_like(coef)
    grad[:-1] = X.T @ grad_pointwise + l2_reg_strength * weights
    grad[-1] = np.sum(grad_pointwise)
    return mean, grad


def _start(lr: LogisticRegression | None, n_columns: int) -> FloatArray:
    """The solver's first coefficients (the intercept last): ``lr``'s, its missing columns at 0."""
    x0 = np.zeros(n_columns + 1)
    if lr is not None and lr.coef_.shape[1] <= n_columns:
        k = lr.coef_.shape[1]
        x0[:k] = lr.coef_.ravel()
        x0[-1] = float(lr.intercept_[0])
    return x0


def decision(lr: LogisticRegression, M: FloatArray) -> FloatArray:
    """``lr.decision_function(M)`` of a binary regression, without its checks: the same product."""
    return np.asarray((np.asarray(M, dtype=np.float64) @ lr.coef_.T + lr.intercept_).ravel(), float)


def probability(lr: LogisticRegression, M: FloatArray) -> FloatArray:
    """``lr.predict_proba(M)[:, 1]``: the probability of the second label, the same floats."""
    return np.asarray(expit(decision(lr, M)), float)
