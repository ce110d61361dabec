"""The binning's column conversions, done per distinct value or per column at once for speed, give what
the per-row definitions (``features.number`` and ``features.category`` row by row) give, on random
columns mixing every kind of value a stored attribute or a CSV cell can hold; the same for the other
shortcuts of learning (columns read once, every pair's gain at once, folds kept)."""

from __future__ import annotations

import itertools
from collections import Counter
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.model_selection import StratifiedGroupKFold

from leadscore.learn.binning import (
    NO_BIN,
    Bins,
    Categories,
    bin_categorical,
    category_codes,
    numeric_column,
    read_column,
)
from leadscore.learn.features import Feature, Other, category, number
from leadscore.learn.interactions import Crossing, fit_pair, gains
from leadscore.learn.scorecard import Scorecard, cv_splits, forget_bins, read_columns, stratified_group_folds

VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["Select", "select", "", "A", "a", "b", "1", "1.0", "true"]),
    st.text(max_size=3),
    st.sampled_from([0, 1, 1.0, 0.0, True, False]),
    st.just([1, 2]),
    st.just({"a": 1}),
    st.builds(np.float64, st.floats(allow_nan=False, width=32)),
)
PLACEHOLDERS = ("select",)


def column(values: list[Any]) -> np.ndarray[Any, Any]:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


@settings(max_examples=300, deadline=None)
@given(st.lists(VALUES, max_size=40))
def test_numeric_column_is_number_of_each_value(values: list[Any]) -> None:
    got = numeric_column(column(values))
    want = np.asarray([number(v) for v in values], dtype=float)
    np.testing.assert_array_equal(got, want)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.none(), st.integers(-1000, 1000), st.floats(-1e6, 1e6)), max_size=40))
def test_plain_number_columns_take_the_whole_column_path(values: list[Any]) -> None:
    got = numeric_column(column(values))
    want = np.asarray([number(v) for v in values], dtype=float)
    np.testing.assert_array_equal(got, want)


@settings(max_examples=300, deadline=None)
@given(st.lists(VALUES, max_size=40))
def test_category_codes_are_category_of_each_value(values: list[Any]) -> None:
    keys, codes = category_codes(column(values), PLACEHOLDERS)
    assert len(codes) == len(values)
    for value, code in zip(values, codes, strict=True):
        want = category(value, PLACEHOLDERS)
        got = keys[code]
        # equal keys are one category, as for a dict of categories (False and 0.0 among them)
        assert got == want if not isinstance(want, Other) else isinstance(got, Other)


def assign_row_by_row(bins: Bins, values: list[Any]) -> list[int]:
    """The definition: each value's category looked up in the groups, row by row."""
    lookup = {c: i for i, g in enumerate(bins.groups) for c in g}
    fallback = bins.other if bins.other is not None else NO_BIN
    missing = bins.missing if bins.missing is not None else NO_BIN
    out = []
    for v in values:
        key = category(v, PLACEHOLDERS)
        out.append(
            missing if key is None else fallback if isinstance(key, Other) else lookup.get(key, fallback)
        )
    return out


@settings(max_examples=200, deadline=None)
@given(st.lists(VALUES, min_size=1, max_size=60), st.lists(VALUES, max_size=30), st.randoms())
def test_categorical_bins_count_and_assign_as_row_by_row(
    train: list[Any], unseen: list[Any], rnd: Any
) -> None:
    y = np.asarray([rnd.randint(0, 1) for _ in train], dtype=np.int64)
    bins = bin_categorical(column(train), y, max_bins=4, min_count=2, placeholders=PLACEHOLDERS)
    # the counts per category, row by row, before any merging
    n_by: Counter[Any] = Counter(category(v, PLACEHOLDERS) for v in train)
    e_by: Counter[Any] = Counter()
    for v, t in zip(train, y, strict=True):
        e_by[category(v, PLACEHOLDERS)] += int(t)
    members = {k: i for i, g in enumerate(bins.groups) for k in g}
    for key, n in n_by.items():
        if key is not None and not isinstance(key, Other) and n >= 2:  # not pooled as rare: in its group
            i = members[key]
            assert bins.counts[i] >= n and bins.events[i] >= e_by[key]
    assert sum(bins.counts) == len(train) == sum(n_by.values())
    assert sum(bins.events) == int(y.sum())
    if None in n_by:
        assert bins.has_missing and bins.counts[-1] == n_by[None]
    for values in (train, unseen, train + unseen):
        assert bins.assign(column(values), PLACEHOLDERS).tolist() == assign_row_by_row(bins, values)


