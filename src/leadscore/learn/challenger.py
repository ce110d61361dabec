"""The gradient-boosting challenger: fitted on the same features, reported beside the points model so
users see what readability costs. LightGBM (the ``lightgbm`` extra), or scikit-learn's
HistGradientBoosting where asked or where LightGBM is not installed."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from leadscore.learn.binning import numeric_column
from leadscore.learn.features import PLACEHOLDERS, Feature, Other, category

Kind = Literal["lightgbm", "hist"]
log = logging.getLogger("leadscore.learn")
SEED = 0  # boosting draws no random subsamples by default; the seed only pins ties


@dataclass
class Encoder:
    """Numbers as floats, categories as integer codes (missing and placeholders as NaN)."""

    features: Sequence[Feature]
    placeholders: tuple[str, ...] = PLACEHOLDERS
    codes: dict[int, dict[str, int]] = field(default_factory=dict)

    def __call__(self, X: npt.NDArray[Any], *, learn: bool = False) -> npt.NDArray[np.float64]:
        cols = []
        for j, f in enumerate(self.features):
            if f.kind == "numeric":
                cols.append(numeric_column(X[:, j]))
                continue
            codes = self.codes.setdefault(j, {})
            values = []
            for v in X[:, j]:
                key = category(v, self.placeholders)
                if key is None or isinstance(key, Other):
                    values.append(np.nan)
                    continue
                name = repr(key)
                if learn and name not in codes:
                    codes[name] = len(codes)
                values.append(float(codes.get(name, len(codes))))  # unseen: a code of its own
            cols.append(np.asarray(values, float))
        return np.column_stack(cols) if cols else np.zeros((len(X), 0))

    @property
    def categorical(self) -> list[int]:
        return [j for j, f in enumerate(self.features) if f.kind == "categorical"]


@dataclass
class Challenger:
    kind: Kind
    encoder: Encoder
    model: Any

    def predict_proba(self, X: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
        return np.asarray(self.model.predict_proba(self.encoder(X))[:, 1], float)


def fit_challenger(
    features: Sequence[Feature],
    X: npt.NDArray[Any],
    y: npt.NDArray[Any],
    kind: Kind = "lightgbm",
    placeholders: tuple[str, ...] = PLACEHOLDERS,
) -> Challenger:
    """Library defaults throughout: the challenger shows what an untuned, flexible model reaches. The
    returned challenger's ``kind`` says which was fitted."""
    enc = Encoder(features, placeholders)
    M = enc(X, learn=True)
    if kind == "lightgbm":
        try:
            from lightgbm import LGBMClassifier
        except ImportError as exc:
            log.warning(
                "LightGBM cannot be loaded (%s; pip install 'leadscore[lightgbm]'): the challenger is "
                "scikit-learn's HistGradientBoosting",
                exc,
            )
            kind = "hist"
        else:
            model: Any = LGBMClassifier(verbose=-1, random_state=SEED)
            model.fit(M, y, categorical_feature=enc.categorical or "auto")
            return Challenger(kind, enc, model)
    from sklearn.ensemble import HistGradientBoostingClassifier

    mask = np.zeros(M.shape[1], dtype=bool)
    mask[enc.categorical] = True
    model = HistGradientBoostingClassifier(
        random_state=SEED, categorical_features=mask if mask.any() else None
    )
    model.fit(M, y)
    return Challenger(kind, enc, model)
