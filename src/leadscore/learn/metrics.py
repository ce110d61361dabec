"""Measures of a score against outcomes. Pure functions of arrays; every one is checked by hand in tests.

``y`` is 1 for a lead that converted, 0 otherwise; ``s`` is any score where higher means likelier.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.stats import rankdata

from leadscore.learn.binning import PRIOR

Array = npt.ArrayLike
DECILES = 10
CALIBRATION_BINS = 10


def _arrays(y: Array, s: Array) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    ya, sa = np.asarray(y, dtype=np.int64), np.asarray(s, dtype=float)
    if ya.shape != sa.shape or ya.ndim != 1:
        raise ValueError(f"labels and scores must be equal-length 1-d arrays, not {ya.shape} and {sa.shape}")
    return ya, sa


def roc_auc(y: Array, s: Array) -> float:
    """Probability that a random converter outscores a random non-converter (ties count half)."""
    ya, sa = _arrays(y, s)
    pos, neg = int(ya.sum()), int(len(ya) - ya.sum())
    if pos == 0 or neg == 0:
        return math.nan
    ranks = rankdata(sa)  # average ranks for ties
    return float((ranks[ya == 1].sum() - pos * (pos + 1) / 2) / (pos * neg))


def pr_auc(y: Array, s: Array) -> float:
    """Average precision: mean over converters of the precision among leads scored at least as high."""
    ya, sa = _arrays(y, s)
    pos = int(ya.sum())
    if pos == 0:
        return math.nan
    order = np.argsort(-sa, kind="stable")
    ys, ss = ya[order], sa[order]
    # precision and recall at each distinct threshold (a tie group is taken whole)
    last = np.r_[np.flatnonzero(np.diff(ss) != 0), len(ss) - 1]
    tp = np.cumsum(ys)[last]
    precision = tp / (last + 1)
    recall = tp / pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


@dataclass(frozen=True)
class Decile:
    decile: int  # 1 = the highest scores
    leads: int
    converted: int
    rate: float
    lift: float  # rate / overall rate
    cumulative_capture: float  # share of all conversions in this and higher deciles
    min_score: float
    max_score: float


def gains(y: Array, s: Array, groups: int = DECILES) -> list[Decile]:
    """Lift and gains by score decile (leads sorted by score, split into equal-size groups)."""
    ya, sa = _arrays(y, s)
    order = np.argsort(-sa, kind="stable")
    total, overall = max(int(ya.sum()), 1), ya.mean() if len(ya) else math.nan
    out, running = [], 0
    for i, part in enumerate(np.array_split(order, groups), start=1):
        if not len(part):
            continue
        conv = int(ya[part].sum())
        running += conv
        rate = conv / len(part)
        out.append(Decile(i, len(part), conv, rate, rate / overall if overall else math.nan, running / total,
                          float(sa[part].min()), float(sa[part].max())))  # fmt: skip
    return out


def capture(y: Array, s: Array, top_share: float) -> float:
    """Share of all conversions held by the ``top_share`` highest-scored leads."""
    ya, sa = _arrays(y, s)
    k = round(top_share * len(ya))
    top = np.argsort(-sa, kind="stable")[:k]
    return float(ya[top].sum() / ya.sum()) if ya.sum() else math.nan


@dataclass(frozen=True)
class Group:
    key: str
    leads: int
    converted: int
    rate: float


def by_group(y: Array, keys: Sequence[Any]) -> list[Group]:
    """Conversion rate per label (a band, a grade × level cell), in key order."""
    ya = np.asarray(y, dtype=np.int64)
    out = []
    for key in sorted({str(k) for k in keys}):
        mask = np.asarray([str(k) == key for k in keys])
        out.append(Group(key, int(mask.sum()), int(ya[mask].sum()), float(ya[mask].mean())))
    return out


@dataclass(frozen=True)
class CalibrationBin:
    low: float
    high: float
    leads: int
    predicted: float  # mean predicted probability
    observed: float  # conversion rate


def calibration(y: Array, p: Array, bins: int = CALIBRATION_BINS) -> tuple[list[CalibrationBin], float]:
    """Reliability table over equal-width probability bins, and the expected calibration error
    ECE = Σ (leads in bin / all leads) × |observed − predicted|."""
    ya, pa = _arrays(y, p)
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip(np.searchsorted(edges, pa, side="right") - 1, 0, bins - 1)
    table, ece = [], 0.0
    for b in range(bins):
        mask = idx == b
        if not mask.any():
            continue
        predicted, observed = float(pa[mask].mean()), float(ya[mask].mean())
        table.append(
            CalibrationBin(float(edges[b]), float(edges[b + 1]), int(mask.sum()), predicted, observed)
        )
        ece += mask.sum() / len(ya) * abs(observed - predicted)
    return table, float(ece)


@dataclass(frozen=True)
class RuleLift:
    rule: str
    coverage: float  # share of leads the rule gave points (or matched)
    rate_hit: float
    rate_miss: float
    lift: float  # rate_hit / rate_miss: leads that hit this rule convert X times as often


def rule_lift(y: Array, hits: Mapping[str, Sequence[bool]]) -> list[RuleLift]:
    ya = np.asarray(y, dtype=np.int64)
    out = []
    for rule, flags in hits.items():
        mask = np.asarray(flags, dtype=bool)
        hit = float(ya[mask].mean()) if mask.any() else math.nan
        miss = float(ya[~mask].mean()) if (~mask).any() else math.nan
        lift = hit / miss if miss and not math.isnan(hit) else math.nan
        out.append(RuleLift(rule, float(mask.mean()) if len(mask) else math.nan, hit, miss, lift))
    return out


def psi(expected: Array, actual: Array, bins: int = DECILES) -> float:
    """Population stability index of ``actual`` against ``expected``, over the deciles of ``expected``:
    Σ (a − e) × ln(a / e) with a, e the shares per bin (half an observation added per bin, as in the
    scorecard's weights of evidence, so an empty bin stays finite)."""
    e, a = np.asarray(expected, dtype=float), np.asarray(actual, dtype=float)
    cuts = np.unique(np.quantile(e, np.linspace(0, 1, bins + 1)[1:-1]))
    ec = np.bincount(np.searchsorted(cuts, e, side="right"), minlength=len(cuts) + 1).astype(float)
    ac = np.bincount(np.searchsorted(cuts, a, side="right"), minlength=len(cuts) + 1).astype(float)
    k = len(ec)
    es, as_ = (ec + PRIOR) / (ec.sum() + PRIOR * k), (ac + PRIOR) / (ac.sum() + PRIOR * k)
    return float(np.sum((as_ - es) * np.log(as_ / es)))


def psi_counts(expected: Sequence[int], actual: Sequence[int]) -> float:
    """PSI from counts per bin (no smoothing: every bin must be non-empty in both)."""
    e, a = np.asarray(expected, float), np.asarray(actual, float)
    es, as_ = e / e.sum(), a / a.sum()
    return float(np.sum((as_ - es) * np.log(as_ / es)))


def finite(value: Any) -> Any:
    """JSON has no NaN: undefined numbers (no conversions in a group, a holdout not measured) become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite(v) for v in value]
    if isinstance(value, tuple):
        return tuple(finite(v) for v in value)
    return value