TEXTS = st.one_of(
    st.none(), st.sampled_from(["Select", "select", "", "A", "a", "b", "1"]), st.text(max_size=3)
)


@settings(max_examples=300, deadline=None)
@given(st.lists(TEXTS, max_size=40))
def test_text_columns_keep_first_appearance_order(values: list[Any]) -> None:
    """A column of texts and None (the dict-of-values path): each value's category, and the keys in the
    order their first value appears."""
    keys, codes = category_codes(column(values), PLACEHOLDERS)
    want_keys: list[Any] = []
    for v in values:
        key = category(v, PLACEHOLDERS)
        if not any(key is k or (not isinstance(key, Other) and key == k) for k in want_keys):
            want_keys.append(key)
    assert len(keys) == len(want_keys)
    for got, want in zip(keys, want_keys, strict=True):
        assert isinstance(got, Other) if isinstance(want, Other) else got == want
    for value, code in zip(values, codes, strict=True):
        want = category(value, PLACEHOLDERS)
        assert isinstance(keys[code], Other) if isinstance(want, Other) else keys[code] == want


@settings(max_examples=200, deadline=None)
@given(st.lists(VALUES, min_size=1, max_size=60), st.randoms())
def test_rows_of_a_column_read_once_bin_and_assign_as_the_rows_themselves(
    values: list[Any], rnd: Any
) -> None:
    """``read_column`` then rows taken from it (a cross-validation fold) gives the categories, bins and
    bin of every row that reading those rows alone gives."""
    whole = column(values)
    read = read_column(whole, "categorical", PLACEHOLDERS)
    assert isinstance(read, Categories)
    rows = np.asarray([rnd.random() < 0.6 for _ in values])
    sub = whole[rows]
    keys, codes = category_codes(read[rows], PLACEHOLDERS)
    want_keys, want_codes = category_codes(sub, PLACEHOLDERS)
    assert [repr(k) for k in keys] == [repr(k) for k in want_keys]
    assert codes.tolist() == want_codes.tolist()
    y = np.asarray([rnd.randint(0, 1) for _ in range(len(sub))], dtype=np.int64)
    if len(sub):
        got = bin_categorical(read[rows], y, max_bins=4, min_count=2, placeholders=PLACEHOLDERS)
        want = bin_categorical(sub, y, max_bins=4, min_count=2, placeholders=PLACEHOLDERS)
        assert got == want
        assert got.assign(read, PLACEHOLDERS).tolist() == want.assign(whole, PLACEHOLDERS).tolist()


def test_a_column_read_as_categories_is_not_binned_as_numbers() -> None:
    read = read_column(column(["a", "b"]), "categorical", PLACEHOLDERS)
    with pytest.raises(TypeError, match="read as categories"):
        numeric_column(read)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(1, 5), min_size=2, max_size=5), st.integers(0, 2**32 - 1))
def test_every_pairs_gain_at_once_is_each_pairs_own(sizes: list[int], seed: int) -> None:
    """``gains`` (all pairs from two sparse products) gives each pair the gain ``fit_pair`` computes for it
    alone, with rows in no bin (``NO_BIN``) left out of a pair's cells."""
    rng = np.random.default_rng(seed)
    n = 300
    indices = [rng.integers(-1, s, n) for s in sizes]  # -1: NO_BIN
    y = (rng.random(n) < 0.3).astype(float)
    p = np.clip(0.3 + 0.2 * rng.standard_normal(n), 0.01, 0.99)
    pairs = list(itertools.combinations(range(len(sizes)), 2))[::-1]  # any order of the pool
    want = [fit_pair(a, b, indices, sizes, y, p).gain for a, b in pairs]
    np.testing.assert_allclose(gains(pairs, indices, sizes, y, p), want, rtol=1e-9, atol=1e-9)


