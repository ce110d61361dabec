"""The binning's column conversions, done per distinct value or per column at once for speed, give what
the per-row definitions (``features.number`` and ``features.category`` row by row) give, on random
columns mixing every kind of value a stored attribute or a CSV cell can hold."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from leadscore.learn.binning import NO_BIN, Bins, bin_categorical, category_codes, numeric_column
from leadscore.learn.features import Other, category, number

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
