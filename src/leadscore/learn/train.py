"""``learn``: a scorecard fitted on the training rows, written as a model, measured on the holdout rows
beside the gradient-boosting challenger fitted on the same rows and on every feature the scorecard was
offered (not only those it kept: what the learner leaves out is part of what readability costs)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
from threadpoolctl import threadpool_limits

from leadscore.learn import metrics
from leadscore.learn.budget import choose, fit_candidate, fit_within, rank
from leadscore.learn.challenger import Kind, fit_challenger
from leadscore.learn.checks import NothingLearnedError, check_minimum
from leadscore.learn.dataset import HOLDOUT_SHARE, Dataset, split_rows
from leadscore.learn.defaults import HOT_SHARE, WARM_SHARE
from leadscore.learn.features import PLACEHOLDERS, Feature, family
from leadscore.learn.scorecard import Scorecard, forget_bins, read_columns
from leadscore.learn.to_model import to_model
from leadscore.model import ScoringModel, dump_model
from leadscore.model.scoring_model import MAX_RULES


@dataclass(frozen=True)
class Measured:
    """One model on the holdout rows."""

    name: str
    roc_auc: float
    pr_auc: float
    ece: float


@dataclass
class LearnResult:
    scorecard: Scorecard
    model: ScoringModel
    yaml: str
    train_rows: int
    holdout_rows: int
    holdout_converted: int
    points: Measured
    challenger: Measured | None
    warnings: list[str] = field(default_factory=list)
    dropped: tuple[tuple[str, str], ...] = ()
    excluded: dict[str, int] = field(default_factory=dict)
    holdout: str = ""  # what the holdout rows are (a hash of the id, the newest rows, a test file, none)
    unconstrained: Measured | None = None  # the model before the rule budget was applied, if it bound
    choice: str = ""  # which candidate (features, how the budget is spent) and how it was chosen

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: a measure not taken (no holdout, one class held out) is null, not NaN."""
        return metrics.finite(
            {
                "model": self.model.model,
                "train_rows": self.train_rows,
                "holdout_rows": self.holdout_rows,
                "holdout_converted": self.holdout_converted,
                "points": vars(self.points),
                "challenger": vars(self.challenger) if self.challenger else None,
                "unconstrained": vars(self.unconstrained) if self.unconstrained else None,
                "auc_gap": self.auc_gap,
                "warnings": self.warnings,
                "dropped": [list(d) for d in self.dropped],
                "excluded": self.excluded,
                "holdout": self.holdout,
                "choice": self.choice,
                "rules": len(self.model.fit) + len(self.model.engagement),
                "regularisation": self.scorecard.C_,
                "pairs": [[c.name for c in cells] for cells in self.pairs],
            }
        )

    @property
    def pairs(self) -> list[tuple[Feature, Feature]]:
        """The pairs of features that earn points per cell."""
        sc = self.scorecard
        return [(sc.features_[p.first], sc.features_[p.second]) for p in sc.pairs_]

    @property
    def auc_gap(self) -> float | None:
        return None if self.challenger is None else self.challenger.roc_auc - self.points.roc_auc


def measure(
    name: str, y: np.ndarray[Any, Any], score: np.ndarray[Any, Any], p: np.ndarray[Any, Any]
) -> Measured:
    return Measured(name, metrics.roc_auc(y, score), metrics.pr_auc(y, score), metrics.calibration(y, p)[1])


def learn(
    data: Dataset,
    name: str,
    *,
    holdout_share: float = HOLDOUT_SHARE,
    challenger: Kind | None = "lightgbm",
    hot_share: float = HOT_SHARE,
    warm_share: float = WARM_SHARE,
    description: str = "",
    interactions: int | Literal["cv"] = "cv",
    max_rules: int = MAX_RULES,
    holdout: str = "hash",
    test: Dataset | None = None,
    **params: Any,
) -> LearnResult:
    """``interactions="cv"``: cross-validation on the training rows decides how many pairs of attribute
    features (up to the scorecard's ``max_interactions``) get points per cell; other ``params`` go to
    ``Scorecard``. The model has at most ``max_rules`` rules: which features it starts from (the feature
    families) and how the budget is spent (coarser bins, or the strongest features at few bins) are
    chosen by time-forward cross-validation on the training rows (``budget.choose``); the full model
    (within the model language's limit) is measured beside it where the budget binds.

    BLAS runs on one thread here: the learner fits hundreds of small regressions, and a BLAS thread per
    core costs about ten times the CPU of the fit itself on a busy machine (``bench/README.md``)."""
    with threadpool_limits(limits=1, user_api="blas"):
        try:
            return _learn(data, name, holdout_share=holdout_share, challenger=challenger, hot_share=hot_share,
                          warm_share=warm_share, description=description, interactions=interactions,
                          max_rules=max_rules, holdout=holdout, test=test, **params)  # fmt: skip
        finally:
            forget_bins()


