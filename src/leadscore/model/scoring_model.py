"""The scoring model: lists, fit rules, engagement rules, groups and the scale, as frozen data."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationInfo, model_validator

from leadscore.model.conditions import MAX_DEPTH, Compare, depth, walk
from leadscore.model.durations import Duration
from leadscore.model.lifecycle import LifecycleSection
from leadscore.model.rules import RULE_ID, EventRule, FitRule, Frozen, Group

MAX_RULES = 300
MAX_LIST_VALUES = 200_000
# the raw points that count as 100 and the weights: within these the compiled arithmetic (points × 100 /
# max, weight / total) stays finite in a double; 5e-324 made a lead's 0 points × 100 / max NaN, 1e308 + 1e308
# weights infinity (a learned model's maxima are sums of at most 300 rules' 1e6 points)
MIN_SCALE_MAX = 1e-6
MAX_SCALE = 1e12


class NamedList(Frozen):
    """A named set of values (target accounts, competitors, free-mail domains).

    ``values`` are always present once loaded; ``source`` records the CSV they came from.
    """

    values: tuple[str, ...] = Field(max_length=MAX_LIST_VALUES)
    source: str | None = None
    column: str | None = None
    description: str = ""


class Defaults(Frozen):
    half_life: Duration | None = Field(default=None, description="decay for 'each' and 'once' rules")


class Weights(Frozen):
    fit: float = Field(ge=0, le=MAX_SCALE)
    engagement: float = Field(ge=0, le=MAX_SCALE)

    @model_validator(mode="after")
    def _positive_total(self) -> Weights:
        if self.fit + self.engagement <= 0:
            raise ValueError("weights must not both be 0")
        return self


class Grades(Frozen):
    """Lowest fit score (0–100) of grades A, B and C; anything below C is D."""

    A: float = Field(default=75, ge=0, le=100)
    B: float = Field(default=50, ge=0, le=100)
    C: float = Field(default=25, ge=0, le=100)

    @model_validator(mode="after")
    def _ordered(self) -> Grades:
        if not self.A >= self.B >= self.C:
            raise ValueError("grades must satisfy A >= B >= C")
        return self


class Levels(Frozen):
    """Lowest engagement score (0–100) of levels 1, 2 and 3 (1 is the most engaged); below is 4."""

    model_config = Frozen.model_config | {"populate_by_name": True}
    one: float = Field(default=75, ge=0, le=100, alias="1")
    two: float = Field(default=50, ge=0, le=100, alias="2")
    three: float = Field(default=25, ge=0, le=100, alias="3")

    @model_validator(mode="before")
    @classmethod
    def _text_keys(cls, raw: object) -> object:
        # YAML reads `1:` as the integer 1
        return {str(k): v for k, v in raw.items()} if isinstance(raw, dict) else raw

    @model_validator(mode="after")
    def _ordered(self) -> Levels:
        if not self.one >= self.two >= self.three:
            raise ValueError("levels must satisfy 1 >= 2 >= 3")
        return self


class Bands(Frozen):
    """Lowest combined score of the hot and warm bands; anything below warm is cold."""

    hot: float = Field(default=70, ge=0, le=100)
    warm: float = Field(default=40, ge=0, le=100)

    @model_validator(mode="after")
    def _ordered(self) -> Bands:
        if self.hot < self.warm:
            raise ValueError("bands must satisfy hot >= warm")
        return self


class Privacy(Frozen):
    """Consent. Behaviour (engagement) of a lead is scored only with tracking consent: the lead attribute
    ``consent_tracking`` (true/false, from identify traits, the API or CSV import). ``assumed`` scores
    leads unless it is false; ``required`` scores only leads for whom it is true."""

    tracking_consent: Literal["assumed", "required"] = "assumed"


class Scale(Frozen):
    """How raw points become 0–100 scores.

    ``fit_max`` and ``engagement_max`` are the raw points that count as 100; more is clamped to 100.
    """

    fit_max: float = Field(default=100, ge=MIN_SCALE_MAX, le=MAX_SCALE)
    engagement_max: float = Field(default=100, ge=MIN_SCALE_MAX, le=MAX_SCALE)
    weights: Weights = Weights(fit=0.5, engagement=0.5)
    grades: Grades = Grades()
    levels: Levels = Levels()
    bands: Bands = Bands()


class ScoringModel(Frozen):
    """A complete, validated scoring model."""

    model: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$", description="model name")
    description: str = ""
    lists: dict[str, NamedList] = Field(default_factory=dict)
    defaults: Defaults = Defaults()
    fit: tuple[FitRule, ...] = ()
    engagement: tuple[EventRule, ...] = ()
    groups: tuple[Group, ...] = ()
    scale: Scale = Scale()
    privacy: Privacy = Privacy()
    lifecycle: LifecycleSection = None

    @model_validator(mode="after")
    def _references(self, info: ValidationInfo) -> ScoringModel:
        # yaml_io checks references on the raw document first, with positions (context
        # "cross_checked"); models built in code get the same checks here. Sizes are always checked.
        positioned = bool(info.context and info.context.get("cross_checked"))
        problems = size_problems(self) + ([] if positioned else cross_check(self))
        if problems:
            raise ValueError("; ".join(msg for _, msg in problems))
        return self

    def rule(self, rule_id: str) -> FitRule | EventRule:
        for rule in (*self.fit, *self.engagement):
            if rule.id == rule_id:
                return rule
        raise KeyError(rule_id)

    def group(self, group_id: str) -> Group:
        return next(g for g in self.groups if g.id == group_id)


def size_problems(model: ScoringModel) -> list[tuple[str, str]]:
    """Limits that keep compiled SQL bounded: rule count and condition depth."""
    problems: list[tuple[str, str]] = []
    if len(model.fit) + len(model.engagement) > MAX_RULES:
        problems.append(("", f"a model may have at most {MAX_RULES} rules"))
    for rule in (*model.fit, *model.engagement):
        condition = rule.when if isinstance(rule, FitRule) else rule.where
        if condition is not None and depth(condition) > MAX_DEPTH:
            problems.append((rule.id, f"rule {rule.id}: conditions nest deeper than {MAX_DEPTH} levels"))
    return problems


def cross_check(model: ScoringModel) -> list[tuple[str, str]]:
    """Problems between parts of a model as (rule id, message)."""
    problems: list[tuple[str, str]] = []
    seen: set[str] = set()
    group_ids = {g.id for g in model.groups}
    for rule in (*model.fit, *model.engagement):
        if rule.id in seen:
            problems.append((rule.id, f"duplicate rule id {rule.id!r}"))
        seen.add(rule.id)
        condition = rule.when if isinstance(rule, FitRule) else rule.where
        subject: Literal["attribute", "property"] = "attribute" if isinstance(rule, FitRule) else "property"
        for compare in walk(condition) if condition is not None else []:
            problems.extend(_check_compare(rule.id, compare, subject, model))
        group = getattr(rule, "group", None)
        if group is not None and group not in group_ids:
            problems.append((rule.id, f"unknown group {group!r}"))
    for g in model.groups:
        if g.id in seen:
            problems.append((g.id, f"group id {g.id!r} is also a rule id"))
    for transition in model.lifecycle.transitions if model.lifecycle is not None else ():
        for rule_id in transition.when.rules_met or ():
            if rule_id not in seen:
                problems.append(
                    (transition.id, f"transition {transition.id}: rules_met names unknown rule {rule_id!r}")
                )
    accounts = model.lifecycle.accounts if model.lifecycle is not None else None
    for rule_id in accounts.pqa.rules_met if accounts is not None and accounts.pqa is not None else ():
        if rule_id not in seen:
            problems.append(("accounts", f"accounts.pqa: rules_met names unknown rule {rule_id!r}"))
    return problems


def _check_compare(
    rule_id: str, compare: Compare, subject: str, model: ScoringModel
) -> list[tuple[str, str]]:
    out = []
    if compare.subject != subject:
        where = (
            "fit rules compare 'attribute'" if subject == "attribute" else "event rules compare 'property'"
        )
        out.append((rule_id, f"{where}, not {compare.subject!r}"))
    if compare.op == "in_list" and compare.value not in model.lists:
        out.append((rule_id, f"unknown list {compare.value!r}"))
    return out


__all__ = ["RULE_ID", "ScoringModel"]
