"""Metrics on arrays small enough to compute by hand; the expected numbers are the hand computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score, roc_auc_score

from leadscore.learn import metrics
from leadscore.learn.binning import Bins
from leadscore.learn.checks import univariate_auc


def test_roc_auc_counts_pairs_won() -> None:
    # converters 0.35 and 0.8 against non-converters 0.1 and 0.4: 0.35 beats 0.1 only, 0.8 beats both → 3 of 4
    assert metrics.roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(3 / 4)


def test_roc_auc_ties_count_half() -> None:
    assert metrics.roc_auc([0, 1, 0, 1], [0.5, 0.5, 0.2, 0.9]) == pytest.approx((0.5 + 1 + 1 + 1) / 4)


def test_roc_auc_undefined_without_both_classes() -> None:
    assert math.isnan(metrics.roc_auc([1, 1], [0.2, 0.3]))


def test_pr_auc_is_average_precision() -> None:
    # ranked 1, 0, 1: precision 1 at recall ½, then precision ⅔ at recall 1 → ½ × 1 + ½ × ⅔
    assert metrics.pr_auc([1, 0, 1], [3, 2, 1]) == pytest.approx(0.5 + 0.5 * 2 / 3)


def test_gains_by_group() -> None:
    # 8 leads, 4 converted (rate ½); top half holds 3 (rate ¾, lift 1.5, capture ¾), bottom half 1
    top, bottom = metrics.gains([1, 1, 1, 0, 1, 0, 0, 0], [8, 7, 6, 5, 4, 3, 2, 1], groups=2)
    assert (top.leads, top.converted, top.rate, top.lift, top.cumulative_capture) == (4, 3, 0.75, 1.5, 0.75)
    assert (bottom.converted, bottom.lift, bottom.cumulative_capture) == (1, 0.5, 1.0)
    assert (top.min_score, top.max_score) == (5, 8)


def test_capture_of_the_top_quarter() -> None:
    # the top 2 of 8 leads are both converters: 2 of the 4 conversions
    assert metrics.capture([1, 1, 0, 0, 1, 0, 1, 0], [9, 8, 7, 6, 5, 4, 3, 2], 0.25) == 0.5


def test_calibration_and_ece() -> None:
    # bin [0.1, 0.2): predicted 0.1, observed ½ (gap 0.4); bin [0.9, 1]: predicted 0.9, observed 1 (gap 0.1);
    # each holds half the leads: ECE = ½ × 0.4 + ½ × 0.1
    table, ece = metrics.calibration([0, 1, 1, 1], [0.1, 0.1, 0.9, 0.9])
    assert [(b.leads, b.predicted, b.observed) for b in table] == [(2, 0.1, 0.5), (2, 0.9, 1.0)]
    assert ece == pytest.approx(0.25)


def test_psi_from_counts() -> None:
    # shares ½ ½ → ¼ ¾: (¼ − ½) ln(½) + (¾ − ½) ln(3/2) = ¼ ln 2 + ¼ ln 1.5 = ¼ ln 3
    assert metrics.psi_counts([50, 50], [25, 75]) == pytest.approx(math.log(3) / 4)


def test_psi_of_identical_populations_is_zero() -> None:
    scores = np.arange(100.0)
    assert metrics.psi(scores, scores) == pytest.approx(0.0)


def test_rule_lift() -> None:
    # hit: 2 of 3 converted; not hit: 1 of 3 → lift 2, coverage ½
    (lift,) = metrics.rule_lift([1, 1, 0, 0, 1, 0], {"demo": [True, True, True, False, False, False]})
    assert (lift.coverage, lift.rate_hit, lift.rate_miss, lift.lift) == (0.5, 2 / 3, 1 / 3, 2.0)


def test_conversion_by_group() -> None:
    groups = metrics.by_group([1, 0, 0, 1], ["hot", "cold", "cold", "hot"])
    assert [(g.key, g.leads, g.converted, g.rate) for g in groups] == [
        ("cold", 2, 0, 0.0),
        ("hot", 2, 2, 1.0),
    ]


def test_univariate_auc_from_bin_counts() -> None:
    # bin 0: 1 of 4 converted, bin 1: 3 of 4. Converters in bin 1 beat the 3 non-converters of bin 0 (9 pairs),
    # ties inside each bin count half (3 × 1 / 2 + 1 × 3 / 2): (9 + 1.5 + 1.5) / 16
    bins = Bins("numeric", (5.0,), (), None, False, (4, 4), (1, 3))
    assert univariate_auc(bins) == pytest.approx(12 / 16)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 20)), min_size=2, max_size=60))
def test_auc_and_average_precision_agree_with_scikit_learn(rows: list[tuple[bool, int]]) -> None:
    y = [int(b) for b, _ in rows]
    s = [float(v) for _, v in rows]
    if 0 < sum(y) < len(y):
        assert metrics.roc_auc(y, s) == pytest.approx(roc_auc_score(y, s))
        assert metrics.pr_auc(y, s) == pytest.approx(average_precision_score(y, s))
