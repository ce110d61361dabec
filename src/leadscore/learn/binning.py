"""Supervised binning: numeric features into intervals, categorical ones into groups of categories.

Both start fine (quantile pre-bins, a value holding a pre-bin's share of the rows being one of its own;
or one group per category with rare ones pooled as 'other') and merge
neighbours (in value order, or in conversion-rate order for categories) while a bin is too small or
there are more than ``max_bins``; each merge is the one that loses the least
information value. Intervals then merge with a neighbour whose conversion rate does not differ
significantly (ChiMerge, ``CHI2_SIGNIFICANT``). Missing values (and placeholders such as "Select") always keep a bin of their own.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from leadscore.learn.features import OTHER, PLACEHOLDERS, Category, Other, category, number

# Jeffreys prior: half an observation of each class per bin keeps the weight of evidence finite for a bin
# without conversions (or without non-conversions) and shrinks small bins towards no evidence.
PRIOR = 0.5
# Neighbouring intervals of a number stay apart only when their conversion rates differ at the 1 % level
# (chi-square, one degree of freedom: Kerber's ChiMerge). Quantile pre-bins are arbitrary slices of one
# quantity; slices that do not differ are one interval, and finer bins than the data supports dilute the
# evidence of the pairs' cells built from them. Not for categories: sorted by their observed rates,
# neighbouring categories look alike by construction, so the test would not mean what it says.
CHI2_SIGNIFICANT = 6.635
NO_BIN = -1  # a value no fitted bin holds (missing when training had none): worth the baseline points

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]


@dataclass(frozen=True)
class Bins:
    """The fitted bins of one feature, with the training counts per bin.

    numeric: bin 0 is ``x < edges[0]``, bin i is ``edges[i-1] <= x < edges[i]``, the last ``x >= edges[-1]``.
    categorical: bin i holds ``groups[i]``; ``other`` is the bin of rare and unseen categories (without
    rare ones an empty bin: unseen categories are neutral).
    With ``has_missing`` the last bin is missing values and placeholders.
    """

    kind: str
    edges: tuple[float, ...]
    groups: tuple[tuple[Category, ...], ...]
    other: int | None
    has_missing: bool
    counts: tuple[int, ...]
    events: tuple[int, ...]

    @property
    def n_bins(self) -> int:
        return len(self.counts)

    @property
    def missing(self) -> int | None:
        return self.n_bins - 1 if self.has_missing else None

    def woe(self) -> FloatArray:
        """Weight of evidence per bin: ln(odds in the bin / overall odds), each bin's rate shrunk towards
        the overall rate (``shrunk_rates``)."""
        n, e = np.asarray(self.counts, float), np.asarray(self.events, float)
        if not n.sum() or e.sum() in (0, n.sum()):
            return np.zeros(len(n))
        p0 = e.sum() / n.sum()
        rate = shrunk_rates(n, e)
        return np.asarray(np.log(rate / (1 - rate)) - np.log(p0 / (1 - p0)), float)

    def assign(self, column: Column, placeholders: tuple[str, ...] = PLACEHOLDERS) -> IntArray:
        """The bin index of each value (``NO_BIN`` where no bin holds it)."""
        if self.kind == "numeric":
            x = numeric_column(column)
            idx = np.searchsorted(np.asarray(self.edges, float), x, side="right").astype(np.intp)
            nan = np.isnan(x)
            idx[nan] = self.missing if self.missing is not None else NO_BIN
            return idx
        lookup: dict[Category, int] = {c: i for i, g in enumerate(self.groups) for c in g}
        fallback = self.other if self.other is not None else NO_BIN
        missing = self.missing if self.missing is not None else NO_BIN

        def bin_of(key: Category | Other | None) -> int:
            return (
                missing if key is None else fallback if isinstance(key, Other) else lookup.get(key, fallback)
            )

        # a column read once: every distinct value's key (equal keys give the same bin)
        keys, codes = (
            (column.keys, column.codes)
            if isinstance(column, Categories)
            else category_codes(column, placeholders)
        )
        return np.asarray([bin_of(k) for k in keys], dtype=np.intp)[codes]


@dataclass(frozen=True)
class Categories:
    """A categorical column read once (``distinct_values``): each distinct value's category key and each
    row's value among them. Indexing takes rows and keeps the keys, so cross-validation folds and refits
    bin and assign rows without reading every value again."""

    keys: tuple[Category | Other | None, ...]
    codes: IntArray

    def __len__(self) -> int:
        return len(self.codes)

    def __getitem__(self, rows: Any) -> Categories:
        return Categories(self.keys, self.codes[rows])


Column = npt.NDArray[Any] | Categories


def read_column(column: npt.NDArray[Any], kind: str, placeholders: tuple[str, ...] = PLACEHOLDERS) -> Column:
    """A feature's values as binning reads them: numbers as floats (NaN where not a number), categories
    as ``Categories``; read once, then rows taken from it for every fold."""
    if kind == "numeric":
        return numeric_column(column)
    return distinct_values(column, placeholders)


# Values numpy turns into the float ``number`` gives (None into NaN): a column of only these is converted
# at once instead of value by value (learning converts every column once per fold and refit).
_PLAIN_NUMBERS = frozenset({int, float, np.float64, type(None)})


def numeric_column(column: Column) -> FloatArray:
    """Floats, with NaN for anything that is not a number (missing, text, booleans)."""
    if isinstance(column, Categories):
        raise TypeError("a column read as categories cannot be binned as numbers: read it as numeric")
    if column.dtype.kind in "fiu":
        return np.asarray(column, dtype=float)
    if set(map(type, column)) <= _PLAIN_NUMBERS:
        return np.asarray(column.astype(float), dtype=float)
    return np.fromiter((number(v) for v in column), dtype=float, count=len(column))


_TEXTS = frozenset({str, type(None)})


def category_codes(
    column: npt.NDArray[Any] | Categories, placeholders: tuple[str, ...] = PLACEHOLDERS
) -> tuple[list[Category | Other | None], IntArray]:
    """(the distinct category keys, each value's position among them): ``category`` once per distinct
    value, not once per row. Values are told apart by type as well (``True``, ``1`` and ``1.0`` are equal
    to Python but not the same category); values with equal keys (``False`` and ``0.0``) share the key
    of the first of them in the rows."""
    read = column if isinstance(column, Categories) else distinct_values(column, placeholders)
    # the distinct values present in these rows, in order of first appearance
    present, first = np.unique(read.codes, return_index=True)
    keys: list[Category | Other | None] = []
    position: dict[Category | Other | None, int] = {}
    renumber = np.zeros(len(read.keys), dtype=np.intp)
    for value in present[np.argsort(first, kind="stable")]:
        key = read.keys[value]
        renumber[value] = position.setdefault(key, len(keys))
        if renumber[value] == len(keys):
            keys.append(key)
    return keys, renumber[read.codes]


def distinct_values(column: npt.NDArray[Any], placeholders: tuple[str, ...] = PLACEHOLDERS) -> Categories:
    """Each distinct value (by type and value; every unhashable one is 'other') numbered in order of first
    appearance, with its category key (two values may share a key)."""
    if set(map(type, column)) <= _TEXTS:  # texts and None: equal values are one value
        first: dict[Any, int] = {}
        codes = np.fromiter(
            (first.setdefault(v, len(first)) for v in column), dtype=np.intp, count=len(column)
        )
        return Categories(tuple(category(v, placeholders) for v in first), codes)
    keys: list[Category | Other | None] = []
    seen: dict[Any, int] = {}
    codes = np.empty(len(column), dtype=np.intp)
    for i, value in enumerate(column):
        try:
            memo: Any = (type(value), value)
            code = seen.get(memo)
        except TypeError:  # unhashable (a list, a dict): 'other'
            memo = OTHER
            code = seen.get(memo)
        if code is None:
            code = seen[memo] = len(keys)
            keys.append(category(value, placeholders) if memo is not OTHER else OTHER)
        codes[i] = code
    return Categories(tuple(keys), codes)


def shrunk_rates(n: FloatArray, e: FloatArray) -> FloatArray:
    """Each bin's conversion rate shrunk towards the overall rate by an empirical-Bayes beta prior.

    The prior's strength ``m`` (in observations) comes from the bins themselves, by moments: the
    count-weighted variance of the bins' rates, less the part binomial noise explains, is the variance of
    the true rates, ``p0 (1 - p0) / (m + 1)``. A feature whose bins differ no more than chance gets
    ``m = ∞`` (every bin at the overall rate: no evidence); a small bin of a strong feature keeps most of
    its own rate. Estimated from the training rows only, like the bins.
    """
    total = n.sum()
    p0 = e.sum() / total
    seen = n > 0
    rate = np.full(len(n), p0)
    between = float((n[seen] * (e[seen] / n[seen] - p0) ** 2).sum()) / total
    noise = float(seen.sum()) * p0 * (1 - p0) / total
    if between <= noise:
        return rate
    m = max(p0 * (1 - p0) / (between - noise) - 1.0, 0.0)
    # a bin with no conversions (or only conversions) and m = 0 would give an infinite weight of evidence;
    # Jeffreys' half observation of each class keeps it finite
    rate[seen] = (e[seen] + m * p0 + PRIOR) / (n[seen] + m + 2 * PRIOR)
    return rate


def _iv(n: FloatArray, e: FloatArray, total_e: float, total_ne: float) -> FloatArray:
    pe = (e + PRIOR) / (total_e + PRIOR)
    pn = (n - e + PRIOR) / (total_ne + PRIOR)
    return np.asarray((pe - pn) * np.log(pe / pn), float)


def neighbour_chi2(n: FloatArray, e: FloatArray) -> FloatArray:
    """Pearson's chi-square statistic of each pair of neighbouring bins (the 2 x 2 table: which bin, by
    converted or not); 0 where the pair has only one class."""
    n1, n2, e1, e2 = n[:-1], n[1:], e[:-1], e[1:]
    total, events = n1 + n2, e1 + e2
    numerator = (e1 * (n2 - e2) - e2 * (n1 - e1)) ** 2 * total
    denominator = n1 * n2 * events * (total - events)
    return np.asarray(np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1), 0.0))


def _iv_of(n: float, e: float, total_e: float, total_ne: float) -> float:
    """``_iv`` of one bin in Python floats: the same operations in the same order (and ``math.log``,
    which is numpy's ``log`` where numpy has no vector logarithm of its own)."""
    pe = (e + PRIOR) / (total_e + PRIOR)
    pn = (n - e + PRIOR) / (total_ne + PRIOR)
    return (pe - pn) * math.log(pe / pn)


def _merge(n: list[int], e: list[int], max_bins: int, min_count: int, chi2_stop: float = 0.0) -> list[int]:
    """Greedy merging of adjacent bins; returns, for each final bin, the index of its last input bin.

    First while a bin is too small or there are too many (the merge losing the least information value),
    then, down to two bins, while two neighbours' chi-square is below ``chi2_stop`` (the least different
    pair first).

    The information values are kept from one merge to the next: a merge changes only the merged bin's
    (the merged pair's, already known) and the losses of the pairs it is in."""
    ends = list(range(len(n)))
    n, e = list(n), list(e)
    total_e, total_ne = float(sum(e)), float(sum(n) - sum(e))

    def pair_iv(p: int) -> float:  # the information value of pair (p, p + 1) merged
        return _iv_of(float(n[p] + n[p + 1]), float(e[p] + e[p + 1]), total_e, total_ne)

    iv = [_iv_of(float(a), float(b), total_e, total_ne) for a, b in zip(n, e, strict=True)]
    merged = [pair_iv(p) for p in range(len(n) - 1)]
    loss = [iv[p] + iv[p + 1] - merged[p] for p in range(len(n) - 1)]  # lost by merging pair (p, p + 1)
    while len(n) > 1:
        bad = [i for i in range(len(n)) if n[i] < min_count]
        if len(n) <= max_bins and not bad:
            # then, as in ChiMerge, neighbours whose conversion rates do not differ significantly
            chi2 = neighbour_chi2(np.asarray(n, float), np.asarray(e, float))
            i = int(np.argmin(chi2))
            # two intervals stay: a number that alone carries no evidence (its bins' weights of evidence
            # shrink to 0) may still carry some together with another (a pair's cells)
            if chi2[i] >= chi2_stop or len(n) <= 2:
                break
            n[i : i + 2], e[i : i + 2], ends[i : i + 2] = [n[i] + n[i + 1]], [e[i] + e[i + 1]], [ends[i + 1]]
            continue  # the information values are not used again: too many bins and small ones come first
        if bad and len(n) <= max_bins:
            worst = min(bad, key=lambda i: n[i])
            i = min((p for p in (worst - 1, worst) if 0 <= p < len(n) - 1), key=loss.__getitem__)
        else:
            i = min(range(len(n) - 1), key=loss.__getitem__)
        n[i : i + 2], e[i : i + 2], ends[i : i + 2] = [n[i] + n[i + 1]], [e[i] + e[i + 1]], [ends[i + 1]]
        iv[i : i + 2] = [merged[i]]
        around = [p for p in (i - 1, i) if p < len(n) - 1 and p >= 0]
        merged[max(i - 1, 0) : i + 2] = [pair_iv(p) for p in around]
        loss[max(i - 1, 0) : i + 2] = [iv[p] + iv[p + 1] - merged[p] for p in around]
    return ends


def _monotone(n: list[int], e: list[int], ends: list[int]) -> list[int]:
    """``ends`` (as ``_merge`` returns them) merged further until the bins' conversion rates only rise or
    only fall (the direction of the first bin against the last), the least different violating pair of
    neighbours first: no zig-zag."""
    counts = [sum(n[s : end + 1]) for s, end in zip([0, *(x + 1 for x in ends[:-1])], ends, strict=True)]
    events = [sum(e[s : end + 1]) for s, end in zip([0, *(x + 1 for x in ends[:-1])], ends, strict=True)]
    ends = list(ends)
    while len(counts) > 1:
        rates = shrunk_rates(np.asarray(counts, float), np.asarray(events, float))
        direction = 1.0 if rates[-1] >= rates[0] else -1.0
        against = [i for i in range(len(rates) - 1) if (rates[i + 1] - rates[i]) * direction < 0]
        if not against:
            break
        chi2 = neighbour_chi2(np.asarray(counts, float), np.asarray(events, float))
        i = min(against, key=lambda k: chi2[k])
        counts[i : i + 2], events[i : i + 2] = [counts[i] + counts[i + 1]], [events[i] + events[i + 1]]
        ends[i : i + 2] = [ends[i + 1]]
    return ends


def prebin_edges(xv: FloatArray, max_prebins: int) -> FloatArray:
    """The fine intervals merging starts from: each value holding at least one pre-bin's share of the
    rows (a spike, such as the 0 of a page value most sessions never reach) is an interval of its own,
    and the other values are cut at their own quantiles into ``max_prebins`` intervals. Quantiles of
    all values together would spend most pre-bins on the spike (they all fall on it and collapse into
    one), leaving the rest of the range a few coarse slices: with 78 % zeros, 40 quantiles leave about 8
    for every positive value, and the smallest positive values share the zeros' interval."""
    if not len(xv):
        return np.zeros(0)
    values, counts = np.unique(xv, return_counts=True)
    spike = counts * max_prebins >= len(xv)
    rest = np.repeat(values[~spike], counts[~spike])
    edges = [values[spike]]  # a spike starts an interval ...
    following = np.flatnonzero(spike) + 1
    edges.append(values[following[following < len(values)]])  # ... and the next value starts another
    if len(rest):
        edges.append(np.quantile(rest, np.linspace(0, 1, max_prebins + 1)[1:-1], method="lower"))
    out = np.unique(np.concatenate(edges))
    return np.asarray(out[out > values[0]], float)


@dataclass(frozen=True)
class Prebinned:
    """A feature's rows before merging: the fine bins (intervals from ``prebin_edges``, or one group of
    categories each, rare ones pooled, in conversion-rate order) with their counts and conversions, and
    the missing values'. What merging starts from depends on the rows, not on ``max_bins``: the rule
    budget and the candidates bin the same rows at several numbers of bins from one of these."""

    kind: str
    counts: tuple[int, ...]
    events: tuple[int, ...]
    edges: tuple[float, ...]  # numeric: each fine interval's lower edge but the first's
    groups: tuple[tuple[tuple[Category, ...], bool], ...]  # categorical: its categories, whether 'other'
    missing: int
    missing_events: int


def prebin_numeric(x: FloatArray, y: npt.NDArray[Any], *, max_prebins: int) -> Prebinned:
    finite = ~np.isnan(x)
    xv, yv = x[finite], y[finite]
    edges = prebin_edges(xv, max_prebins)
    idx = np.searchsorted(edges, xv, side="right")
    n = np.bincount(idx, minlength=len(edges) + 1)
    e = np.bincount(idx, weights=yv, minlength=len(edges) + 1).astype(int)
    keep = n > 0
    kept_edges = tuple(float(edges[i - 1]) for i in range(1, len(n)) if keep[i])
    missing = int((~finite).sum())
    return Prebinned("numeric", tuple(int(v) for v in n[keep]), tuple(int(v) for v in e[keep]), kept_edges, (),
                     missing, int(y[~finite].sum()) if missing else 0)  # fmt: skip


def merge_numeric(pre: Prebinned, *, max_bins: int, min_count: int, monotone: bool = False) -> Bins:
    n, e = list(pre.counts), list(pre.events)
    ends = _merge(n, e, max_bins, min_count, CHI2_SIGNIFICANT)
    if monotone:
        ends = _monotone(n, e, ends)
    cut = tuple(pre.edges[end] for end in ends[:-1])
    # no present value at all (an event kind only rows left out had): no interval, only the missing bin
    starts = [0, *(end + 1 for end in ends[:-1])] if ends else []
    counts = [sum(n[s : end + 1]) for s, end in zip(starts, ends, strict=True)]
    events = [sum(e[s : end + 1]) for s, end in zip(starts, ends, strict=True)]
    if pre.missing:
        counts.append(pre.missing)
        events.append(pre.missing_events)
    return Bins("numeric", cut, (), None, bool(pre.missing), tuple(counts), tuple(events))


def bin_numeric(
    x: FloatArray,
    y: npt.NDArray[Any],
    *,
    max_bins: int,
    min_count: int,
    max_prebins: int,
    monotone: bool = False,
) -> Bins:
    pre = prebin_numeric(x, y, max_prebins=max_prebins)
    return merge_numeric(pre, max_bins=max_bins, min_count=min_count, monotone=monotone)


def prebin_categorical(
    column: Column, y: npt.NDArray[Any], *, min_count: int, placeholders: tuple[str, ...] = PLACEHOLDERS
) -> Prebinned:
    if len(column) != len(y):
        raise ValueError(f"{len(column)} values for {len(y)} labels")
    keys, codes = category_codes(column, placeholders)
    n_of = np.bincount(codes, minlength=len(keys))
    e_of = np.bincount(codes, weights=np.asarray(y, dtype=float), minlength=len(keys))
    n_by: Counter[Any] = Counter({k: int(n) for k, n in zip(keys, n_of, strict=True)})
    e_by: Counter[Any] = Counter({k: int(e) for k, e in zip(keys, e_of, strict=True)})
    missing_n, missing_e = n_by.pop(None, 0), e_by.pop(None, 0)
    rare = [k for k, c in n_by.items() if c < min_count or isinstance(k, Other)]
    other_n = sum(n_by.pop(k) for k in rare)
    other_e = sum(e_by.pop(k) for k in rare)
    groups: list[tuple[list[Category], int, int, bool]] = [([k], n_by[k], e_by[k], False) for k in n_by]
    if other_n or not groups:
        groups.append(([k for k in rare if not isinstance(k, Other)], other_n, other_e, True))
    groups.sort(key=lambda g: ((g[2] + PRIOR) / (g[1] + 2 * PRIOR), str(g[0])))
    return Prebinned("categorical", tuple(g[1] for g in groups), tuple(g[2] for g in groups), (),
                     tuple((tuple(g[0]), g[3]) for g in groups), missing_n, missing_e)  # fmt: skip


def merge_categorical(pre: Prebinned, *, max_bins: int, min_count: int) -> Bins:
    ends = _merge(list(pre.counts), list(pre.events), max_bins, min_count)
    starts = [0, *(end + 1 for end in ends[:-1])]
    spans = list(zip(starts, ends, strict=True))
    members = tuple(
        tuple(sorted((k for g in pre.groups[s : end + 1] for k in g[0]), key=str)) for s, end in spans
    )
    other = next((i for i, (s, end) in enumerate(spans) if any(g[1] for g in pre.groups[s : end + 1])), None)
    counts = [sum(pre.counts[s : end + 1]) for s, end in spans]
    events = [sum(pre.events[s : end + 1]) for s, end in spans]
    if other is None:
        # no rare categories to pool: a value training never saw gets a bin of its own without training
        # rows, whose weight of evidence is 0 (neutral) rather than the points of the worst bin
        members, other = (*members, ()), len(spans)
        counts.append(0)
        events.append(0)
    if pre.missing:
        counts.append(pre.missing)
        events.append(pre.missing_events)
    return Bins("categorical", (), members, other, bool(pre.missing), tuple(counts), tuple(events))


def bin_categorical(
    column: Column,
    y: npt.NDArray[Any],
    *,
    max_bins: int,
    min_count: int,
    placeholders: tuple[str, ...] = PLACEHOLDERS,
) -> Bins:
    pre = prebin_categorical(column, y, min_count=min_count, placeholders=placeholders)
    return merge_categorical(pre, max_bins=max_bins, min_count=min_count)


def prebin(
    column: Column,
    y: npt.NDArray[Any],
    kind: str,
    *,
    min_count: int,
    max_prebins: int,
    placeholders: tuple[str, ...] = PLACEHOLDERS,
) -> Prebinned:
    """What ``fit_bins`` merges, for any ``max_bins``."""
    if kind == "numeric":
        return prebin_numeric(numeric_column(column), y, max_prebins=max_prebins)
    return prebin_categorical(column, y, min_count=min_count, placeholders=placeholders)


def merge_prebinned(pre: Prebinned, *, max_bins: int, min_count: int, monotone: bool = False) -> Bins:
    """``fit_bins`` from the rows ``prebin`` read (with the same ``min_count``)."""
    if pre.kind == "numeric":
        return merge_numeric(pre, max_bins=max_bins, min_count=min_count, monotone=monotone)
    return merge_categorical(pre, max_bins=max_bins, min_count=min_count)


def fit_bins(
    column: Column,
    y: npt.NDArray[Any],
    kind: str,
    *,
    max_bins: int,
    min_count: int,
    max_prebins: int,
    placeholders: tuple[str, ...] = PLACEHOLDERS,
    monotone: bool = False,
) -> Bins:
    pre = prebin(column, y, kind, min_count=min_count, max_prebins=max_prebins, placeholders=placeholders)
    return merge_prebinned(pre, max_bins=max_bins, min_count=min_count, monotone=monotone)


__all__ = [
    "NO_BIN",
    "OTHER",
    "PRIOR",
    "Bins",
    "Categories",
    "Prebinned",
    "fit_bins",
    "merge_prebinned",
    "numeric_column",
    "prebin",
    "read_column",
    "shrunk_rates",
]
