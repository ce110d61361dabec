"""Read one wide result row into a ledger: every point of the score traced to a rule or an adjustment.

``score_points`` is each line's contribution to the final 0–100 score, so the lines sum to the score
(up to floating-point rounding, < 1e-9). Adjustments (group cap, floor, clamp at the scale's maximum) are
lines of their own, so nothing is hidden in the arithmetic.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from leadscore.compile import layout
from leadscore.compile.query import half_life_ms
from leadscore.model import EachRule, ScoringModel, ThresholdRule

EPS = 1e-12


@dataclass(frozen=True)
class LedgerLine:
    rule_id: str
    name: str
    section: str  # fit | engagement
    kind: str  # fit | each | once | threshold | group_cap | floor | clamp
    score_points: float
    value: float  # raw points after the rule cap (adjustments: the raw-point change)
    raw: float | None = None  # before the rule cap
    matched: int | None = None  # events counted
    decay: float | None = None  # effective decay factor applied (1 = none)
    capped: bool = False
    group: str | None = None
    note: str = ""


@dataclass(frozen=True)
class Ledger:
    lead_id: int
    as_of: int
    score: float
    fit_score: float
    engagement_score: float
    fit_points: float
    engagement_points: float
    grade: str
    level: int
    band: str
    lines: tuple[LedgerLine, ...] = field(default_factory=tuple)

    @property
    def total(self) -> float:
        return sum(line.score_points for line in self.lines)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def factors(model: ScoringModel) -> tuple[float, float]:
    """Score points per raw fit point and per raw engagement point."""
    s = model.scale
    total = s.weights.fit + s.weights.engagement
    return 100.0 / s.fit_max * s.weights.fit / total, 100.0 / s.engagement_max * s.weights.engagement / total


def read_ledger(model: ScoringModel, row: Mapping[str, Any], *, include_zero: bool = False) -> Ledger:
    ff, ef = factors(model)
    lines: list[LedgerLine] = []
    for fit_rule in model.fit:
        value = float(row[layout.fit_col(fit_rule.id)])
        if value or include_zero:
            lines.append(
                LedgerLine(
                    fit_rule.id,
                    fit_rule.name,
                    "fit",
                    "fit",
                    value * ff,
                    value,
                    raw=value,
                    matched=int(value != 0),
                )
            )
    for rule in model.engagement:
        n = int(row[layout.count_col(rule.id)] or 0)
        raw = float(row[layout.raw_col(rule.id)] or 0.0)
        value = float(row[layout.value_col(rule.id)] or 0.0)
        if not (n or value or include_zero):
            continue
        decay = _decay(model, rule, n, raw)
        note = ""
        if isinstance(rule, ThresholdRule):
            note = f"{n} of {rule.at_least} needed within {rule.within}"
        lines.append(
            LedgerLine(
                rule.id,
                rule.name,
                "engagement",
                rule.kind,
                value * ef,
                value,
                raw=raw,
                matched=n,
                decay=decay,
                capped=abs(raw - value) > EPS,
                group=rule.group,
                note=note,
            )
        )
    if model.engagement and not row.get(layout.TRACKING, 1):
        lines.append(
            LedgerLine(
                "consent:tracking",
                "No tracking consent",
                "engagement",
                "consent",
                0.0,
                0.0,
                note="behaviour is not scored without tracking consent",
            )
        )
    for g in model.groups:
        adj = float(row[layout.group_value_col(g.id)]) - float(row[layout.group_sum_col(g.id)])
        if abs(adj) > EPS:
            lines.append(
                LedgerLine(
                    f"group:{g.id}",
                    f"Group cap: {g.name}",
                    "engagement",
                    "group_cap",
                    adj * ef,
                    adj,
                    group=g.id,
                    capped=True,
                    note=f"cap {g.cap:g}",
                )
            )
    for section, factor, max_ in (
        ("fit", ff, model.scale.fit_max),
        ("engagement", ef, model.scale.engagement_max),
    ):
        floor = float(row[f"{section}_floor_adj"])
        if abs(floor) > EPS:
            lines.append(
                LedgerLine(
                    f"floor:{section}",
                    f"Floor at 0 ({section})",
                    section,
                    "floor",
                    floor * factor,
                    floor,
                    note="negative total raised to 0",
                )
            )
        clamp = float(row[f"{section}_clamp_adj"])
        if abs(clamp) > EPS:
            lines.append(
                LedgerLine(
                    f"clamp:{section}",
                    f"Clamp at {max_:g} points ({section})",
                    section,
                    "clamp",
                    clamp * factor,
                    clamp,
                    capped=True,
                    note=f"scale maximum {max_:g}",
                )
            )
    return Ledger(
        lead_id=int(row["lead_id"]),
        as_of=int(row["as_of"]),
        score=float(row["score"]),
        fit_score=float(row["fit_score"]),
        engagement_score=float(row["engagement_score"]),
        fit_points=float(row["fit_points"]),
        engagement_points=float(row["engagement_points"]),
        grade=str(row["grade"]),
        level=int(row["level"]),
        band=str(row["band"]),
        lines=tuple(lines),
    )


def _decay(model: ScoringModel, rule: Any, n: int, raw: float) -> float | None:
    """The decay factor the rule's points received: decayed total / undecayed total."""
    if isinstance(rule, ThresholdRule) or not n:
        return None
    if not half_life_ms(model, rule):
        return 1.0
    undecayed = rule.points * (n if isinstance(rule, EachRule) else 1)
    return raw / undecayed
