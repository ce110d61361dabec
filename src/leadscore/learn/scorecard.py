"""The scorecard estimator: binning, logistic regression on the bins (one-hot), integer points.

Follows the scikit-learn estimator contract: ``__init__`` stores parameters, ``fit`` validates and sets
the ``*_`` attributes, ``predict_proba`` and ``decision_function`` come from the integer points (so the
probabilities are those of the readable table), and ``table()`` lists variable / bin / points: the rows
``to_model`` turns into a model YAML.

Points per bin are the bin's logit contribution (its coefficient), shifted so that a fit
feature's worst bin and an engagement feature's "no activity" bin are worth 0, and scaled so all features
together are worth about ``total_points``.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from scipy import sparse
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_array, check_is_fitted, column_or_1d, validate_data

from leadscore.learn.binning import NO_BIN, Bins, fit_bins
from leadscore.learn.checks import check_leakage, check_minimum
from leadscore.learn.features import PLACEHOLDERS, Attribute, EventRecency, Feature

CV_GRID = tuple(float(c) for c in np.logspace(-3, 1, 9))  # C = 0.001 … 10, half a decade apart
CV_FOLDS = 3


@dataclass(frozen=True)
class BinRow:
    """One row of the scorecard table: a bin of a feature and its points."""

    feature: Feature
    index: int
    count: int
    events: int
    woe: float
    points: int
    baseline: bool

    @property
    def rate(self) -> float:
        return self.events / self.count if self.count else math.nan


class Scorecard(ClassifierMixin, BaseEstimator):
    """Binned logistic-regression scorecard with integer points (binary outcomes only)."""

    def __init__(
        self,
        features: Sequence[Feature] | None = None,
        *,
        max_bins: int = 12,
        min_bin_share: float = 0.01,
        max_prebins: int = 40,
        C: float | Literal["cv"] = 1.0,
        total_points: int = 100,
        min_class_count: int = 50,
        leak_auc: float = 0.95,
        placeholders: tuple[str, ...] = PLACEHOLDERS,
        max_iter: int = 1000,
    ) -> None:
        self.features = features
        self.max_bins = max_bins
        self.min_bin_share = min_bin_share
        self.max_prebins = max_prebins
        self.C = C
        self.total_points = total_points
        self.min_class_count = min_class_count
        self.leak_auc = leak_auc
        self.placeholders = placeholders
        self.max_iter = max_iter

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # missing values have a bin of their own
        tags.classifier_tags.multi_class = False
        return tags

    # -- fitting -------------------------------------------------------------------------------------
    def _validate(self, X: Any, y: Any = None, *, reset: bool) -> npt.NDArray[Any]:
        if self.features is None:
            if y is None:
                return np.asarray(validate_data(self, X, reset=reset, ensure_all_finite="allow-nan"))
            X, _ = validate_data(self, X, y, reset=reset, ensure_all_finite="allow-nan")
            return np.asarray(X)
        X = check_array(X, dtype=None, ensure_all_finite=False)
        if X.shape[1] != len(self.features):
            raise ValueError(f"X has {X.shape[1]} features, but Scorecard expects {len(self.features)}")
        if reset:
            self.n_features_in_ = X.shape[1]
        return X

    def fit(self, X: Any, y: Any, groups: Sequence[Any] | None = None) -> Scorecard:
        """``groups`` (optional): rows of one lead share a group, so cross-validation (``C="cv"``) never
        validates on a lead it trained on."""
        if y is None:
            raise ValueError("requires y to be passed, but the target y is None")
        X = self._validate(X, y, reset=True)
        y = column_or_1d(y, warn=True)
        if len(y) != X.shape[0]:
            raise ValueError(f"y must be one label per row: {len(y)} labels for {X.shape[0]} rows")
        check_classification_targets(y)
        y_type = type_of_target(y, input_name="y", raise_unknown=True)
        if y_type != "binary":
            raise ValueError(
                "Only binary classification is supported (converted or not). "
                f"The type of the target is {y_type}: a scorecard needs exactly two classes."
            )
        self.classes_ = np.unique(y)
        if len(self.classes_) < 2:
            raise ValueError("only one class is present in y: nobody (or everybody) converted")
        target = (y == self.classes_[1]).astype(np.int64)
        check_minimum(int(target.sum()), int(len(target) - target.sum()), self.min_class_count)
        self.features_ = tuple(self.features) if self.features is not None else _numbered(X.shape[1])
        min_count = max(1, math.ceil(self.min_bin_share * len(target)))
        self.bins_ = [
            fit_bins(X[:, j], target, f.kind, max_bins=self.max_bins, min_count=min_count,
                     max_prebins=self.max_prebins, placeholders=self.placeholders)
            for j, f in enumerate(self.features_)
        ]  # fmt: skip
        self.warnings_ = check_leakage(self.features_, self.bins_, self.leak_auc)
        for message in self.warnings_:
            warnings.warn(message, LeakageWarning, stacklevel=2)
        sizes = [b.n_bins for b in self.bins_]
        lr = self._regression(one_hot(self._indices(X), sizes), target, groups)
        self.n_iter_ = lr.n_iter_
        self.coef_ = lr.coef_.ravel()
        starts = np.cumsum([0, *sizes])
        contributions = [self.coef_[a:b] for a, b in itertools.pairwise(starts)]
        base = [_baseline(f, b, c) for f, b, c in zip(self.features_, self.bins_, contributions, strict=True)]
        relative = [c - c[i] for c, i in zip(contributions, base, strict=True)]
        span = sum(max(0.0, float(r.max())) for r in relative)
        # when no bin is worth more than another, every point is 0 whatever the scale: any positive one does
        self.points_per_logit_ = self.total_points / span if span > 0 else float(self.total_points)
        self.points_ = [np.rint(r * self.points_per_logit_).astype(np.int64) for r in relative]
        self.baseline_bins_ = base
        self.intercept_ = float(lr.intercept_[0]) + sum(
            float(c[i]) for c, i in zip(contributions, base, strict=True)
        )
        self.fit_max_ = self._section_max("fit")
        self.engagement_max_ = self._section_max("engagement")
        return self

    def _regression(
        self, M: sparse.csr_matrix, target: npt.NDArray[np.int64], groups: Sequence[Any] | None
    ) -> LogisticRegression:
        C = self.C
        if C == "cv":  # the regularisation the training rows support best: ROC-AUC over stratified folds
            splitter = StratifiedGroupKFold(CV_FOLDS) if groups is not None else StratifiedKFold(CV_FOLDS)
            folds = list(splitter.split(M, target, groups))

            def auc(c: float) -> float:
                return float(np.mean([
                    roc_auc_score(target[test], LogisticRegression(C=c, max_iter=self.max_iter)
                                  .fit(M[train], target[train]).decision_function(M[test]))
                    for train, test in folds
                ]))  # fmt: skip

            C = max(CV_GRID, key=lambda c: auc(float(c)))
        self.C_ = float(C)
        return LogisticRegression(C=float(C), max_iter=self.max_iter).fit(M, target)

    def _section_max(self, section: str) -> int:
        return int(sum(max(0, int(p.max())) for f, p in zip(self.features_, self.points_, strict=True)
                       if f.section == section))  # fmt: skip

    def _indices(self, X: npt.NDArray[Any]) -> list[npt.NDArray[np.intp]]:
        return [b.assign(X[:, j], self.placeholders) for j, b in enumerate(self.bins_)]

    # -- prediction ----------------------------------------------------------------------------------
    def section_points(self, X: Any) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """(fit points, engagement points) per row, before the model language's floor."""
        check_is_fitted(self)
        X = self._validate(X, reset=False)
        fit = np.zeros(X.shape[0], dtype=np.int64)
        eng = np.zeros(X.shape[0], dtype=np.int64)
        for f, pts, idx in zip(self.features_, self.points_, self._indices(X), strict=True):
            (fit if f.section == "fit" else eng)[:] += _take(pts, idx, 0)
        return fit, eng

    def total_points_of(self, X: Any) -> npt.NDArray[np.int64]:
        """Points as the model YAML counts them: fit + engagement, each raised to 0 if negative."""
        fit, eng = self.section_points(X)
        return np.asarray(np.maximum(fit, 0) + np.maximum(eng, 0), dtype=np.int64)

    def score_100(self, X: Any) -> npt.NDArray[np.float64]:
        """The 0–100 score the learned model YAML gives (same scale, same floor)."""
        span = self.fit_max_ + self.engagement_max_
        if span == 0:  # nothing learned: every lead has 0 points
            return np.zeros(len(self.total_points_of(X)))
        return np.asarray(self.total_points_of(X) * (100.0 / span), dtype=np.float64)

    def decision_function(self, X: Any) -> npt.NDArray[np.float64]:
        """Log-odds of the positive class from the integer points."""
        check_is_fitted(self)
        return np.asarray(self.intercept_ + self.total_points_of(X) / self.points_per_logit_, float)

    def predict_proba(self, X: Any) -> npt.NDArray[np.float64]:
        p = 1.0 / (1.0 + np.exp(-self.decision_function(X)))
        return np.column_stack([1.0 - p, p])

    def predict(self, X: Any) -> npt.NDArray[Any]:
        positive = self.decision_function(X) > 0
        return np.asarray(self.classes_[positive.astype(int)])

    # -- the readable table --------------------------------------------------------------------------
    def table(self) -> list[BinRow]:
        """Variable / bin / points: every bin of every feature (``to_model`` writes them as rules)."""
        check_is_fitted(self)
        rows: list[BinRow] = []
        for f, b, pts, base in zip(
            self.features_, self.bins_, self.points_, self.baseline_bins_, strict=True
        ):
            woe = b.woe()
            rows.extend(
                BinRow(f, i, b.counts[i], b.events[i], float(woe[i]), int(pts[i]), i == base)
                for i in range(b.n_bins)
            )
        return rows