def test_cross_validation_folds_are_kept_per_labels_and_groups() -> None:
    """The same labels and groups give the same folds (kept, not split again), and they are
    ``StratifiedGroupKFold``'s; other groups give other folds."""
    target = np.asarray([0, 1] * 20, dtype=np.int64)
    groups = [f"lead{i // 2}" for i in range(40)]
    folds = cv_splits(4, target, groups)
    assert cv_splits(4, target, list(groups)) is folds
    want = list(StratifiedGroupKFold(4).split(target.reshape(-1, 1), target, groups))
    assert [(a.tolist(), b.tolist()) for a, b in folds] == [(a.tolist(), b.tolist()) for a, b in want]
    for train, test in folds:  # a lead's rows are never on both sides
        assert not {groups[i] for i in train} & {groups[i] for i in test}
    assert cv_splits(4, target, [f"lead{i}" for i in range(40)]) is not folds


def test_grouped_folds_by_hand() -> None:
    """Four rows in four groups, labels 1, 1, 0, 0, two folds. Every group has a spread of 0.5 (one row
    of one class), so they are taken in their sorted order: a (1) goes to fold 0 (both empty: the first),
    b (1) to fold 1 (the classes' shares then spread least: 1/2 and 1/2 of the ones), c (0) to fold 0
    (a tie: the fold with fewer rows; both have one, so the first), d (0) to fold 1."""
    folds = stratified_group_folds(2, np.asarray([1, 1, 0, 0]), ["a", "b", "c", "d"])
    assert [(a.tolist(), b.tolist()) for a, b in folds] == [([1, 3], [0, 2]), ([0, 2], [1, 3])]


