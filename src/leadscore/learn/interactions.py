"""Pairs of attribute features whose bin combinations (cells) carry evidence the bins alone do not.

An additive scorecard gives a lead the points of each feature's bin; a pair adds points per *cell*
(a bin of the first feature together with a bin of the second), written in the model YAML as fit rules
with ``all: [first bin, second bin]``. A cell's evidence is how far its conversions depart from what the
additive model expects there: ``ln((observed + k) / (expected + k))``, shrunk towards 0 by an
empirical-Bayes ``k`` estimated from the spread of the cells themselves (a gamma prior on the ratio
observed / expected whose variance is the part of the cells' spread that Poisson noise does not explain).
Pairs are chosen greedily, each the one that most improves the training log-likelihood given the pairs
before it; cross-validation decides how many to keep.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import sparse

from leadscore.learn.binning import NO_BIN

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]


@dataclass(frozen=True)
class Pair:
    """Two features (by position) and the evidence of each cell, cell ``i * second_bins + j``."""

    first: int
    second: int
    second_bins: int
    counts: tuple[int, ...]
    events: tuple[int, ...]
    evidence: tuple[float, ...]
    gain: float  # training log-likelihood gained by the cells (Poisson approximation)

    def cells(self, first: IntArray, second: IntArray) -> IntArray:
        """The cell of each row (``NO_BIN`` where either feature's value is in no bin)."""
        return cell_codes(first, second, self.second_bins)


def cell_codes(first: IntArray, second: IntArray, second_bins: int) -> IntArray:
    bad = (first == NO_BIN) | (second == NO_BIN)
    return np.where(bad, NO_BIN, first * second_bins + second).astype(np.intp)


def shrunk_ratio_log(observed: FloatArray, expected: FloatArray) -> FloatArray:
    """ln of each cell's observed / expected conversions, shrunk by the empirical-Bayes prior strength."""
    seen = expected > 0
    if not seen.any():
        return np.zeros(len(observed))
    ratio = observed[seen] / expected[seen]
    total = float(expected[seen].sum())
    spread = float((expected[seen] * (ratio - 1.0) ** 2).sum()) / total  # expected-weighted variance
    noise = float(seen.sum()) / total  # what Poisson counts alone would give: Var(O / E) = 1 / E
    if spread <= noise:  # the cells differ no more than chance: no evidence
        return np.zeros(len(observed))
    k = 1.0 / (spread - noise)
    out = np.zeros(len(observed))
    out[seen] = np.log((observed[seen] + k) / (expected[seen] + k))
    return out


def fit_pair(
    first: int, second: int, indices: Sequence[IntArray], sizes: Sequence[int], y: FloatArray, p: FloatArray
) -> Pair:
    """The pair's cells on the training rows, against the current model's probabilities ``p``."""
    codes = cell_codes(indices[first], indices[second], sizes[second])
    ok = codes != NO_BIN
    n_cells = sizes[first] * sizes[second]
    counts = np.bincount(codes[ok], minlength=n_cells)
    observed = np.asarray(np.bincount(codes[ok], weights=y[ok], minlength=n_cells), float)
    expected = np.asarray(np.bincount(codes[ok], weights=p[ok], minlength=n_cells), float)
    w = shrunk_ratio_log(observed, expected)
    gain = float((observed * w - expected * np.expm1(w)).sum())
    events = tuple(int(o) for o in observed)  # sums of 0 and 1: exact
    return Pair(first, second, sizes[second], tuple(int(c) for c in counts), events,
                tuple(float(v) for v in w), gain)  # fmt: skip


def candidates(eligible: Sequence[int]) -> list[tuple[int, int]]:
    return list(itertools.combinations(eligible, 2))


def select_pairs(
    indices: Sequence[IntArray],
    sizes: Sequence[int],
    y: FloatArray,
    pool: Sequence[tuple[int, int]],
    most: int,
    probabilities: Callable[[list[Pair]], FloatArray],
) -> list[Pair]:
    """Up to ``most`` pairs, greedily: each step refits (``probabilities``) and adds the best pair."""
    chosen: list[Pair] = []
    taken: set[tuple[int, int]] = set()
    p = probabilities(chosen)
    crossing = Crossing(pool, indices, sizes, y) if most and pool else None
    for _ in range(most):
        options = [(a, b) for a, b in pool if (a, b) not in taken]
        if not options or crossing is None:
            break
        a, b = options[int(np.argmax(crossing.gains(options, p)))]
        best = fit_pair(a, b, indices, sizes, y, p)
        if best.gain <= 0:
            break
        chosen.append(best)
        taken.add((best.first, best.second))
        p = probabilities(chosen)
    return chosen


def gains(
    pairs: Sequence[tuple[int, int]],
    indices: Sequence[IntArray],
    sizes: Sequence[int],
    y: FloatArray,
    p: FloatArray,
) -> FloatArray:
    """``fit_pair(...).gain`` of each pair, for all pairs at once (``Crossing``)."""
    return Crossing(pairs, indices, sizes, y).gains(pairs, p)


class Crossing:
    """Every pair's cells of ``pool`` at once: with ``H`` the rows' bins one-hot (a column per bin of every
    feature in the pool), ``Hᵀ diag(w) H`` holds every pair's cell sums of ``w``, so two sparse products
    count the observed and expected conversions of every cell. The observed ones (of ``y``) are counted
    once, for every step of the greedy search; the expected ones change with each refit."""

    def __init__(
        self,
        pool: Sequence[tuple[int, int]],
        indices: Sequence[IntArray],
        sizes: Sequence[int],
        y: FloatArray,
    ) -> None:
        used = sorted({j for pair in pool for j in pair})
        starts = np.cumsum([0, *(sizes[j] for j in used)])
        self.offset = dict(zip(used, starts[:-1].tolist(), strict=True))
        present = [indices[j] != NO_BIN for j in used]
        self.rows = np.concatenate([np.flatnonzero(ok) for ok in present])
        self.cols = np.concatenate(
            [indices[j][ok] + self.offset[j] for j, ok in zip(used, present, strict=True)]
        )
        self.shape = (len(y), int(starts[-1]))
        self.H = sparse.csr_matrix((np.ones(len(self.rows)), (self.rows, self.cols)), shape=self.shape)
        self.sizes = sizes
        self.observed = self._crossed(np.asarray(y, float))

    def _crossed(self, w: FloatArray) -> FloatArray:
        W = sparse.csr_matrix((w[self.rows], (self.rows, self.cols)), shape=self.shape)
        return np.asarray((self.H.T @ W).toarray(), float)

    def gains(self, pairs: Sequence[tuple[int, int]], p: FloatArray) -> FloatArray:
        """``fit_pair(...).gain`` of each pair (of the pool) against the probabilities ``p``."""
        sizes, offset = self.sizes, self.offset
        # cell i * sizes[b] + j of pair (a, b) is bin i of a (a row of the product) with bin j of b (a column)
        first = np.concatenate([np.repeat(np.arange(sizes[a]) + offset[a], sizes[b]) for a, b in pairs])
        second = np.concatenate([np.tile(np.arange(sizes[b]) + offset[b], sizes[a]) for a, b in pairs])
        segment = np.repeat(np.arange(len(pairs)), [sizes[a] * sizes[b] for a, b in pairs])
        expected = self._crossed(np.asarray(p, float))
        return _segment_gains(self.observed[first, second], expected[first, second], segment, len(pairs))


def _segment_gains(observed: FloatArray, expected: FloatArray, segment: IntArray, n: int) -> FloatArray:
    """``shrunk_ratio_log`` and the gain of ``fit_pair`` for each segment (pair) of the cells at once."""
    seen = expected > 0
    safe = np.where(seen, expected, 1.0)
    ratio = np.where(seen, observed / safe, 1.0)
    total = np.bincount(segment, weights=np.where(seen, expected, 0.0), minlength=n)
    spread_sum = np.bincount(segment, weights=np.where(seen, expected * (ratio - 1.0) ** 2, 0.0), minlength=n)
    n_seen = np.bincount(segment, weights=seen.astype(float), minlength=n)
    has = total > 0
    spread = np.where(has, spread_sum / np.where(has, total, 1.0), 0.0)
    noise = np.where(has, n_seen / np.where(has, total, 1.0), 0.0)
    evidence = has & (spread > noise)
    k = np.where(evidence, 1.0 / np.where(evidence, spread - noise, 1.0), 1.0)[segment]
    w = np.where(seen & evidence[segment], np.log((observed + k) / (safe + k)), 0.0)
    return np.asarray(np.bincount(segment, weights=observed * w - expected * np.expm1(w), minlength=n), float)
