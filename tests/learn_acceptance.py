"""Acceptance on real data (issue 5 §4): the learned points model against the LightGBM challenger on a
fixed 30 % holdout (by a hash of the id). ``python tests/learn_acceptance.py`` prints the first table recorded
in docs/learning.md (as ``leadscore learn`` does by default: regularisation and pairs chosen by
cross-validation on the training rows), ``--additive`` the second (C = 1, no pairs), ``--demo`` the
demo data's; tests/test_learn_acceptance.py asserts the first."""

from __future__ import annotations

import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

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


def run(case: Case, c: float | str = "cv", interactions: int | str = "cv") -> LearnResult:
    data = csv_data(case.path, case.outcome, id_column=case.id_column, exclude=case.exclude)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LeakageWarning)  # reported in result.warnings
        return learn(data, "acceptance", C=c, interactions=interactions)  # type: ignore[arg-type]


def markdown(results: list[tuple[Case, LearnResult]]) -> str:
    lines = ["| data | holdout rows | points AUC | LightGBM AUC | gap | points ECE | LightGBM ECE | rules | C | pairs |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]  # fmt: skip
    for case, r in results:
        ch = r.challenger
        assert ch is not None
        n_rules = len(r.model.fit) + len(r.model.engagement)
        lines.append(f"| {case.name} | {r.holdout_rows} | {r.points.roc_auc:.4f} | {ch.roc_auc:.4f} | "
                     f"{ch.roc_auc - r.points.roc_auc:+.4f} | {r.points.ece:.4f} | {ch.ece:.4f} | {n_rules} | "
                     f"{r.scorecard.C_:.3g} | {pairs(r)} |")  # fmt: skip
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
    settings = (1.0, 0) if "--additive" in sys.argv else ("cv", "cv")
    print(markdown([(case, run(case, *settings)) for case in CASES]))