class LeakageWarning(UserWarning):
    """A feature predicts the outcome almost perfectly on its own: probably filled in after it."""


def _numbered(n: int) -> tuple[Feature, ...]:
    return tuple(Feature(f"x{j}", "numeric", Attribute(f"x{j}")) for j in range(n))


def one_hot(indices: Sequence[npt.NDArray[np.intp]], sizes: Sequence[int]) -> sparse.csr_matrix:
    """One column per bin of every feature; a value in no bin (``NO_BIN``) sets none of its columns."""
    starts = np.cumsum([0, *sizes])
    if not indices:
        return sparse.csr_matrix((0, int(starts[-1])))
    bins = np.column_stack(indices)
    present = bins != NO_BIN
    columns = (bins + starts[:-1])[present]  # row by row, features in order: already CSR order
    indptr = np.concatenate([[0], np.cumsum(present.sum(axis=1))])
    return sparse.csr_matrix((np.ones(len(columns)), columns, indptr), shape=(bins.shape[0], int(starts[-1])))


def _take(values: npt.NDArray[Any], idx: npt.NDArray[np.intp], fill: Any) -> npt.NDArray[Any]:
    out = values[np.where(idx == NO_BIN, 0, idx)]
    return np.where(idx == NO_BIN, fill, out)


def _baseline(feature: Feature, bins: Bins, contribution: npt.NDArray[np.float64]) -> int:
    """The bin worth 0 points: a fit feature's worst bin; for events, no activity (the rules' absence)."""
    if feature.section == "fit":
        return int(np.argmin(contribution))
    if isinstance(feature.source, EventRecency):
        return bins.missing if bins.missing is not None else bins.n_bins - 1
    return int(np.searchsorted(np.asarray(bins.edges, float), 0.0, side="right"))
