"""The scorecard estimator: binning, weight-of-evidence coding, logistic regression, integer points.

Follows the scikit-learn estimator contract: ``__init__`` stores parameters, ``fit`` validates and sets
the ``*_`` attributes, ``predict_proba`` and ``decision_function`` come from the integer points (so the
probabilities are those of the readable table), and ``table()`` (with ``cells()``) lists variable / bin /
points: the rows ``to_model`` turns into a model YAML.

The standard scorecard method: every feature is binned and coded by its bins' weight of evidence (one
column per feature, so one coefficient each: few parameters, and the speed of a plain logistic regression
on as many columns); a bin's points are coefficient × weight of evidence, shifted so that a fit feature's
worst bin and an engagement feature's "no activity" bin are worth 0, and scaled so all features together
are worth about ``total_points``. Optionally a few pairs of attribute features add points per cell
(``interactions``). With ``C="cv"`` the regularisation, and with ``interactions="cv"`` the number of
pairs, are chosen by cross-validation on the training rows (binning and weights of evidence refitted in
every fold) with the one-standard-error rule: the simplest setting whose mean validation ROC-AUC is within
one standard error of the best.
"""

from __future__ import annotations

import functools
import hashlib
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_array, check_is_fitted, column_or_1d, validate_data

from leadscore.compile.dialects import kept
from leadscore.learn.binning import NO_BIN, Bins, Column, Prebinned, merge_prebinned, prebin, read_column
from leadscore.learn.checks import check_leakage, check_minimum, univariate_auc
from leadscore.learn.features import PLACEHOLDERS, Attribute, EventRatio, EventRecency, Feature
from leadscore.learn.interactions import Pair, candidates, forget_crossings, select_pairs
from leadscore.learn.metrics import roc_auc
from leadscore.learn.regression import decision, fit_logistic, probability

MAX_PAIR_FEATURES = 40  # pairs are searched among this many fit features at most (``Scorecard._pool``)

CV_GRID = tuple(float(c) for c in np.logspace(-3, 1, 9))  # C = 0.001 … 10, half a decade apart
CV_FOLDS = 5
# Bins already fitted, by column object and labels: the rule budget and the candidates' folds refit the
# same rows' columns with the same settings many times (a feature left out, the same bins per feature
# in ``rank`` and in a candidate), and binning is deterministic. The column is kept with its bins, so a
# key's ``id`` cannot name a later object; the oldest entries go first, and ``learn`` empties it when it
# is done (``forget_bins``).
_BINS: dict[tuple[Any, ...], tuple[Column, Bins]] = {}
_BINS_KEPT = 1024
# What binning merges (``prebin``: the fine bins and their counts), by column object and labels: the same
# rows are binned at several numbers of bins (the budget's coarser rounds, ``rank``'s 2, 3 and 4 bins).
_PREBINNED: dict[tuple[Any, ...], tuple[Column, Prebinned]] = {}
# A cross-validation fold's rows of a column, by column and rows object: every round of the rule budget
# splits the same columns into the same folds (``cv_splits`` keeps them), and the same objects are what
# lets a round find the bins an earlier one fitted on a fold. Up to ``_ROWS_KEPT`` values in all.
_ROWS: dict[tuple[int, int], tuple[Column, IntArray, Column]] = {}
_ROWS_KEPT = 1 << 24
_ROWS_HELD = [0]  # values held in _ROWS
# A column's rows coded by a feature's bins (``code_columns``: each row's bin and its standardised weight
# of evidence), by bins and column object: the rule budget's rounds code the features they keep with the
# same bins again. Up to ``_CODED_KEPT`` rows in all.
_CODED: dict[tuple[int, int, tuple[str, ...]], tuple[Bins, Column, IntArray, FloatArray, float, float]] = {}
_CODED_KEPT = 1 << 22
_CODED_HELD = [0]
IntArray = npt.NDArray[np.intp]
FloatArray = npt.NDArray[np.float64]
# Each kept bins' weights of evidence (read-only) and univariate AUC, by bins object: every fit that meets
# bins from ``_BINS`` again (the budget's rounds, the candidates' folds) would compute them again.
_EVIDENCE: dict[int, tuple[Bins, FloatArray, float]] = {}


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


