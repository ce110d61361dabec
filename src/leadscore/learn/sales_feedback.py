"""Sales feedback as evidence: how often sales accepted the MQLs of each model version, why it rejected
the others, and for each rule how often it gave points to accepted against rejected leads.

Every decision on an MQL (``lifecycle.decisions.mql_decisions``) is one labelled MQL: 1 accepted, 0 rejected. Its model version is
the one that scored the lead last before the decision (``score_history``); the rules that contributed are
those the evaluated model gives the lead points for as of the decision, with her attributes as known then
(``scoring.as_known.score_as_known``, as history, ``explain --as-of`` and the backtest read them: a title
changed after the decision does not move the decision to the rules of the new title), so the feedback lift of a rule is ``metrics.rule_lift`` on these labels,
beside its lift on outcomes.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import Connection, select

from leadscore.compile import Sources
from leadscore.learn import metrics
from leadscore.learn.evaluate import rule_hits
from leadscore.lifecycle.decisions import mql_decisions
from leadscore.model import ScoringModel
from leadscore.scoring.as_known import score_as_known
from leadscore.store.schema import model_versions, score_history
from leadscore.store.score_names import named


@dataclass(frozen=True)
class VersionFeedback:
    version: str  # name@N, or "(unscored)"
    accepted: int
    rejected: int
    acceptance_rate: float | None
    reasons: dict[str, int]


@dataclass(frozen=True)
class RuleFeedback:
    rule: str
    accepted: int  # accepted MQLs the rule gave points to
    rejected: int  # rejected MQLs the rule gave points to
    acceptance_hit: float | None  # acceptance among the MQLs it gave points to
    acceptance_miss: float | None  # acceptance among the others
    lift: float | None  # acceptance_hit / acceptance_miss
    reasons: dict[str, int]  # rejection reasons of the rejected MQLs it gave points to


@dataclass
class FeedbackEvidence:
    model: str
    decisions: int
    accepted: int
    rejected: int
    reasons: dict[str, int]
    versions: list[VersionFeedback] = field(default_factory=list)
    rules: list[RuleFeedback] = field(default_factory=list)

    @property
    def acceptance_rate(self) -> float | None:
        return self.accepted / self.decisions if self.decisions else None

    def rule(self, rule_id: str) -> RuleFeedback:
        return next(r for r in self.rules if r.rule == rule_id)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "acceptance_rate": self.acceptance_rate}


def _number(x: float) -> float | None:
    return None if x != x else float(x)  # NaN: undefined (no MQL on one side)


def _versions_at(conn: Connection, decisions: list[dict[str, Any]]) -> list[str]:
    """The label of the version that scored each decided lead last before the decision."""
    labels = {
        int(i): f"{n}@{v}"
        for i, n, v in conn.execute(
            select(model_versions.c.id, model_versions.c.name, model_versions.c.version)
        )
    }
    leads = sorted({int(d["lead_id"]) for d in decisions})
    history: dict[int, list[tuple[int, int]]] = {}
    query = (
        select(score_history.c.lead_id, score_history.c.at_ms, score_history.c.model_version_id)
        .where(score_history.c.lead_id.in_(leads), named(score_history.c.score_name, None))
        .order_by(score_history.c.at_ms, score_history.c.id)
    )
    for lead, at, version in conn.execute(query):
        history.setdefault(int(lead), []).append((int(at), int(version)))
    out = []
    for d in decisions:
        before = [v for at, v in history.get(int(d["lead_id"]), []) if at <= int(d["at_ms"])]
        out.append(labels.get(before[-1], "(unknown)") if before else "(unscored)")
    return out


def feedback_evidence(
    conn: Connection, sources: Sources, model: ScoringModel, label: str
) -> FeedbackEvidence:
    """Acceptance per version and the feedback lift of every rule of ``model``."""
    decisions = mql_decisions(conn)
    y = [1 if d["decision"] == "accepted" else 0 for d in decisions]
    reasons = [str(d["reason"]) if d["reason"] else "(none)" for d in decisions]
    total = Counter(r for r, a in zip(reasons, y, strict=True) if not a)
    evidence = FeedbackEvidence(label, len(y), sum(y), len(y) - sum(y), dict(total.most_common()))
    if not decisions:
        return evidence
    versions = _versions_at(conn, decisions)
    for version in sorted(set(versions)):
        idx = [i for i, v in enumerate(versions) if v == version]
        acc = sum(y[i] for i in idx)
        why = Counter(reasons[i] for i in idx if not y[i])
        evidence.versions.append(
            VersionFeedback(version, acc, len(idx) - acc, acc / len(idx), dict(why.most_common()))
        )
    pairs = [(int(d["lead_id"]), int(d["at_ms"])) for d in decisions]
    scored = score_as_known(conn, model, sources, sorted(set(pairs)), explain=True)
    hits = rule_hits(model, [scored[p] for p in pairs])
    for lift in metrics.rule_lift(y, hits):
        flags = hits[lift.rule]
        acc = sum(1 for f, a in zip(flags, y, strict=True) if f and a)
        rej = sum(1 for f, a in zip(flags, y, strict=True) if f and not a)
        why = Counter(r for f, a, r in zip(flags, y, reasons, strict=True) if f and not a)
        evidence.rules.append(
            RuleFeedback(
                lift.rule,
                acc,
                rej,
                _number(lift.rate_hit),
                _number(lift.rate_miss),
                _number(lift.lift),
                dict(why.most_common()),
            )
        )
    return evidence
