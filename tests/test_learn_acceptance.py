"""Issues 5 §4 and 18 on the real data sets in ../shared/data (skipped, with the reason shown, where
absent): within the default budget of 30 rules, the points model is within 0.01 AUC of LightGBM."""

from __future__ import annotations

import pytest

from learn_acceptance import BUDGET, CASES, DATA, X_EDUCATION, Case, run

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not X_EDUCATION.exists(), reason=f"real data sets not found at {DATA}"),
]
TARGET_GAP = 0.01  # the target: readability costs at most 0.01 AUC against the challenger


# measured 0.0128 behind LightGBM within 30 rules (docs/learning.md): issue 18's target not yet met there;
# strict, so the day it is met this says so
NOT_YET = pytest.mark.xfail(strict=True, reason="online shoppers: 30 rules are 0.0128 AUC behind LightGBM")


@pytest.mark.parametrize(
    "case",
    [pytest.param(c, marks=NOT_YET) if c.path.name.startswith("online_shoppers") else c for c in CASES],
    ids=lambda c: c.name,
)
def test_points_model_is_within_target_of_lightgbm(case: Case) -> None:
    result = run(case)
    assert len(result.model.fit) + len(result.model.engagement) <= BUDGET == 30
    assert result.challenger is not None
    assert result.challenger.roc_auc - result.points.roc_auc <= TARGET_GAP
    assert result.points.roc_auc > (0.95 if case is CASES[0] else 0.88)
    assert result.points.ece < 0.05
