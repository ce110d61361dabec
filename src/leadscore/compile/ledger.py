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
from leadscore.compile.query import scope as scope_of
from leadscore.model import EachRule, OnceRule, RatioRule, RecencyRule, ScoringModel, ThresholdRule

EPS = 1e-12


@dataclass(frozen=True)
class LedgerLine:
    rule_id: str
    name: str
    section: str  # fit | engagement
    kind: str  # fit | each | once | threshold | recency | ratio | group_cap | floor | clamp
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
        note = _note(rule, row, n)
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
    return read_totals(row, tuple(lines))


def read_totals(row: Mapping[Any, Any], lines: tuple[LedgerLine, ...] = ()) -> Ledger:
    """The score columns of a result row as a Ledger, with ``lines`` (none: for what needs only the
    totals, such as score history rows, at a fraction of ``read_ledger``'s cost)."""
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
        lines=lines,
    )


DISTINCT_WORDS = {"day": "days", "session": "sessions", "person": "people"}


def _note(rule: Any, row: Mapping[str, Any], n: int) -> str:
    """What a count or recency rule counted, in words (the ledger line's note)."""
    scope = " in the account" if scope_of(rule) == "account" else ""
    if isinstance(rule, ThresholdRule | RatioRule) and rule.count is not None:
        d = rule.count.distinct
        what = DISTINCT_WORDS[d] if isinstance(d, str) else f"values of {d.property}"
        unit = f"distinct {what}"
    else:
        unit = "events"
    if isinstance(rule, ThresholdRule):
        count = int(row.get(layout.distinct_col(rule.id)) or 0) if rule.count is not None else n
        if rule.share is not None:
            of = row.get(layout.share_col(rule.id))
            need = f"{rule.share.at_least:g} × {rule.share.of} ({'missing' if of is None else f'{of:g}'})"
            return f"{count} {unit}{scope} of {need} needed within {rule.within}"
        return f"{count} {unit}{scope} of {rule.at_least} needed within {rule.within}"
    if isinstance(rule, RatioRule):
        recent = int(row.get(layout.recent_col(rule.id)) or 0)
        before = int(row.get(layout.before_col(rule.id)) or 0)
        bound = f"at least {rule.at_least:g}" if rule.at_least is not None else f"at most {rule.at_most:g}"
        return f"{recent} {unit}{scope} in the last {rule.within} against {before} before (ratio {bound})"
    if isinstance(rule, RecencyRule):
        last = row.get(layout.last_col(rule.id))
        if last is None:
            return f"no match within {rule.steps[-1].within}"
        age_ms = int(row["as_of"]) - int(last)
        return f"newest match {age_ms / 86_400_000:.1f} days before as-of"
    return ""


def _decay(model: ScoringModel, rule: Any, n: int, raw: float) -> float | None:
    """The decay factor the rule's points received: decayed total / undecayed total."""
    if not isinstance(rule, EachRule | OnceRule) or not n:
        return None
    if not half_life_ms(model, rule):
        return 1.0
    undecayed = rule.points * (n if isinstance(rule, EachRule) else 1)
    return raw / undecayed
