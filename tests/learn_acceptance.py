"""Acceptance on real data (issues 5 §4 and 18): the learned points model against the LightGBM challenger
on a fixed 30 % holdout (by a hash of the id). ``python tests/learn_acceptance.py`` prints the first table
recorded in docs/learning.md (as ``leadscore learn`` does by default: at most 30 rules, the candidate,
regularisation and pairs chosen by cross-validation on the training rows; beside it the unconstrained
model, a logistic regression on the same columns and LightGBM), ``--additive`` the second (C = 1, no
pairs, unconstrained), ``--demo`` the demo data's; tests/test_learn_acceptance.py asserts the first."""

from __future__ import annotations

import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from leadscore.learn.dataset import csv_data
from leadscore.learn.scorecard import LeakageWarning
from leadscore.learn.train import LearnResult, learn

ROOT = Path(__file__).resolve().parent.parent
# $LEADSCORE_SHARED_DATA, else ../shared/data beside the clone (CI), else two levels up (a git worktree
# in a folder of worktrees beside the shared folder)
_PLACES = (ROOT.parent / "shared" / "data", ROOT.parent.parent / "shared" / "data")
DATA = (
    Path(os.environ["LEADSCORE_SHARED_DATA"])
    if os.environ.get("LEADSCORE_SHARED_DATA")
    else next((p for p in _PLACES if p.exists()), _PLACES[0])
)
X_EDUCATION = DATA / "x_education_leads" / "Leads.csv"
SHOPPERS = DATA / "uci_online_shoppers_intention" / "online_shoppers_intention.csv"
SALES_ENTERED = ("Tags", "Lead Quality", "Lead Profile", "Last Notable Activity", "Asymmetrique Activity Index",
                 "Asymmetrique Profile Index", "Asymmetrique Activity Score", "Asymmetrique Profile Score")  # fmt: skip


@dataclass(frozen=True)
class Case:
    name: str
    path: Path
    outcome: str
    id_column: str | None
    exclude: tuple[str, ...] = ()


CASES = (
    Case("X Education, all columns", X_EDUCATION, "Converted", "Prospect ID"),
    Case(
        "X Education, without sales-entered columns", X_EDUCATION, "Converted", "Prospect ID", SALES_ENTERED
    ),
    Case("UCI online shoppers", SHOPPERS, "Revenue", None),
)


BUDGET = 30  # leadscore learn's default rule budget


def run(
    case: Case, c: float | str = "cv", interactions: int | str = "cv", max_rules: int = BUDGET
) -> LearnResult:
    data = csv_data(case.path, case.outcome, id_column=case.id_column, exclude=case.exclude)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LeakageWarning)  # reported in result.warnings
        return learn(data, "acceptance", C=c, interactions=interactions, max_rules=max_rules)  # type: ignore[arg-type]