def _scores(
    sc: Scorecard, X: np.ndarray[Any, Any], columns: list[Any]
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """The 0–100 score and the probability (``predict_proba``'s) of rows whose columns are read."""
    return sc.score_100(X, columns), 1.0 / (1.0 + np.exp(-sc.decision_function(X, columns)))


def _learn(
    data: Dataset,
    name: str,
    *,
    holdout_share: float,
    challenger: Kind | None,
    hot_share: float,
    warm_share: float,
    description: str,
    interactions: int | Literal["cv"],
    max_rules: int,
    holdout: str,
    test: Dataset | None,
    **params: Any,
) -> LearnResult:
    if test is not None:
        train, held, what = data, test, f"holdout: the test set ({len(test)} rows)"
    else:
        train, held, what = split_rows(data, holdout, holdout_share)
    # before any fitting: one class (or too few of one) is a clear error, not the estimator's ValueError
    positives = int(train.y.sum())
    check_minimum(positives, len(train) - positives, int(params.get("min_class_count", 50)))
    if not data.features:  # the estimator's "Found array with 0 feature(s)", a traceback, before
        said = "; ".join(f"{n}: {why}" for n, why in data.dropped[:3])
        raise NothingLearnedError(
            "nothing to learn from: no column or attribute is a feature"
            + (
                f" ({len(data.dropped)} dropped: {said}{'; ...' if len(data.dropped) > 3 else ''})"
                if said
                else ""
            )
        )
    params = {**params, "interactions": interactions}
    groups = list(train.keys)
    # every column read once (numbers converted, categories keyed) for the many fits below
    columns = read_columns(train.X, data.features, params.get("placeholders", PLACEHOLDERS))
    every = range(len(data.features))
    full = fit_within(train.X, train.y, groups, data.features, every, params, MAX_RULES, columns)
    binds = full.rules > max_rules
    # the candidates are compared with the regularisation and the number of pairs of the full model
    fixed = {**params, "C": full.scorecard.C_, "interactions": len(full.scorecard.pairs_)}
    times = train.as_of if train.as_of is not None else train.times
    choice = choose(train.X, train.y, train.keys, times, data.features, fixed, max_rules, binds, columns)
    unchanged = set(choice.candidate.families) == {family(f) for f in data.features}
    if not binds and unchanged and choice.candidate.top is None:
        fitted = full
    else:
        ranked = rank(train.X, train.y, groups, data.features, fixed, columns) if choice.candidate.top else {}
        # as it was validated: with the full model's regularisation and number of pairs
        # the full model's rounds that this fit repeats (the same columns, its C and pairs) are taken from it
        fitted = fit_candidate(train.X, train.y, groups, data.features, choice.candidate, ranked, fixed,
                               max_rules, columns, full)  # fmt: skip
    sc, keep = fitted.scorecard, fitted.keep
    notes = [
        *data.notes,
        *(f"test set: {n}" for n in (test.notes if test is not None else ())),
        *fitted.notes,
    ]
    features = tuple(data.features[j] for j in keep)
    train_scores = sc.score_100(train.X[:, keep], [columns[j] for j in keep])
    bands = (
        float(np.quantile(train_scores, 1 - hot_share)),
        float(np.quantile(train_scores, 1 - hot_share - warm_share)),
    )
    train_full, held_full = train, held
    train, held = (replace(d, features=features, X=d.X[:, keep]) for d in (train, held))
    model = to_model(sc, name, description, bands)
    result = LearnResult(sc, model, dump_model(model), len(train), len(held), int(held.y.sum()),
                         Measured("points model", float("nan"), float("nan"), float("nan")), None,
                         [*notes, *sc.warnings_], data.dropped, dict(data.excluded), what, choice=choice.summary)  # fmt: skip
    if len(held) and 0 < held.y.sum() < len(held):
        # the holdout's columns read once for both models (as the training rows' were)
        read = read_columns(held_full.X, data.features, params.get("placeholders", PLACEHOLDERS))
        result.points = measure("points model", held.y, *_scores(sc, held.X, [read[j] for j in keep]))
        if binds:
            usc, X = full.scorecard, held_full.X[:, full.keep]
            result.unconstrained = measure(f"unconstrained ({full.rules} rules)", held.y,
                                           *_scores(usc, X, [read[j] for j in full.keep]))  # fmt: skip
        if challenger is not None:
            ch = fit_challenger(data.features, train_full.X, train.y, challenger, sc.placeholders)
            p = ch.predict_proba(held_full.X)
            result.challenger = measure(f"{ch.kind} challenger", held.y, p, p)
    elif holdout != "none" or test is not None:
        result.warnings.append(
            f"the held-out rows ({len(held)}, {int(held.y.sum())} converted) do not hold both outcomes: "
            "the model is not measured (ROC-AUC, PR-AUC and ECE are undefined)"
        )
    return result