@dataclass(frozen=True)
class CellRow:
    """A cell of a pair of features (bin ``first`` of one with bin ``second`` of the other) and its points."""

    features: tuple[Feature, Feature]
    first: int
    second: int
    count: int
    events: int
    evidence: float  # shrunk ln(observed / expected conversions) against the model without this pair
    points: int

    @property
    def rate(self) -> float:
        return self.events / self.count if self.count else math.nan


@dataclass(frozen=True)
class Coded:
    """Rows coded for the regression: each feature's bin, and each row's weight of evidence per feature,
    standardised by the training rows' mean and standard deviation (kept to undo it)."""

    indices: list[IntArray]
    z: FloatArray
    mean: FloatArray
    sd: FloatArray


class Scorecard(ClassifierMixin, BaseEstimator):
    """Binned weight-of-evidence logistic-regression scorecard with integer points (binary outcomes)."""

    def __init__(
        self,
        features: Sequence[Feature] | None = None,
        *,
        max_bins: int = 12,
        min_bin_share: float = 0.01,
        max_prebins: int = 40,
        C: float | Literal["cv"] = 1.0,
        interactions: int | Literal["cv"] = 0,
        max_interactions: int = 3,
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
        self.interactions = interactions
        self.max_interactions = max_interactions
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

    def fit(
        self, X: Any, y: Any, groups: Sequence[Any] | None = None, columns: Sequence[Column] | None = None
    ) -> Scorecard:
        """``groups`` (optional): rows of one lead share a group, so cross-validation (``C="cv"``) never
        validates on a lead it trained on. ``columns`` (optional): X's columns as ``read_columns`` reads
        them with this scorecard's placeholders, where the caller fits many subsets of one matrix."""
        if y is None:
            raise ValueError("requires y to be passed, but the target y is None")
        X = self._validate(X, y, reset=True)
        y = y if _plain_labels(y) else column_or_1d(y, warn=True)
        if len(y) != X.shape[0]:
            raise ValueError(f"y must be one label per row: {len(y)} labels for {X.shape[0]} rows")
        y_type, classes = _target_type(y)
        if y_type != "binary":
            raise ValueError(
                "Only binary classification is supported (converted or not). "
                f"The type of the target is {y_type}: a scorecard needs exactly two classes."
            )
        self.classes_ = classes
        if len(self.classes_) < 2:
            raise ValueError("only one class is present in y: nobody (or everybody) converted")
        if self.interactions != "cv" and (not isinstance(self.interactions, int) or self.interactions < 0):
            raise ValueError(
                f"interactions must be a number of pairs (0 or more) or 'cv', not {self.interactions!r}"
            )
        target = (y == self.classes_[1]).astype(np.int64)
        check_minimum(int(target.sum()), int(len(target) - target.sum()), self.min_class_count)
        self.features_ = tuple(self.features) if self.features is not None else _numbered(X.shape[1])
        # each column read once (numbers converted, categories keyed); folds and refits take rows of it
        if columns is None:
            columns = read_columns(X, self.features_, self.placeholders)
        elif len(columns) != X.shape[1] or any(len(c) != X.shape[0] for c in columns):
            raise ValueError(f"columns must be X's {X.shape[1]} columns of {X.shape[0]} rows each")
        self.bins_ = self._bin(columns, target)
        known = [evidence(b) for b in self.bins_]
        self.warnings_ = check_leakage(self.features_, self.bins_, self.leak_auc, [auc for _, auc in known])
        for message in self.warnings_:
            warnings.warn(message, LeakageWarning, stacklevel=2)
        self.C_, most = self._choose(columns, target, groups)
        self.woe_ = [woe for woe, _ in known]
        coded = code_columns(self.bins_, columns, self.placeholders)
        fitted: list[LogisticRegression] = []
        owners = [(c, b) for c, b in zip(columns, self.bins_, strict=True)]
        self.pairs_ = select_pairs(coded.indices, [b.n_bins for b in self.bins_], target.astype(float),
                                   self._pool(), most, self._refit(coded, target, self.C_, fitted), owners,
                                   _labels(target))  # fmt: skip
        lr = fitted[-1]
        self.n_iter_ = lr.n_iter_
        # back to one coefficient per unit of evidence (the solver saw standardised columns)
        _, mean, sd = with_pairs(coded, self.pairs_)
        self.coef_ = lr.coef_.ravel() / sd
        self._points(float(lr.intercept_[0]) - float(self.coef_ @ mean))
        return self

    def _bin(self, columns: Sequence[Column], target: npt.NDArray[np.int64]) -> list[Bins]:
        min_count = max(1, math.ceil(self.min_bin_share * len(target)))
        labels = _labels(target)
        out = []
        for column, f in zip(columns, self.features_, strict=True):
            monotone = isinstance(f.source, Attribute) and f.source.monotone
            key = (
                id(column),
                labels,
                f.kind,
                self.max_bins,
                min_count,
                self.max_prebins,
                self.placeholders,
                monotone,
            )
            kept = _BINS.get(key)
            if kept is not None and kept[0] is column:
                out.append(kept[1])
                continue
            bins = merge_prebinned(self._prebinned(column, target, f.kind, labels, min_count),
                                   max_bins=self.max_bins, min_count=min_count, monotone=monotone)  # fmt: skip
            _BINS[key] = (column, bins)
            while len(_BINS) > _BINS_KEPT:
                _BINS.pop(next(iter(_BINS)))
            out.append(bins)
        return out

    def _prebinned(
        self, column: Column, target: npt.NDArray[np.int64], kind: str, labels: bytes, min_count: int
    ) -> Prebinned:
        """``prebin`` of the column, once per column object and labels while kept (``_PREBINNED``)."""
        key = (id(column), labels, kind, min_count, self.max_prebins, self.placeholders)
        kept = _PREBINNED.get(key)
        if kept is not None and kept[0] is column:
            return kept[1]
        pre = prebin(column, target, kind, min_count=min_count, max_prebins=self.max_prebins,
                     placeholders=self.placeholders)  # fmt: skip
        _PREBINNED[key] = (column, pre)
        while len(_PREBINNED) > _BINS_KEPT:
            _PREBINNED.pop(next(iter(_PREBINNED)))
        return pre

    def _pool(self) -> list[tuple[int, int]]:
        """Pairs that fit rules can express: both features are attributes, among the
        ``MAX_PAIR_FEATURES`` strongest alone (their bins' ROC-AUC; ties: the first) where there are
        more: a file of 10,000 columns has 50 million pairs, which took 12 GB before any was measured."""
        fit = [j for j, f in enumerate(self.features_) if f.section == "fit"]
        if len(fit) > MAX_PAIR_FEATURES:
            strength = {j: univariate_auc(self.bins_[j]) for j in fit}
            fit = sorted(sorted(fit, key=lambda j: -strength[j])[:MAX_PAIR_FEATURES])
        return candidates(fit)

    def _refit(
        self,
        coded: Coded,
        target: npt.NDArray[np.int64],
        C: float,
        fitted: list[LogisticRegression],
        first: LogisticRegression | None = None,
    ) -> Callable[[list[Pair]], FloatArray]:
        """The regression on the evidence columns plus the pairs' (appended to ``fitted``); returns the
        training probabilities the next pair is measured against. ``first``: the regression without
        pairs where it is already fitted (on these rows, with this ``C``)."""

        def refit(pairs: list[Pair]) -> FloatArray:
            M = with_pairs(coded, pairs)[0]
            if first is not None and not pairs:
                lr = first
            else:  # from the fit with one pair fewer (the new pair's coefficient at 0)
                lr = fit_logistic(M, target, C, self.max_iter, fitted[-1] if pairs and fitted else None)
            fitted.append(lr)
            return probability(lr, M)

        return refit

    def _choose(
        self, columns: Sequence[Column], target: npt.NDArray[np.int64], groups: Sequence[Any] | None
    ) -> tuple[float, int]:
        """(C, most pairs): as given, or by cross-validation on the training rows (one-standard-error rule)."""
        fixed_pairs = 0 if self.interactions == "cv" else int(self.interactions)
        if self.C != "cv" and self.interactions != "cv":
            return float(self.C), fixed_pairs
        # fewer folds than CV_FOLDS only where a class has fewer rows than that (every fold needs both)
        n_folds = max(2, min(CV_FOLDS, int(target.sum()), int(len(target) - target.sum())))
        folds = []
        owners = []  # each fold's columns and bins: what its pair search's crossing is a function of
        for train, test in cv_splits(n_folds, target, groups):
            read = [fold_rows(c, train) for c in columns]
            bins = self._bin(read, target[train])
            coded = [code_columns(bins, [fold_rows(c, rows) for c in columns], self.placeholders)
                     for rows in (train, test)]  # fmt: skip
            folds.append((coded[0], coded[1], target[train], target[test], [b.n_bins for b in bins]))
            owners.append([(c, b) for c, b in zip(read, bins, strict=True)])
        # each fold's regression without pairs at each C: the pair search's first refit is the one at C
        grid: list[list[LogisticRegression]] = []
        if self.C == "cv":
            # along the grid from the strongest penalty, each fold's fit starting from its fit at the C before
            starts: list[LogisticRegression | None] = [None] * len(folds)
            for c in CV_GRID:
                starts = [fit_logistic(tr.z, ytr, c, self.max_iter, start)
                          for (tr, _, ytr, _, _), start in zip(folds, starts, strict=True)]  # fmt: skip
                grid.append(starts)
            scores = [[roc_auc(yte, decision(lr, te.z)) for lr, (_, te, _, yte, _) in zip(fits, folds, strict=True)]
                      for fits in grid]  # fmt: skip
            chosen = one_standard_error(scores)
            C, grid = CV_GRID[chosen], [grid[chosen]]
        else:
            C = float(self.C)
        if self.interactions != "cv":
            return C, fixed_pairs
        steps = [[0.0] * len(folds) for _ in range(self.max_interactions + 1)]
        for f, (tr, te, ytr, yte, sizes) in enumerate(folds):
            fitted: list[LogisticRegression] = []
            first = grid[0][f] if grid else None
            pairs = select_pairs(tr.indices, sizes, ytr.astype(float), self._pool(), self.max_interactions,
                                 self._refit(tr, ytr, C, fitted, first), owners[f], _labels(ytr))  # fmt: skip
            for k in range(self.max_interactions + 1):
                used = min(k, len(pairs))  # the search stopped early: more pairs would add nothing
                lr = fitted[used]
                steps[k][f] = roc_auc(yte, decision(lr, with_pairs(te, pairs[:used])[0]))
        return C, one_standard_error(steps)

    def _points(self, intercept: float) -> None:
        """Integer points per bin and per cell from the coefficients."""
        n = len(self.features_)
        contributions = [self.coef_[j] * w for j, w in enumerate(self.woe_)]
        base = [_baseline(f, b, c) for f, b, c in zip(self.features_, self.bins_, contributions, strict=True)]
        relative = [c - c[i] for c, i in zip(contributions, base, strict=True)]
        # a cell is worth its evidence's points as they are (negative for fewer conversions than the
        # features predict): no evidence is 0 points, as for a cell training never saw and no rule names
        cell_relative = [self.coef_[n + q] * np.asarray(p.evidence, float) for q, p in enumerate(self.pairs_)]
        span = sum(max(0.0, float(r.max())) for r in [*relative, *cell_relative])
        # when no bin is worth more than another, every point is 0 whatever the scale: any positive one does
        self.points_per_logit_ = self.total_points / span if span > 0 else float(self.total_points)
        self.points_ = [np.rint(r * self.points_per_logit_).astype(np.int64) for r in relative]
        self.cell_points_ = [np.rint(r * self.points_per_logit_).astype(np.int64) for r in cell_relative]
        self.baseline_bins_ = base
        self.intercept_ = intercept + sum(float(c[i]) for c, i in zip(contributions, base, strict=True))
        self.fit_max_ = self._section_max("fit") + sum(max(0, int(p.max())) for p in self.cell_points_)
        self.engagement_max_ = self._section_max("engagement")

    def _section_max(self, section: str) -> int:
        return int(sum(max(0, int(p.max())) for f, p in zip(self.features_, self.points_, strict=True)
                       if f.section == section))  # fmt: skip

    def _indices(self, X: npt.NDArray[Any] | Sequence[Column]) -> list[npt.NDArray[np.intp]]:
        """Each row's bin per feature, of a matrix or of its columns as ``read_column`` reads them."""
        if isinstance(X, np.ndarray):
            return [b.assign(X[:, j], self.placeholders) for j, b in enumerate(self.bins_)]
        return [b.assign(column, self.placeholders) for column, b in zip(X, self.bins_, strict=True)]

    # -- prediction ----------------------------------------------------------------------------------
    def section_points(
        self, X: Any, columns: Sequence[Column] | None = None
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """(fit points, engagement points) per row, before the model language's floor. ``columns``
        (optional): X's columns as ``read_columns`` reads them, where the caller has them."""
        check_is_fitted(self)
        X = self._validate(X, reset=False)
        fit = np.zeros(X.shape[0], dtype=np.int64)
        eng = np.zeros(X.shape[0], dtype=np.int64)
        if columns is not None and (len(columns) != X.shape[1] or any(len(c) != X.shape[0] for c in columns)):
            raise ValueError(f"columns must be X's {X.shape[1]} columns of {X.shape[0]} rows each")
        indices = self._indices(X if columns is None else columns)
        for f, pts, idx in zip(self.features_, self.points_, indices, strict=True):
            (fit if f.section == "fit" else eng)[:] += _take(pts, idx, 0)
        for pair, pts in zip(self.pairs_, self.cell_points_, strict=True):
            fit += _take(pts, pair.cells(indices[pair.first], indices[pair.second]), 0)
        return fit, eng

    def total_points_of(self, X: Any, columns: Sequence[Column] | None = None) -> npt.NDArray[np.int64]:
        """Points as the model YAML counts them: fit + engagement, each raised to 0 if negative."""
        fit, eng = self.section_points(X, columns)
        return np.asarray(np.maximum(fit, 0) + np.maximum(eng, 0), dtype=np.int64)

    def score_100(self, X: Any, columns: Sequence[Column] | None = None) -> npt.NDArray[np.float64]:
        """The 0–100 score the learned model YAML gives (same scale, same floor, kept to a millionth)."""
        span = self.fit_max_ + self.engagement_max_
        if span == 0:  # nothing learned: every lead has 0 points
            return np.zeros(len(self.total_points_of(X, columns)))
        return kept(np.asarray(self.total_points_of(X, columns) * (100.0 / span), dtype=np.float64))

    def decision_function(self, X: Any, columns: Sequence[Column] | None = None) -> npt.NDArray[np.float64]:
        """Log-odds of the positive class from the integer points."""
        check_is_fitted(self)
        return np.asarray(self.intercept_ + self.total_points_of(X, columns) / self.points_per_logit_, float)

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
        # the first equal feature's weights of evidence, as ever (equal features share a name: only those
        # are compared, as features holding a dict cannot be dictionary keys)
        named: dict[str, list[int]] = {}
        for j, (f, b, pts, base) in enumerate(
            zip(self.features_, self.bins_, self.points_, self.baseline_bins_, strict=True)
        ):
            same = named.setdefault(f.name, [])
            first = next((k for k in same if self.features_[k] == f), j)
            if first == j:
                same.append(j)
            woe = self.woe_[first]
            rows.extend(
                BinRow(f, i, b.counts[i], b.events[i], float(woe[i]), int(pts[i]), i == base)
                for i in range(b.n_bins)
            )
        return rows

    def cells(self) -> list[CellRow]:
        """The cells of every pair that training saw (``to_model`` writes those worth points as rules)."""
        check_is_fitted(self)
        rows: list[CellRow] = []
        for pair, pts in zip(self.pairs_, self.cell_points_, strict=True):
            features = (self.features_[pair.first], self.features_[pair.second])
            rows.extend(
                CellRow(features, code // pair.second_bins, code % pair.second_bins, pair.counts[code],
                        pair.events[code], pair.evidence[code], int(pts[code]))
                for code in range(len(pair.counts))
                if pair.counts[code]
            )  # fmt: skip
        return rows


class LeakageWarning(UserWarning):
    """A feature predicts the outcome almost perfectly on its own: probably filled in after it."""


def _plain_labels(y: Any) -> bool:
    """Whether ``y`` is a numpy row of integers or booleans (what ``learn`` hands every fit)."""
    return isinstance(y, np.ndarray) and y.ndim == 1 and y.dtype.kind in "biu"


def _target_type(y: npt.NDArray[Any]) -> tuple[str, npt.NDArray[Any]]:
    """(scikit-learn's type of target, the distinct labels) of a row of labels, after its check that
    they are classes. Plain labels (``_plain_labels``) are "binary" with at most two distinct values and
    "multiclass" with more, as ``type_of_target`` finds, without its checks (about 2 ms a fit, a tenth of
    a fit on a fold of a few thousand rows)."""
    if _plain_labels(y):
        classes = np.unique(y)
        return "binary" if len(classes) <= 2 else "multiclass", classes
    check_classification_targets(y)
    return type_of_target(y, input_name="y", raise_unknown=True), np.unique(y)


def _labels(target: npt.NDArray[Any]) -> bytes:
    """A key of the rows' outcomes (0 or 1 each, in order)."""
    return hashlib.blake2b(np.ascontiguousarray(target, np.int64).tobytes(), digest_size=16).digest()


def _numbered(n: int) -> tuple[Feature, ...]:
    return tuple(Feature(f"x{j}", "numeric", Attribute(f"x{j}")) for j in range(n))


def evidence(bins: Bins) -> tuple[FloatArray, float]:
    """``bins.woe()`` (read-only) and ``univariate_auc(bins)``, computed once per bins object while kept."""
    kept = _EVIDENCE.get(id(bins))
    if kept is None or kept[0] is not bins:
        woe = bins.woe()
        woe.setflags(write=False)
        kept = _EVIDENCE[id(bins)] = (bins, woe, univariate_auc(bins))
        while len(_EVIDENCE) > _BINS_KEPT:
            _EVIDENCE.pop(next(iter(_EVIDENCE)))
    return kept[1], kept[2]


def forget_bins() -> None:
    """Empty the bins, fold rows and crossings kept for refits (the columns they hold are freed)."""
    forget_crossings()
    _BINS.clear()
    _PREBINNED.clear()
    _EVIDENCE.clear()
    _CODED.clear()
    _CODED_HELD[0] = 0
    _ROWS.clear()
    _ROWS_HELD[0] = 0


def fold_rows(column: Column, rows: IntArray) -> Column:
    """``column[rows]``, the same object for the same column and rows objects while kept (``_ROWS``)."""
    key = (id(column), id(rows))
    kept = _ROWS.get(key)
    if kept is not None and kept[0] is column and kept[1] is rows:
        return kept[2]
    out = column[rows]
    _ROWS[key] = (column, rows, out)
    _ROWS_HELD[0] += len(out)
    while _ROWS_HELD[0] > _ROWS_KEPT and len(_ROWS) > 1:
        _ROWS_HELD[0] -= len(_ROWS.pop(next(iter(_ROWS)))[2])
    return out


def read_columns(
    X: npt.NDArray[Any], features: Sequence[Feature], placeholders: tuple[str, ...] = PLACEHOLDERS
) -> list[Column]:
    """Each column of ``X`` as binning reads it (``read_column``), by its feature's kind."""
    return [read_column(X[:, j], f.kind, placeholders) for j, f in enumerate(features)]


def cv_splits(
    n_folds: int, target: npt.NDArray[np.int64], groups: Sequence[Any] | None
) -> tuple[tuple[IntArray, IntArray], ...]:
    """(train, test) rows of each cross-validation fold: stratified, and by group where there are groups.

    The folds depend on the labels and groups only, and ``fit_within`` refits the same rows many times,
    so the last few are kept (``StratifiedGroupKFold`` costs about a second per split at 8,000 groups)."""
    key = (n_folds, np.asarray(target, np.int64).tobytes(), None if groups is None else tuple(groups))
    return _cv_splits(key)


@functools.lru_cache(maxsize=4)
def _cv_splits(
    key: tuple[int, bytes, tuple[Any, ...] | None],
) -> tuple[tuple[IntArray, IntArray], ...]:
    n_folds, labels, groups = key
    target = np.frombuffer(labels, dtype=np.int64)
    if groups is None:
        splits = [
            (train, test) for train, test in StratifiedKFold(n_folds).split(target.reshape(-1, 1), target)
        ]
    else:
        splits = stratified_group_folds(n_folds, target, groups)
    for train, test in splits:
        train.setflags(write=False)
        test.setflags(write=False)
    return tuple(splits)


def stratified_group_folds(
    n_folds: int, target: npt.NDArray[Any], groups: Sequence[Any]
) -> list[tuple[IntArray, IntArray]]:
    """The folds of scikit-learn's ``StratifiedGroupKFold(n_folds)`` (no shuffle), the same rows in the
    same folds, computed without its per-fold numpy calls: it costs about a second at 8,000 groups (a
    CSV's rows are a group each), this a tenth of that.

    Its rule: groups ordered by the spread of their class counts (most spread first, stable), each put
    in the fold where the classes' shares of the folds spread least (the mean over classes of the
    standard deviation across folds), a near tie (``np.isclose``) going to the fold with fewer rows. The
    candidate folds' spreads are computed in Python floats, each operation and each sum in the order of
    numpy's reductions there (``_spread``), so the floats and so the choices are the same; a class the
    group has no rows of spreads alike in every candidate, computed once."""
    y = np.asarray(target)
    classes, y_inv, y_cnt = np.unique(y, return_inverse=True, return_counts=True)
    if np.all(n_folds > y_cnt):
        raise ValueError(f"n_splits={n_folds} cannot be greater than the number of members in each class.")
    _, groups_inv, groups_cnt = np.unique(np.asarray(groups), return_inverse=True, return_counts=True)
    if n_folds > len(groups_cnt):
        raise ValueError(
            f"Cannot have number of splits n_splits={n_folds} greater than the number of groups: {len(groups_cnt)}."
        )
    per_group = np.zeros((len(groups_cnt), len(classes)))
    np.add.at(per_group, (groups_inv, y_inv), 1)
    n_classes = len(classes)
    totals = [float(c) for c in y_cnt]
    per_fold = [[0.0] * n_classes for _ in range(n_folds)]
    # each class's spread across the folds as they are: the same for every candidate fold of a group
    # without rows of that class
    spread = [_spread([0.0] * n_folds, totals[c]) for c in range(n_classes)]
    fold_of = np.empty(len(groups_cnt), dtype=np.intp)
    rows_of = per_group.tolist()
    for g in np.argsort(-np.std(per_group, axis=1), kind="stable").tolist():
        counts = rows_of[g]
        # candidate i: the folds' counts with this group added to fold i
        evals = []
        for i in range(n_folds):
            total = 0.0
            for c in range(n_classes):
                if counts[c]:
                    column = [
                        per_fold[k][c] + counts[c] if k == i else per_fold[k][c] for k in range(n_folds)
                    ]
                    total += _spread(column, totals[c])
                else:
                    total += spread[c]
            evals.append(total / n_classes)
        sizes = [sum(fold) for fold in per_fold]
        best, low, fewest = 0, math.inf, math.inf
        for i, value in enumerate(evals):
            if value < low or (abs(value - low) <= 1e-8 + 1e-5 * abs(low) and sizes[i] < fewest):
                best, low, fewest = i, value, sizes[i]
        for c in range(n_classes):
            if counts[c]:
                per_fold[best][c] += counts[c]
                spread[c] = _spread([fold[c] for fold in per_fold], totals[c])
        fold_of[g] = best
    row_fold = fold_of[groups_inv]
    rows = np.arange(len(y))
    return [(rows[row_fold != k], rows[row_fold == k]) for k in range(n_folds)]


def _spread(counts: list[float], total: float) -> float:
    """``np.std(np.asarray(counts) / total)``, the same float: the shares summed in order from the first
    (as numpy's reduction over the folds of ``StratifiedGroupKFold``'s evaluation: fewer than eight), the
    mean, the squared deviations summed in order, divided by their number, the square root."""
    shares = [c / total for c in counts]
    mean = shares[0]
    for x in shares[1:]:
        mean += x
    mean /= len(shares)
    squares = (shares[0] - mean) * (shares[0] - mean)
    for x in shares[1:]:
        squares += (x - mean) * (x - mean)
    return math.sqrt(squares / len(shares))


def standardise(values: FloatArray, counts: npt.ArrayLike) -> tuple[float, float]:
    """Mean and standard deviation (1 where there is no spread) of per-bin values over the training rows.

    The regression sees standardised columns: lbfgs then needs as few iterations as on any standardised
    matrix (raw weights of evidence differ in spread by a factor of 30 and more), and the penalty treats
    every feature alike."""
    n = np.asarray(counts, float)
    total = n.sum()
    if total == 0:
        return 0.0, 1.0
    mean = float((n * values).sum() / total)
    sd = math.sqrt(float((n * (values - mean) ** 2).sum() / total))
    return mean, sd if sd > 0 else 1.0


def code_rows(indices: list[IntArray], woe: Sequence[FloatArray], bins: Sequence[Bins]) -> Coded:
    """One column per feature: each row's bin's weight of evidence, standardised (a value in no bin
    has no evidence, 0 before standardising)."""
    stats = [standardise(w, b.counts) for w, b in zip(woe, bins, strict=True)]
    mean = np.asarray([m for m, _ in stats], float)
    sd = np.asarray([d for _, d in stats], float)
    if not indices:
        return Coded(indices, np.zeros((0, 0)), mean, sd)
    z = np.column_stack(
        [_take((w - m) / d, idx, -m / d) for idx, w, (m, d) in zip(indices, woe, stats, strict=True)]
    )
    return Coded(indices, z, mean, sd)


def code_columns(bins: Sequence[Bins], columns: Sequence[Column], placeholders: tuple[str, ...]) -> Coded:
    """``code_rows`` of ``columns`` (as ``read_column`` reads them) by their features' ``bins``, each
    column coded once while kept (``_CODED``): the same arrays as coding it again."""
    indices, z, means, sds = [], [], [], []
    for b, column in zip(bins, columns, strict=True):
        key = (id(b), id(column), placeholders)
        kept = _CODED.get(key)
        if kept is None or kept[0] is not b or kept[1] is not column:
            idx = b.assign(column, placeholders)
            w = evidence(b)[0]
            m, d = standardise(w, b.counts)
            z_column = _take((w - m) / d, idx, -m / d)
            idx.setflags(write=False)  # shared by every fit that finds them: never written
            z_column.setflags(write=False)
            kept = _CODED[key] = (b, column, idx, z_column, m, d)
            _CODED_HELD[0] += len(idx)
            while _CODED_HELD[0] > _CODED_KEPT and len(_CODED) > 1:
                _CODED_HELD[0] -= len(_CODED.pop(next(iter(_CODED)))[2])
        indices.append(kept[2])
        z.append(kept[3])
        means.append(kept[4])
        sds.append(kept[5])
    mean, sd = np.asarray(means, float), np.asarray(sds, float)
    return Coded(indices, np.column_stack(z) if z else np.zeros((0, 0)), mean, sd)


def with_pairs(coded: Coded, pairs: Sequence[Pair]) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(matrix, means, standard deviations): the coded rows with a standardised column per pair (each
    row's cell evidence)."""
    if not pairs:
        return coded.z, coded.mean, coded.sd
    columns, means, sds = [coded.z], [coded.mean], [coded.sd]
    for p in pairs:
        evidence = np.asarray(p.evidence, float)
        m, d = standardise(evidence, p.counts)
        cells = p.cells(coded.indices[p.first], coded.indices[p.second])
        columns.append(_take((evidence - m) / d, cells, -m / d)[:, None])
        means.append(np.asarray([m]))
        sds.append(np.asarray([d]))
    return np.hstack(columns), np.concatenate(means), np.concatenate(sds)


def one_standard_error(scores: Sequence[Sequence[float]]) -> int:
    """The first (simplest) setting whose mean score is within one standard error of the best mean.

    ``scores[i]`` are setting i's validation scores, one per fold, settings ordered from simplest
    (Hastie, Tibshirani & Friedman, *The Elements of Statistical Learning*, 7.10). Every setting is
    validated on the same folds, so the standard error is that of the setting's fold-by-fold difference
    from the best: how hard a fold is cancels out, and what remains is how much the two settings really
    differ."""
    table = np.asarray(scores, float)
    means = table.mean(axis=1)
    best = int(np.argmax(means))
    differences = table - table[best]
    folds = table.shape[1]
    se = differences.std(axis=1, ddof=1) / math.sqrt(folds) if folds > 1 else np.zeros(len(means))
    return int(np.flatnonzero(means - means[best] >= -se)[0])


def _take(values: npt.NDArray[Any], idx: IntArray, fill: Any) -> npt.NDArray[Any]:
    out = values[np.where(idx == NO_BIN, 0, idx)]
    return np.where(idx == NO_BIN, fill, out)


def _baseline(feature: Feature, bins: Bins, contribution: npt.NDArray[np.float64]) -> int:
    """The bin worth 0 points: a fit feature's worst bin; for events, no activity (the rules' absence;
    for a ratio where training always had some, its lowest bin)."""
    if feature.section == "fit":
        return int(np.argmin(contribution))
    if isinstance(feature.source, EventRecency):
        return bins.missing if bins.missing is not None else bins.n_bins - 1
    if isinstance(feature.source, EventRatio):  # missing: no event in either window
        return bins.missing if bins.missing is not None else 0
    return int(np.searchsorted(np.asarray(bins.edges, float), 0.0, side="right"))
