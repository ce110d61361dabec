"""Guards before a model is learned: enough outcomes of each kind, and no feature that leaks the outcome."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from leadscore.errors import LeadscoreError
from leadscore.learn.binning import PRIOR, Bins
from leadscore.learn.features import Feature


class NotEnoughDataError(LeadscoreError, ValueError):
    """Too few outcomes (of one class) to learn from; the message says how many and how many are needed."""


class NothingLearnedError(LeadscoreError, ValueError):
    """Every bin of every feature came out worth the same points: no model to write."""


def check_minimum(positives: int, negatives: int, needed: int) -> None:
    if positives < needed or negatives < needed:
        raise NotEnoughDataError(
            f"too few outcomes to learn from: {positives} converted and {negatives} not converted; "
            f"at least {needed} of each class are needed (wait for more outcomes, widen the period, "
            "or lower the minimum)"
        )


def univariate_auc(bins: Bins) -> float:
    """ROC-AUC of the feature's bins alone (ranked by their conversion rate), from the bin counts."""
    events, counts = np.asarray(bins.events, float), np.asarray(bins.counts, float)
    order = np.argsort((events + PRIOR) / (counts + 2 * PRIOR), kind="stable")
    pos = events[order]
    neg = counts[order] - pos
    if pos.sum() == 0 or neg.sum() == 0:
        return 0.5
    below = np.concatenate([[0.0], np.cumsum(neg)[:-1]])  # negatives in lower-ranked bins
    return float((pos * (below + neg / 2)).sum() / (pos.sum() * neg.sum()))


def check_leakage(
    features: Sequence[Feature], bins: Sequence[Bins], limit: float, aucs: Sequence[float] | None = None
) -> list[str]:
    """A message per feature whose bins alone reach ``limit`` AUC: such a field is usually filled in
    after the outcome (a sales status, a lost reason) and makes the model useless on new leads.
    ``aucs``: each bins' ``univariate_auc`` where the caller has it."""
    out = []
    known = [univariate_auc(b) for b in bins] if aucs is None else aucs
    for feature, auc in zip(features, known, strict=True):
        if auc >= limit:
            out.append(
                f"feature {feature.name!r} alone predicts the outcome almost perfectly (training AUC "
                f"{auc:.3f} >= {limit}); if it is filled in after the outcome, exclude it"
            )
    return out