def logistic(case: Case) -> float:
    """ROC-AUC on the same holdout of a logistic regression on the same columns: numbers standardised
    (missing: the mean, and a flag), categories one-hot (rare ones, under 1 % of rows, pooled)."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from leadscore.learn.binning import numeric_column
    from leadscore.learn.features import category
    from leadscore.learn.metrics import roc_auc

    data = csv_data(case.path, case.outcome, id_column=case.id_column, exclude=case.exclude)
    train, held = data.split()
    columns: list[tuple[Any, Any]] = []
    for j, f in enumerate(data.features):
        if f.kind == "numeric":
            x, h = numeric_column(train.X[:, j]), numeric_column(held.X[:, j])
            mean, sd = float(np.nanmean(x)), float(np.nanstd(x)) or 1.0
            columns += [((np.nan_to_num(x, nan=mean) - mean) / sd, (np.nan_to_num(h, nan=mean) - mean) / sd),
                        (np.isnan(x).astype(float), np.isnan(h).astype(float))]  # fmt: skip
            continue
        keys = [repr(category(v)) for v in train.X[:, j]]
        common = {k for k in set(keys) if keys.count(k) >= 0.01 * len(keys)}
        held_keys = [repr(category(v)) for v in held.X[:, j]]
        columns += [(np.asarray([k == c for k in keys], float), np.asarray([k == c for k in held_keys], float))
                    for c in sorted(common)]  # fmt: skip
    A = np.column_stack([a for a, _ in columns])
    B = np.column_stack([b for _, b in columns])
    lr = LogisticRegression(max_iter=5000).fit(A, train.y)
    return roc_auc(held.y, lr.decision_function(B))


def markdown(results: list[tuple[Case, LearnResult, float]]) -> str:
    lines = [f"| data | holdout rows | points ≤ {BUDGET} rules | unconstrained | logistic | LightGBM | gap (≤ {BUDGET}) "
             "| points ECE | LightGBM ECE | rules | C | pairs |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---|"]  # fmt: skip
    for case, r, lr_auc in results:
        ch = r.challenger
        assert ch is not None
        n_rules = len(r.model.fit) + len(r.model.engagement)
        free = r.unconstrained
        unconstrained = f"{free.roc_auc:.4f} ({free.name.split('(')[1].rstrip(')')})" if free else "(same)"
        lines.append(f"| {case.name} | {r.holdout_rows} | {r.points.roc_auc:.4f} | {unconstrained} | {lr_auc:.4f} | "
                     f"{ch.roc_auc:.4f} | {ch.roc_auc - r.points.roc_auc:+.4f} | {r.points.ece:.4f} | {ch.ece:.4f} | "
                     f"{n_rules} | {r.scorecard.C_:.3g} | {pairs(r)} |")  # fmt: skip
    return "\n".join(lines)


def pairs(result: LearnResult) -> str:
    return ", ".join(f"{a.name} × {b.name}" for a, b in result.pairs) or "none"


DEMO_NOW = 1_751_328_000_000  # 2025-07-01T00:00:00Z


def demo(db: str, leads: int = 1500, seed: int = 7) -> str:
    """The demo generator's data: a model learned on the training leads against the hand-made example model,
    both scored by the compiled query on the held-out leads (outcome: opportunity within 30 days)."""
    from leadscore.demo import demo_model, run_demo
    from leadscore.learn.dataset import in_holdout
    from leadscore.learn.labels import DAY_MS
    from leadscore.learn.metrics import roc_auc
    from leadscore.learn.store_data import cutoffs, known_at_cutoffs, store_data
    from leadscore.scoring.run import score_points
    from leadscore.store import Store

    run_demo(db, leads=leads, seed=seed, now_ms=DEMO_NOW)
    store = Store.from_url(db)
    try:
        with store.connect() as conn:
            at = cutoffs(DEMO_NOW - 150 * DAY_MS, DEMO_NOW, 14 * DAY_MS)
            data, _ = store_data(conn, store.sources(), outcome="opportunity", horizon_ms=30 * DAY_MS, at=at)
            result = learn(data, "learned", C="cv", min_class_count=20)
            assert data.lead_ids is not None and data.as_of is not None  # store data has both
            held = [
                (int(a), int(t), int(y))
                for a, t, y, k in zip(data.lead_ids, data.as_of, data.y, data.keys, strict=True)
                if in_holdout(k)
            ]
            rows = [(a, t) for a, t, _ in held]
            aucs = {}
            for label, model in (("learned", result.model), ("hand-made b2b_saas", demo_model())):
                scored = {
                    (lg.lead_id, lg.as_of): lg.score
                    for known, group in known_at_cutoffs(conn, store.sources(), rows)
                    for lg in score_points(conn, model, known, group)
                }
                aucs[label] = roc_auc([y for *_, y in held], [scored[r] for r in rows])
    finally:
        store.dispose()
    return "\n".join(["| model (demo, held-out leads) | rows | converted | ROC-AUC |", "|---|---:|---:|---:|",
                      *(f"| {k} | {len(held)} | {sum(y for *_, y in held)} | {v:.4f} |" for k, v in aucs.items())])  # fmt: skip


if __name__ == "__main__":
    if "--demo" in sys.argv:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            print(demo(str(Path(tmp) / "demo.db")))
        sys.exit(0)
    if not X_EDUCATION.exists():
        sys.exit(f"no data at {DATA}")
    if "--additive" in sys.argv:
        print(markdown([(case, run(case, 1.0, 0, 300), logistic(case)) for case in CASES]))
    else:
        for case in CASES:  # as each finishes
            r = run(case)
            print(markdown([(case, r, logistic(case))]).splitlines()[-1], "|", r.choice, flush=True)
