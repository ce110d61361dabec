"""The model review: evidence (sales feedback, outcomes, the backtest's advice) turned into concrete
proposals a marketer can accept into a draft model, each with its backtest effect shown first.

A proposal is an ``Edit`` of the active model:

* **remove a rule** that gives points mostly to leads sales rejected (at least ``reject_share`` of the
  decided MQLs it gave points to, over at least ``min_support`` of them), with their rejection reasons
  ("not ICP", "student", "competitor" ...);
* **change a rule's points** where the evidence supports a different weight: the points are multiplied
  by the rule's lift (acceptance by sales among the MQLs it gave points to over the others; with outcome
  lifts given, the geometric mean of the two), when that lift is at least ``lift_factor`` or at most its
  inverse;
* **move the MQL threshold** to the one whose MQLs per week come closest to sales capacity
  (``backtest.advise``), when it differs from the model's own.

Each proposal's draft is backtested against the active model by ``learn.backtest.backtest`` (the
lifecycle's own gates), and ``draft`` applies any chosen set of them at once.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml
from sqlalchemy import Connection

from leadscore.compile import Sources
from leadscore.errors import ModelError
from leadscore.learn.backtest import BacktestResult, backtest
from leadscore.learn.edits import MIN_SUPPORT, Edit
from leadscore.learn.sales_feedback import FeedbackEvidence, feedback_evidence
from leadscore.lifecycle.replay import mql_threshold, with_threshold
from leadscore.model import ScoringModel, dump_model, loads_model
from leadscore.model.rules import MAX_POINTS

REJECT_SHARE = 0.6
LIFT_FACTOR = 1.5


@dataclass
class Proposal:
    edit: Edit
    title: str
    why: str
    backtest: BacktestResult | None = None

    @property
    def id(self) -> str:
        return self.edit.id

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.edit.kind,
            "rule": self.edit.rule,
            "points": self.edit.points,
            "threshold": self.edit.threshold,
            "title": self.title,
            "why": self.why,
            "backtest": self.backtest.as_dict() if self.backtest else None,
        }


@dataclass
class Review:
    model: str
    evidence: FeedbackEvidence
    proposals: list[Proposal] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "evidence": self.evidence.as_dict(),
            "proposals": [p.as_dict() for p in self.proposals],
        }


def draft(model: ScoringModel, edits: Sequence[Edit], note: str = "") -> ScoringModel:
    """The model with ``edits`` applied (a removed rule's points changes are moot)."""
    data = yaml.safe_load(dump_model(model))
    known = {r.id for r in (*model.fit, *model.engagement)}
    for edit in edits:
        if edit.kind in ("remove_rule", "points") and edit.rule not in known:
            raise ModelError(f"{model.model} has no rule {edit.rule!r}")
        for section in ("fit", "engagement"):
            rules = data.get(section) or []
            if edit.kind == "remove_rule":
                data[section] = [r for r in rules if r.get("id") != edit.rule]
            elif edit.kind == "points":
                for r in rules:
                    if r.get("id") == edit.rule:
                        r["points"] = edit.points
    if note:
        data["description"] = f"{data.get('description', '')} {note}".strip()[:2000]
    out = loads_model(yaml.safe_dump(data, sort_keys=False), f"draft of {model.model}", stored=True)
    for edit in edits:
        if edit.kind == "threshold" and edit.threshold is not None:
            if out.lifecycle is None:
                raise ModelError(f"{model.model} has no lifecycle: its MQL threshold is its hot band")
            out = out.model_copy(update={"lifecycle": with_threshold(out, edit.threshold)})
    return out


def _rule_points(model: ScoringModel) -> dict[str, float]:
    out: dict[str, float] = {}
    for rule in (*model.fit, *model.engagement):
        points = getattr(rule, "points", None)
        if isinstance(points, int | float):
            out[rule.id] = float(points)
    return out


def rule_proposals(
    model: ScoringModel,
    evidence: FeedbackEvidence,
    outcome_lift: Mapping[str, float | None] | None = None,
    *,
    min_support: int = MIN_SUPPORT,
    reject_share: float = REJECT_SHARE,
    lift_factor: float = LIFT_FACTOR,
) -> list[Proposal]:
    """Proposals about rules from the feedback lift (and the outcome lift, where given)."""
    points = _rule_points(model)
    out: list[Proposal] = []
    for rf in evidence.rules:
        decided = rf.accepted + rf.rejected
        if rf.rule not in points or decided < min_support:
            continue
        reasons = ", ".join(f"{k} {n}" for k, n in rf.reasons.items()) or "none given"
        if points[rf.rule] > 0 and rf.rejected / decided >= reject_share:
            out.append(Proposal(
                Edit("remove_rule", rf.rule),
                f"remove rule {rf.rule}",
                f"it gave points to {decided} decided MQLs and sales rejected {rf.rejected} of them "
                f"(reasons: {reasons})",
            ))  # fmt: skip
            continue
        lifts = [
            x
            for x in (rf.lift, (outcome_lift or {}).get(rf.rule))
            if x is not None and x > 0 and math.isfinite(x)
        ]
        if not lifts:
            continue
        lift = math.exp(sum(math.log(x) for x in lifts) / len(lifts))
        if 1 / lift_factor < lift < lift_factor:
            continue
        new = max(-MAX_POINTS, min(MAX_POINTS, round(points[rf.rule] * lift, 1)))
        if new == 0 or new == points[rf.rule]:
            continue
        source = "sales acceptance" + (" and outcomes" if len(lifts) > 1 else "")
        out.append(Proposal(
            Edit("points", rf.rule, points=new),
            f"rule {rf.rule}: {points[rf.rule]:g} → {new:g} points",
            f"lift {lift:.2f} on {source}: sales accepted {rf.accepted} of the {decided} decided MQLs it "
            f"gave points to ({_share(rf.acceptance_hit)}, against {_share(rf.acceptance_miss)} without it)",
        ))  # fmt: skip
    return out


def _share(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.0f} %"


def review(
    conn: Connection,
    sources: Sources,
    model: ScoringModel,
    label: str,
    *,
    start_ms: int,
    end_ms: int,
    outcome: str,
    horizon_ms: int,
    per_week: float | None = None,
    outcome_lift: Mapping[str, float | None] | None = None,
    min_support: int = MIN_SUPPORT,
    score: str | None = None,
) -> Review:
    """Evidence and proposals for ``model`` (the active one of the score ``score``, the primary when
    None), each backtested over [start, end) as that score's team runs the lifecycle."""
    evidence = feedback_evidence(conn, sources, model, label)
    proposals = rule_proposals(model, evidence, outcome_lift, min_support=min_support)

    def effect(draft_model: ScoringModel, threshold: float | None = None) -> BacktestResult:
        return backtest(conn, sources, ("draft", draft_model, threshold), (label, model, None),
                        start_ms=start_ms, end_ms=end_ms, outcome=outcome, horizon_ms=horizon_ms,
                        per_week=per_week, score=score)  # fmt: skip

    if per_week is not None and model.lifecycle is not None:
        advice = effect(model).advice
        now = mql_threshold(model)
        if advice.capacity_threshold is not None and advice.capacity_threshold != now:
            proposals.append(Proposal(
                Edit("threshold", threshold=advice.capacity_threshold),
                f"MQL threshold {now:g} → {advice.capacity_threshold:g}",
                f"replayed, {advice.capacity_mqls_per_week:.1f} MQLs a week against a capacity of {per_week:g}",
            ))  # fmt: skip
    for p in proposals:
        p.backtest = effect(draft(model, [p.edit]))
    return Review(label, evidence, proposals)