@settings(max_examples=40, deadline=None)
@given(
    st.integers(min_value=0, max_value=2**32 - 1),
    st.integers(min_value=2, max_value=5),
    st.integers(min_value=1, max_value=6),
)
def test_grouped_folds_are_scikit_learns(seed: int, n_folds: int, rows_per_group: int) -> None:
    """The same rows in the same folds as ``StratifiedGroupKFold`` (no shuffle), for groups of one row
    (a CSV) and of several (a lead's cutoffs), with both classes in a group or not."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 400))
    target = (rng.random(n) < rng.uniform(0.05, 0.6)).astype(np.int64)
    groups = [f"g{int(g)}" for g in rng.integers(0, max(1, n // rows_per_group), n)]
    if min(int(target.sum()), n - int(target.sum())) < n_folds or len(set(groups)) < n_folds:
        return
    want = list(StratifiedGroupKFold(n_folds).split(target.reshape(-1, 1), target, groups))
    got = stratified_group_folds(n_folds, target, groups)
    assert [(a.tolist(), b.tolist()) for a, b in got] == [(a.tolist(), b.tolist()) for a, b in want]


def test_bins_are_kept_for_the_same_column_and_labels_only() -> None:
    """A refit on the same column objects and labels takes the bins already fitted (the very objects);
    other labels, or a copy of the column, are binned afresh; ``forget_bins`` empties what is kept."""
    rng = np.random.default_rng(3)
    X = rng.integers(0, 10, (400, 1)).astype(float)
    y = (rng.random(400) < 0.3).astype(int)
    features = [Feature("x", "numeric")]
    columns = read_columns(X, features)
    first = Scorecard(features).fit(X, y, columns=columns).bins_[0]
    assert Scorecard(features).fit(X, y, columns=columns).bins_[0] is first
    assert Scorecard(features).fit(X, 1 - y, columns=columns).bins_[0] is not first
    copy = read_columns(X, features)
    again = Scorecard(features).fit(X, y, columns=copy).bins_[0]
    assert again is not first and again == first
    forget_bins()
    assert Scorecard(features).fit(X, y, columns=columns).bins_[0] is not first


def test_a_crossing_of_the_pool_gives_each_remaining_pairs_own_gain() -> None:
    """The observed cells are counted once for the pool; a later step's gains over what is left of it
    are still ``fit_pair``'s gain of each pair against that step's probabilities."""
    rng = np.random.default_rng(5)
    sizes = [3, 4, 2, 5]
    n = 300
    indices = [rng.integers(-1, s, n) for s in sizes]
    y = (rng.random(n) < 0.3).astype(float)
    pool = list(itertools.combinations(range(len(sizes)), 2))
    crossing = Crossing(pool, indices, sizes, y)
    for step in range(2):
        p = np.clip(0.3 + 0.1 * (step + 1) * rng.standard_normal(n), 0.01, 0.99)
        left = pool[step:]
        want = [fit_pair(a, b, indices, sizes, y, p).gain for a, b in left]
        np.testing.assert_allclose(crossing.gains(left, p), want, rtol=1e-9, atol=1e-9)


def test_negative_zero_is_the_category_zero_whichever_comes_first() -> None:
    """-0.0 and 0.0 are one category whose key reads 0.0, so rows taken from a column (a fold) name it as
    the whole column does (found by the property above: a fold starting with -0.0 named it '-0.0')."""
    whole = column([0.0, 1.0, -0.0, 1.0])
    read = read_column(whole, "categorical", PLACEHOLDERS)
    assert isinstance(read, Categories)
    rows = np.asarray([False, True, True, True])
    keys, codes = category_codes(read[rows], PLACEHOLDERS)
    assert [repr(k) for k in keys] == ["1.0", "0.0"]
    assert codes.tolist() == [0, 1, 0]
    assert repr(category(-0.0, PLACEHOLDERS)) == "0.0"


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(1, 5), min_size=2, max_size=6),
    st.integers(0, 2**32 - 1),
    st.sampled_from([1 << 22, 600, 1]),
    st.booleans(),
    st.sampled_from([128, 7, 1]),
)
def test_a_crossings_cell_sums_are_fit_pairs_floats(
    sizes: list[int], seed: int, block: int, kept: bool, band: int
) -> None:
    """The expected conversions of every cell (and so every gain) are the very floats ``fit_pair``'s
    ``bincount`` sums, not close ones: the greedy search's choice between two pairs of equal gain (two
    copies of a feature) must not turn on the order of an addition. Pairs in blocks of any size, the
    crossing kept or rebuilt at every step, its codes laid out in bands of any number of rows; the
    gains of some of the pool's pairs, in any order, are the very floats of the same pairs among all."""
    import leadscore.learn.interactions as interactions

    rng = np.random.default_rng(seed)
    n = 200
    indices = [rng.integers(-1, s, n) for s in sizes]
    y = (rng.random(n) < 0.3).astype(float)
    p = rng.random(n)
    pool = list(itertools.combinations(range(len(sizes)), 2))
    saved = interactions.BLOCK_CELLS, interactions.KEEP_CELLS, interactions.BAND_ROWS
    interactions.BLOCK_CELLS, interactions.KEEP_CELLS = block, (1 << 23) if kept else 0
    interactions.BAND_ROWS = band
    try:
        crossing = Crossing(pool, indices, sizes, y)
        expected = crossing._crossed(p)
        every = crossing.gains(pool, p)
        some = [pool[q] for q in rng.permutation(len(pool))[: rng.integers(1, len(pool) + 1)]]
        assert np.array_equal(crossing.gains(some, p), every[[pool.index(pair) for pair in some]])
    finally:
        interactions.BLOCK_CELLS, interactions.KEEP_CELLS, interactions.BAND_ROWS = saved
    for q, (a, b) in enumerate(pool):
        codes = np.where(
            (indices[a] == NO_BIN) | (indices[b] == NO_BIN), -1, indices[a] * sizes[b] + indices[b]
        )
        ok = codes >= 0
        want = np.bincount(codes[ok], weights=p[ok], minlength=sizes[a] * sizes[b])
        assert np.array_equal(expected[crossing.starts[q] : crossing.starts[q + 1]], want)
        got = crossing.gains([(a, b)], p)[0]
        np.testing.assert_allclose(got, fit_pair(a, b, indices, sizes, y, p).gain, rtol=1e-12, atol=1e-12)


