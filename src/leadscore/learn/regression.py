"""The learner's logistic regressions: scikit-learn's ``LogisticRegression`` (L2 penalty, lbfgs, an
intercept), the same fit without the per-call overhead around it.

``learn`` fits hundreds of small regressions on matrices it builds itself (the C grid in every fold, the
pair search's refits, the rule budget's rounds, the candidates' folds). Each ``LogisticRegression.fit``
spends about a millisecond checking its input and parameters and dispatching to the solver, as much as
the solver itself on a few thousand rows. ``fit_logistic`` makes the solver's own call, as scikit-learn
makes it (``_logistic_regression_path``: the loss and gradient of ``LinearModelLoss`` with the binomial
loss, L-BFGS-B from zeros with its options; the loss's arithmetic written out, ``loss_gradient``, as its
array-API dispatch cost a quarter of each evaluation; SciPy's loop around the L-BFGS-B routine written out,
``lbfgsb``, as ``minimize``'s wrappers cost about a third of each fit), and returns a
``LogisticRegression`` holding the result, so the coefficients are the same floats and predictions come
from scikit-learn's own methods (``tests/test_learn_regression.py`` checks both against
``LogisticRegression`` itself). A fit may start
from a neighbouring fit's coefficients instead of zeros (``start``: the C grid's previous C, the pair
search's fit with one pair fewer): the same optimum within the solver's tolerance in fewer iterations,
but not the same floats as from zeros. Where that call
is not available (another scikit-learn's internals) or the input is not the learner's (labels other
than 0 and 1 with both present, no columns), ``LogisticRegression.fit`` runs as it is.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
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

try:  # SciPy's L-BFGS-B routine and its messages, as its own minimize calls them
    from scipy.optimize import _lbfgsb, _lbfgsb_py
except ImportError:  # pragma: no cover - another SciPy: optimize.minimize
    _lbfgsb = _lbfgsb_py = None

_BINOMIAL: Any = HalfBinomialLoss() if HalfBinomialLoss is not None else None

FloatArray = npt.NDArray[np.float64]
TOL = 1e-4  # LogisticRegression's default
# the solver's options as scikit-learn's lbfgs path gives them
_OPTIONS: dict[str, Any] = {"maxls": 50, "gtol": TOL, "ftol": 64 * np.finfo(float).eps}


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
    args = (X, y, None, 1.0 / (C * X.shape[0]), 1)
    try:
        x, nit, status, message = lbfgsb(loss_gradient, _start(start, X.shape[1]), args, max_iter)
    except (TypeError, AttributeError):  # another SciPy's or scikit-learn's internals
        try:
            result = optimize.minimize(loss_gradient, _start(start, X.shape[1]), method="L-BFGS-B", jac=True,
                                       args=args, options={"maxiter": max_iter, **_OPTIONS})  # fmt: skip
            x, nit, status, message = result.x, result.nit, result.status, result.message
        except (TypeError, AttributeError):  # its own fit, the same model
            with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
                return LogisticRegression(C=C, max_iter=max_iter).fit(M, target)
    n_iter = min(nit, max_iter)
    if status != 0:
        warnings.warn(f"lbfgs failed to converge after {n_iter} iteration(s) (status={status}):\n"
                      f"{message}", ConvergenceWarning, stacklevel=2)  # fmt: skip
    lr = LogisticRegression(C=C, max_iter=max_iter)
    lr.classes_ = labels
    lr.n_features_in_ = X.shape[1]
    lr.n_iter_ = np.asarray([n_iter], dtype=np.int32)
    lr.coef_ = x[:-1][None, :]
    lr.intercept_ = x[-1:]
    return lr


def lbfgsb(
    fun: Callable[..., tuple[float, FloatArray]], x0: FloatArray, args: tuple[Any, ...], max_iter: int
) -> tuple[FloatArray, int, int, str]:
    """``optimize.minimize(fun, x0, method="L-BFGS-B", jac=True, args=args, options=...)`` with the options
    scikit-learn gives it (no bounds, 10 corrections), as (x, iterations, status, message): SciPy's own
    loop around its L-BFGS-B routine (``scipy.optimize._lbfgsb_py._minimize_lbfgsb``), without the
    function wrappers and result objects that cost about a third of a fit on a few thousand rows. The
    routine asks for the loss and gradient at the points it chooses and they are computed as there
    (a point asked for again: the values kept from it, as SciPy's wrapper keeps the last), so it takes
    the same steps: the same floats. Raises ``TypeError`` or ``AttributeError`` where SciPy's routine is
    not the one this loop was written for."""
    m, n, most_evaluations = 10, x0.size, 15000  # corrections and maxfun: minimize's defaults
    x = np.array(x0, dtype=np.float64)
    f: Any = np.array(0.0, dtype=np.float64)
    g = np.zeros(n, dtype=np.float64)
    unbounded = np.zeros(n, dtype=np.float64)
    kind = np.zeros(n, dtype=np.int32)
    wa = np.zeros(2 * m * n + 5 * n + 11 * m * m + 8 * m, dtype=np.float64)
    iwa = np.zeros(3 * n, dtype=np.int32)
    task, ln_task = np.zeros(2, dtype=np.int32), np.zeros(2, dtype=np.int32)
    lsave, isave, dsave = (
        np.zeros(4, dtype=np.int32),
        np.zeros(44, dtype=np.int32),
        np.zeros(29, dtype=np.float64),
    )
    factr = _OPTIONS["ftol"] / np.finfo(float).eps
    iterations, evaluations = 0, 0
    last: FloatArray | None = None  # the point of the last evaluation
    while True:
        g = g.astype(np.float64)  # the routine's own copy, as minimize hands it
        _lbfgsb.setulb(m, x, unbounded, unbounded, kind, f, g, factr, _OPTIONS["gtol"], wa, iwa, task, lsave,
                       isave, dsave, _OPTIONS["maxls"], ln_task)  # fmt: skip
        if task[0] == 3:  # the loss and gradient at x
            if last is None or not np.array_equal(x, last):
                last = x.copy()
                f, g_last = fun(x.copy(), *args)
                evaluations += 1
            g = g_last
        elif task[0] == 1:  # a new iteration
            iterations += 1
            if iterations >= max_iter:
                task[0], task[1] = 5, 504
            elif evaluations > most_evaluations:
                task[0], task[1] = 5, 502
        else:
            break
    status = 0 if task[0] == 4 else 1 if evaluations > most_evaluations or iterations >= max_iter else 2
    message = _lbfgsb_py.status_messages[task[0]] + ": " + _lbfgsb_py.task_messages[task[1]]
    return x, iterations, status, message


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
