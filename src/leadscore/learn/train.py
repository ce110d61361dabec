"""``learn``: a scorecard fitted on the training rows, written as a model, measured on the holdout rows
beside the gradient-boosting challenger fitted on the same rows and features."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from leadscore.learn import metrics
from leadscore.learn.challenger import Kind, fit_challenger
from leadscore.learn.dataset import HOLDOUT_SHARE, Dataset
from leadscore.learn.features import Feature
from leadscore.learn.scorecard import Scorecard
from leadscore.learn.to_model import to_model
from leadscore.model import ScoringModel, dump_model

HOT_SHARE = 0.1  # the hottest tenth of training leads is 'hot' in the learned model ...
WARM_SHARE = 0.2  # ... and the next fifth 'warm'; both are options of `leadscore learn`


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

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.model,
            "train_rows": self.train_rows,
            "holdout_rows": self.holdout_rows,
            "holdout_converted": self.holdout_converted,
            "points": vars(self.points),
            "challenger": vars(self.challenger) if self.challenger else None,
            "auc_gap": self.auc_gap,
            "warnings": self.warnings,
            "dropped": [list(d) for d in self.dropped],
            "excluded": self.excluded,
            "rules": len(self.model.fit) + len(self.model.engagement),
            "regularisation": self.scorecard.C_,
            "pairs": [[c.name for c in cells] for cells in self.pairs],
        }

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
    **params: Any,
) -> LearnResult:
    """``interactions="cv"``: cross-validation on the training rows decides how many pairs of attribute
    features (up to the scorecard's ``max_interactions``) get points per cell; other ``params`` go to
    ``Scorecard``."""
    train, holdout = data.split(holdout_share)
    sc = Scorecard(data.features, interactions=interactions, **params).fit(
        train.X, train.y, groups=list(train.keys)
    )
    train_scores = sc.score_100(train.X)
    bands = (
        float(np.quantile(train_scores, 1 - hot_share)),
        float(np.quantile(train_scores, 1 - hot_share - warm_share)),
    )
    model = to_model(sc, name, description, bands)
    result = LearnResult(sc, model, dump_model(model), len(train), len(holdout), int(holdout.y.sum()),
                         Measured("points model", float("nan"), float("nan"), float("nan")), None,
                         [*data.notes, *sc.warnings_], data.dropped, dict(data.excluded))  # fmt: skip
    if len(holdout) and 0 < holdout.y.sum() < len(holdout):
        result.points = measure(
            "points model", holdout.y, sc.score_100(holdout.X), sc.predict_proba(holdout.X)[:, 1]
        )
        if challenger is not None:
            ch = fit_challenger(data.features, train.X, train.y, challenger, sc.placeholders)
            p = ch.predict_proba(holdout.X)
            result.challenger = measure(f"{challenger} challenger", holdout.y, p, p)
    return result
