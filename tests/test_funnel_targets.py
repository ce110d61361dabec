"""Issue 18's targets on the funnel simulator at one small size and seed, time-forward: the learned model
within 30 rules reaches the true propensity's ROC-AUC less 0.06 and beats a logistic regression on the
90-day event counts by 0.05, both scored by the compiled query on the next quarter's rows. With 20 test
conversions this catches a collapse, not a shortfall of 0.01. The wider sweep is ``bench/funnel_learn.py``
(docs/learning.md "The funnel simulator": the first target is missed at 3,000 leads, seeds 2 and 3, and
both at 1,500 leads, seed 1)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

import funnel_learn

pytestmark = pytest.mark.slow


def test_learned_model_reaches_the_issues_targets_on_the_simulator() -> None:
    figures = funnel_learn.run(leads=800, seed=1, max_rules=30, log=lambda _: None)
    within = figures.learned[30]
    assert len(within.model.fit) + len(within.model.engagement) <= 30
    assert figures.test_converted >= 15  # enough conversions in the test quarter to measure on
    learned = figures.auc("learned (≤ 30 rules)")
    assert learned >= figures.auc("true propensity") - 0.06
    assert learned >= figures.auc("logistic on 90-day counts") + 0.05
    # the unconstrained model is measured beside it, by the same compiled query
    assert 0.5 < figures.auc("learned (unconstrained)") <= 1.0
