"""Issues 5 §4 and 18 on the real data sets in ../shared/data (skipped, with the reason shown, where
absent): within the default budget of 30 rules, and unconstrained, the points model is within 0.01 AUC of
LightGBM fitted on every feature the learner was offered."""

from __future__ import annotations

import pytest

from learn_acceptance import BUDGET, CASES, DATA, X_EDUCATION, Case, run

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not X_EDUCATION.exists(), reason=f"real data sets not found at {DATA}"),
]
TARGET_GAP = 0.01  # the target: readability costs at most 0.01 AUC against the challenger


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_points_model_is_within_target_of_lightgbm(case: Case) -> None:
    result = run(case)
    assert len(result.model.fit) + len(result.model.engagement) <= BUDGET == 30
    assert result.challenger is not None
    assert result.challenger.roc_auc - result.points.roc_auc <= TARGET_GAP
    # the full model is reported beside it wherever the budget binds (on all three files it does)
    assert result.unconstrained is not None
    assert result.challenger.roc_auc - result.unconstrained.roc_auc <= TARGET_GAP
    assert result.points.roc_auc > (0.95 if case is CASES[0] else 0.88)
    assert result.points.ece < 0.05