def test_a_folds_rows_are_one_object_while_kept() -> None:
    """The same column and rows objects give the very object taken before (so bins fitted on it are
    found again); other rows, or the same rows in another array, are taken afresh; ``forget_bins``
    empties what is kept."""
    from leadscore.learn.scorecard import fold_rows

    column = np.arange(10.0)
    rows = np.asarray([1, 3, 5])
    first = fold_rows(column, rows)
    assert fold_rows(column, rows) is first
    assert first.tolist() == [1.0, 3.0, 5.0]
    again = fold_rows(column, rows.copy())
    assert again is not first and again.tolist() == first.tolist()
    forget_bins()
    assert fold_rows(column, rows) is not first
    forget_bins()


def test_a_kept_crossing_serves_a_later_search_on_fewer_of_its_features() -> None:
    """A search on features 0, 1 and 3 of four (positions 0, 1 and 2 there: three pairs of the six), with
    the same columns and bins objects on the same rows, uses the crossing kept from the search on all
    four: its gains are the very floats of a crossing of the three alone. Other rows, or another bins
    object, get a crossing of their own."""
    from leadscore.learn.interactions import crossing_for, forget_crossings

    rng = np.random.default_rng(11)
    sizes = [3, 4, 2, 5]
    n = 250
    indices = [rng.integers(-1, s, n) for s in sizes]
    y = (rng.random(n) < 0.3).astype(float)
    p = np.clip(rng.random(n), 0.05, 0.95)
    owners = [(object(), object()) for _ in sizes]
    forget_crossings()
    try:
        whole = crossing_for(list(itertools.combinations(range(4), 2)), indices, sizes, y, owners, b"rows")
        assert isinstance(whole, Crossing)
        sub, sub_sizes, sub_owners = (
            [indices[0], indices[1], indices[3]],
            [3, 4, 5],
            [owners[j] for j in (0, 1, 3)],
        )
        pool = [(0, 1), (0, 2), (1, 2)]
        found = crossing_for(pool, sub, sub_sizes, y, sub_owners, b"rows")
        assert not isinstance(found, Crossing) and found.crossing is whole
        alone = Crossing(pool, sub, sub_sizes, y)
        assert np.array_equal(found.gains(pool, p), alone.gains(pool, p))
        assert np.array_equal(found.gains(pool[1:], p), alone.gains(pool[1:], p))
        other_rows = crossing_for(pool, sub, sub_sizes, y, sub_owners, b"other rows")
        assert isinstance(other_rows, Crossing)
        other_bins = [*sub_owners[:2], (sub_owners[2][0], object())]
        assert isinstance(crossing_for(pool, sub, sub_sizes, y, other_bins, b"rows"), Crossing)
    finally:
        forget_crossings()


def test_merging_bins_by_information_value_lost() -> None:
    """Three bins (count, converted) (100, 10), (100, 12), (100, 50), at most two: merging the first
    two loses far less information than the last two (their rates 10 % and 12 % against 12 % and 50 %),
    so the bins end at input bins 1 and 2. With a minimum of 150 rows per bin, the smallest bin (the
    first of three equal) merges with its only neighbour, then the 100-row bin left with that one."""
    from leadscore.learn.binning import _merge

    assert _merge([100, 100, 100], [10, 12, 50], 2, 1) == [1, 2]
    assert _merge([100, 100, 100], [10, 12, 50], 3, 150) == [2]
