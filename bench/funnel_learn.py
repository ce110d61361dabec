"""Learned models against the best possible on the funnel simulator, time-forward.

    python bench/funnel_learn.py                # 3,000 leads, seed 1 (a few minutes on SQLite)
    python bench/funnel_learn.py --leads 5000 --seed 2

The simulator (``leadscore.demo.funnel``) runs 360 days. ``leadscore learn``'s learner is fitted on
cutoffs every 14 days up to day 180 (outcome: an opportunity within 90 days, so every training label is
known by day 270), and every model is scored as of day 270 for the next quarter (days 270-360), by the
compiled query where it is a model. Printed: ROC-AUC on those rows of the true propensity (the hidden
state's exact chance of converting: the best any score can do), the learned model with at most
``--max-rules`` rules and unconstrained (300), a logistic regression on the 90-day event counts, and the
shipped example model (examples/b2b_saas). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from leadscore.demo.funnel import DAY, START_MS, simulate, write
from leadscore.learn import metrics
from leadscore.learn.evaluate import evaluate_store
from leadscore.learn.features import EventCount
from leadscore.learn.store_data import feature_matrix, store_data
from leadscore.learn.train import LearnResult, learn
from leadscore.model import load_model
from leadscore.store import Store
from leadscore.store.schema import leads as leads_table

HORIZON_DAYS = 90
TRAIN_CUTOFFS = range(96, 181, 14)
TEST_CUTOFF = 270
EXCLUDE: list[str] = []  # the account's id (account.group_id) is never a feature
EXAMPLE = Path(__file__).parents[1] / "examples" / "b2b_saas" / "model.yaml"


@dataclass
class Figures:
    """ROC-AUC on the test rows of every model (name, AUC, note), and the learned results by budget."""

    rows: list[tuple[str, float, str]]
    learned: dict[int, LearnResult]
    train_rows: int
    train_converted: int
    test_rows: int
    test_converted: int

    def auc(self, name: str) -> float:
        return next(auc for n, auc, _ in self.rows if n.startswith(name))


def run(leads: int, seed: int, max_rules: int = 30, log: Callable[[str], None] = print) -> Figures:
    """Simulate, learn on the training cutoffs within ``max_rules`` and unconstrained (300), score the
    test cutoff with the compiled query, and measure every model beside the true propensity."""
    started = time.perf_counter()
    funnel = simulate(leads=leads, seed=seed, days=360)
    horizon = HORIZON_DAYS * DAY
    test_at = START_MS + TEST_CUTOFF * DAY
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.from_url(str(Path(tmp) / "funnel.db"))
        n = write(store, funnel)
        log(f"{leads:,} leads, {n:,} messages, seed {seed} ({time.perf_counter() - started:.0f} s)")
        with store.connect() as conn:
            train, _ = store_data(conn, store.sources(), outcome="opportunity", horizon_ms=horizon,
                                  at=[START_MS + d * DAY for d in TRAIN_CUTOFFS], end_ms=test_at,
                                  exclude=EXCLUDE)  # fmt: skip
            log(f"train rows ({time.perf_counter() - started:.0f} s)")
            test, _ = store_data(conn, store.sources(), outcome="opportunity", horizon_ms=horizon, at=[test_at],
                                 end_ms=test_at + horizon, exclude=EXCLUDE)  # fmt: skip
            pairs = list(zip(test.lead_ids.tolist(), test.as_of.tolist(), strict=True))  # type: ignore[union-attr]
            X_test = feature_matrix(conn, store.sources(), train.features, pairs)
            key_of = dict(conn.execute(leads_table.select().with_only_columns(
                leads_table.c.id, leads_table.c.external_id)).all())  # fmt: skip
        test = type(test)(train.features, X_test, test.y, test.keys, test.lead_ids, test.as_of)
        log(f"train: {len(train):,} rows, {int(train.y.sum())} converted; "
            f"test (day {TEST_CUTOFF}): {len(test):,} rows, {int(test.y.sum())} converted")  # fmt: skip
        truth = funnel.true_propensity(test_at, HORIZON_DAYS)
        rows: list[tuple[str, float, str]] = []
        rows.append(("true propensity", metrics.roc_auc(test.y, np.asarray(
            [truth[key_of[int(lead)]] for lead in test.lead_ids])), ""))  # type: ignore[union-attr]  # fmt: skip
        fitted = {}
        for label, budget in (
            (f"learned (≤ {max_rules} rules)", max_rules),
            ("learned (unconstrained)", 300),
        ):
            result = learn(train, "funnel", test=test, challenger=None, max_rules=budget)
            compiled = evaluate_store(store, result.model, label, outcome="opportunity", horizon_ms=horizon,
                                      at=[test_at], end_ms=test_at + horizon)  # fmt: skip
            rules = len(result.model.fit) + len(result.model.engagement)
            rows.append((label, compiled.roc_auc, f"{rules} rules; estimator {result.points.roc_auc:.4f}"))
            log(f"  {result.choice}")
            fitted[budget] = result
            log(f"{label} ({time.perf_counter() - started:.0f} s)")
        counts = [j for j, f in enumerate(train.features)
                  if isinstance(f.source, EventCount) and f.source.window == "90d" and f.source.distinct is None]  # fmt: skip
        scale = StandardScaler()
        lr = LogisticRegression(max_iter=2000).fit(
            scale.fit_transform(np.log1p(train.X[:, counts].astype(float))), train.y)  # fmt: skip
        p = lr.predict_proba(scale.transform(np.log1p(test.X[:, counts].astype(float))))[:, 1]
        rows.append(("logistic on 90-day counts", metrics.roc_auc(test.y, p), f"{len(counts)} counts"))
        example = evaluate_store(store, load_model(EXAMPLE), "example", outcome="opportunity", horizon_ms=horizon,
                                 at=[test_at], end_ms=test_at + horizon)  # fmt: skip
        rows.append(("shipped example model (b2b_saas)", example.roc_auc, ""))
        store.dispose()
    return Figures(rows, fitted, len(train), int(train.y.sum()), len(test), int(test.y.sum()))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--leads", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-rules", type=int, default=30)
    args = parser.parse_args()
    started = time.perf_counter()
    figures = run(args.leads, args.seed, args.max_rules)
    print(f"\n{'model':<36} {'ROC-AUC':>8}")
    for name, auc, note in figures.rows:
        print(f"{name:<36} {auc:8.4f}  {note}")
    print("\nrules of the learned model within the budget:")
    model = figures.learned[args.max_rules].model
    for rule in [*model.fit, *model.engagement]:
        print(f"  {rule.name}")
    print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
