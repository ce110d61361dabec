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
    owners: Sequence[tuple[object, ...]] | None = None,
    rows: object = None,
) -> list[Pair]:
    """Up to ``most`` pairs, greedily: each step refits (``probabilities``) and adds the best pair.

    ``owners`` (optional): per feature, the objects its ``indices`` and size are a function of (its
    column and its bins), and ``rows`` a key of ``y``: a crossing kept from an earlier search whose
    features include these, by those objects, is used again (``crossing_for``)."""
    chosen: list[Pair] = []
    taken: set[tuple[int, int]] = set()
    p = probabilities(chosen)
    crossing = None
    if most and pool:
        crossing = (Crossing(pool, indices, sizes, y) if owners is None
                    else crossing_for(pool, indices, sizes, y, owners, rows))  # fmt: skip
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


# The pool's crossing is kept per ``Crossing`` (12 bytes a row and pair) up to this many rows times pairs;
# past it each block of pairs is crossed again at every step instead.
KEEP_CELLS = 1 << 23
BLOCK_CELLS = 1 << 22  # rows times pairs crossed in one sparse matrix
BAND_ROWS = 128  # rows of codes transposed at once (``Crossing._matrix``)


class Crossing:
    """Every pair's cells of ``pool`` at once: ``K``, a sparse matrix with a row per training row and a
    column per cell of every pair (pair after pair), holds a 1 at each row's cell in each pair, so
    ``Kᵀ w`` sums ``w`` over every cell of every pair. A feature's values in no bin (``NO_BIN``) count in
    a bin past its last, and a pair's cells with it are dropped from what is returned. The observed
    conversions (of ``y``) are counted once, for every step of the greedy search; the expected ones
    change with each refit.

    ``Kᵀ w`` adds each cell's rows in row order from 0 (scikit-learn's compressed-column product goes
    through the rows in order), as ``fit_pair``'s ``bincount`` does: the same floats."""

    def __init__(
        self,
        pool: Sequence[tuple[int, int]],
        indices: Sequence[IntArray],
        sizes: Sequence[int],
        y: FloatArray,
    ) -> None:
        self.pool = list(pool)
        self.position = {pair: q for q, pair in enumerate(self.pool)}
        self.n_rows = rows = len(y)
        used = sorted({j for pair in self.pool for j in pair})
        column = {j: i for i, j in enumerate(used)}
        # each feature of the pool's bin of each row (a feature's row of values), the values in none past
        # the last
        self.bins = np.empty((len(used), rows), dtype=np.int32)
        for i, j in enumerate(used):
            self.bins[i] = np.where(indices[j] == NO_BIN, sizes[j], indices[j])
        self.first = np.asarray([column[a] for a, _ in self.pool], dtype=np.intp)
        self.second = np.asarray([column[b] for _, b in self.pool], dtype=np.intp)
        self.width = np.asarray([sizes[b] + 1 for _, b in self.pool], dtype=np.int32)
        self.wide_starts = np.cumsum([0, *((sizes[a] + 1) * (sizes[b] + 1) for a, b in self.pool)])
        self.starts = np.cumsum([0, *(sizes[a] * sizes[b] for a, b in self.pool)])
        # each pair's cells of bins only (cell i * sizes[b] + j), among all the wide cells: a wide row of
        # a pair is one cell longer than its cells' rows
        pair = np.repeat(np.arange(len(self.pool)), np.diff(self.starts))
        cell = np.arange(int(self.starts[-1])) - self.starts[pair]
        self.cells = self.wide_starts[pair] + cell + cell // (self.width[pair] - 1)
        per_block = max(1, BLOCK_CELLS // max(1, rows))
        self.blocks = [
            range(q, min(q + per_block, len(self.pool))) for q in range(0, len(self.pool), per_block)
        ]
        keep = len(self.pool) * rows <= KEEP_CELLS
        self.kept = [self._matrix(block) for block in self.blocks] if keep else None
        self.observed = self._crossed(np.asarray(y, float))

    def _matrix(self, block: range) -> sparse.csr_matrix:
        """``K`` of the block's pairs: a row per training row, its cell in each pair (a column each).

        The codes are computed pair by pair (each pair's row of codes from the features' contiguous rows
        of bins), then laid out row by row as ``K`` needs them, a band of rows at a time: the band's
        codes stay in cache while they are transposed (a column gather from the row-major bins, or a
        whole transpose at once, reads memory with a stride and took twice as long)."""
        pairs = slice(block.start, block.stop)
        by_pair = self.bins[self.first[pairs]]
        by_pair *= self.width[pairs, None]
        by_pair += self.bins[self.second[pairs]]
        by_pair += (self.wide_starts[pairs] - self.wide_starts[block.start]).astype(np.int32)[:, None]
        codes = np.empty((self.n_rows, len(block)), dtype=np.int32)
        for start in range(0, self.n_rows, BAND_ROWS):
            codes[start : start + BAND_ROWS] = by_pair[:, start : start + BAND_ROWS].T
        size = int(self.wide_starts[block.stop] - self.wide_starts[block.start])
        indptr = np.arange(0, codes.size + 1, len(block), dtype=np.int32 if codes.size < 2**31 else np.int64)
        return sparse.csr_matrix((_ones(codes.size), codes.ravel(), indptr), shape=(self.n_rows, size))

    def _crossed(self, w: FloatArray) -> FloatArray:
        """The sum of ``w`` over each cell of every pair (pair after pair)."""
        out = [np.zeros(0)]
        for i, block in enumerate(self.blocks):
            K = self.kept[i] if self.kept is not None else self._matrix(block)
            out.append(np.asarray(K.T @ w, float))
        return np.concatenate(out)[self.cells]

    def gains(self, pairs: Sequence[tuple[int, int]], p: FloatArray) -> FloatArray:
        """``fit_pair(...).gain`` of each pair (of the pool) against the probabilities ``p``."""
        expected = self._crossed(np.asarray(p, float))
        where = np.fromiter((self.position[pair] for pair in pairs), dtype=np.intp, count=len(pairs))
        lengths = self.starts[where + 1] - self.starts[where]
        if len(where) != len(self.pool) or (where != np.arange(len(self.pool))).any():
            # each pair's cells in turn: a running count, less where each pair starts in it, plus its start
            ends = np.cumsum(lengths)
            cells = np.arange(int(ends[-1]) if len(ends) else 0) + np.repeat(
                self.starts[where] - (ends - lengths), lengths
            )
            observed, expected = self.observed[cells], expected[cells]
        else:
            observed = self.observed
        segment = np.repeat(np.arange(len(where)), lengths)
        return _segment_gains(observed, expected, segment, len(where))


class _Renamed:
    """A kept crossing seen through another fit's feature positions (``position`` maps them)."""

    def __init__(self, crossing: Crossing, position: dict[int, int]) -> None:
        self.crossing, self.position = crossing, position

    def gains(self, pairs: Sequence[tuple[int, int]], p: FloatArray) -> FloatArray:
        return self.crossing.gains([(self.position[a], self.position[b]) for a, b in pairs], p)


# Crossings kept for later searches on the same rows (the rule budget's rounds leave features out and
# keep the others' bins; the candidates' folds fit the same bins again), newest last, up to KEEP_CELLS
# rows times pairs in all: (rows key, each pool feature's owners by position, crossing).
_KEPT: list[tuple[object, dict[int, tuple[object, ...]], Crossing]] = []


def forget_crossings() -> None:
    _KEPT.clear()


def crossing_for(
    pool: Sequence[tuple[int, int]],
    indices: Sequence[IntArray],
    sizes: Sequence[int],
    y: FloatArray,
    owners: Sequence[tuple[object, ...]],
    rows: object,
) -> Crossing | _Renamed:
    """A crossing of ``pool``: a kept one whose pool holds every pair of it (the same features by
    ``owners``' identity, in the same order, on the same ``rows``) where it is at most twice as large,
    else a new one (kept where it holds its matrices). Each cell's sum runs over the rows in row order
    whichever other pairs the crossing holds, so the gains are the same floats either way."""
    wanted = {j for pair in pool for j in pair}
    for rows_key, kept_owners, crossing in reversed(_KEPT):
        if rows_key != rows or len(crossing.pool) > 2 * len(pool):
            continue
        by_owner = {tuple(map(id, o)): J for J, o in kept_owners.items()}
        position: dict[int, int] = {}
        for j in wanted:
            J = by_owner.get(tuple(map(id, owners[j])))
            if J is None or any(a is not b for a, b in zip(kept_owners[J], owners[j], strict=True)):
                break
            position[j] = J
        else:
            if all((position[a], position[b]) in crossing.position for a, b in pool):
                return _Renamed(crossing, position)
    crossing = Crossing(pool, indices, sizes, y)
    if crossing.kept is not None:
        _KEPT.append((rows, {j: tuple(owners[j]) for j in wanted}, crossing))
        while sum(len(c.pool) * c.n_rows for _, _, c in _KEPT) > KEEP_CELLS and len(_KEPT) > 1:
            _KEPT.pop(0)
    return crossing


_ONES: dict[int, FloatArray] = {}


def _ones(n: int) -> FloatArray:
    """``n`` ones (``K``'s entries, never written): the first ``n`` of ones kept per power of two, so
    crossings of other numbers of rows and pairs share them. A view at least half as long as the array
    it is taken from is held by the sparse matrix as it is (a shorter one would be copied). All of them
    together hold at most four times the entries of the largest block (``BLOCK_CELLS``, or a pair's rows
    where there are more rows than that)."""
    size = 1 << max(0, n - 1).bit_length()
    if size not in _ONES:
        _ONES[size] = np.ones(size)
        _ONES[size].setflags(write=False)
    return _ONES[size][:n]


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
