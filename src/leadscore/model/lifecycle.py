"""The lifecycle section of a model: stages, transitions, actions, teams, assignment, segments, accounts.

Frozen data like the rest of the model. References (a stage, team or list named somewhere else) are
checked where they are written, so ``leadscore validate`` points at the exact line and column: while the
section validates, the names it declares are kept in the validation context (``yaml_io`` passes one), and
each reference checks itself against them. Models built in code without a context get the same checks,
unpositioned, from ``Lifecycle._references``. The semantics are in docs/lifecycle.md.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, ValidationInfo, WrapValidator, model_validator
from pydantic_core.core_schema import ValidatorFunctionWrapHandler

from leadscore.model.conditions import Condition, walk
from leadscore.model.durations import Duration
from leadscore.model.rules import RULE_ID, Frozen

GRADES = ("A", "B", "C", "D")
BANDS = ("hot", "warm", "cold")
TRIGGERS = ("score", "accepted", "rejected", "opportunity", "won", "lost", "disqualified")
DEFAULT_REASONS = ("not_icp", "student", "competitor", "no_budget", "bad_timing", "duplicate", "other")
_CTX = "lifecycle"  # key of this section's scratch space in the validation context


def _scratch(info: ValidationInfo) -> dict[str, Any] | None:
    ctx = info.context
    return ctx.setdefault(_CTX, {}) if isinstance(ctx, dict) else None


def _ref(kind: str, wildcard: str | None = None) -> Any:
    """A validator for a reference to a declared ``kind`` (stage, team, list), or the ``wildcard``."""

    def check(value: str, info: ValidationInfo) -> str:
        if value == wildcard:
            return value
        scratch = _scratch(info)
        known = None if scratch is None else scratch.get(kind)
        if known is not None and value not in known:
            listed = ", ".join(sorted(known)) or "none declared"
            raise ValueError(f"unknown {kind} {value!r} ({kind}s: {listed})")
        return value

    return AfterValidator(check)


def _unique(kind: str) -> Any:
    """A validator for a declared id: the second declaration of one id is reported where it is written."""

    def check(value: str, info: ValidationInfo) -> str:
        scratch = _scratch(info)
        if scratch is not None:
            seen = scratch.setdefault(f"seen {kind}", set())
            if value in seen:
                raise ValueError(f"duplicate {kind} id {value!r}")
            seen.add(value)
        return value

    return AfterValidator(check)


def _template(text: str) -> str:
    import jinja2.sandbox  # only a model with templates needs it: `leadscore validate` starts faster

    try:
        jinja2.sandbox.SandboxedEnvironment().parse(text)
    except jinja2.TemplateSyntaxError as exc:
        raise ValueError(f"template syntax: {exc.message} (template line {exc.lineno})") from None
    return text


StageRef = Annotated[str, _ref("stage")]
# a stage leads are assigned in (``assignment.stage`` or ``assignment.stages``)
HandoffRef = Annotated[str, _ref("stage"), _ref("assignment stage")]
FromRef = Annotated[str, _ref("stage", wildcard="*")]
TeamRef = Annotated[str, _ref("team")]
ListRef = Annotated[str, _ref("list")]
Template = Annotated[str, Field(min_length=1, max_length=20_000), AfterValidator(_template)]


def _attribute_condition(cond: Condition | None) -> Condition | None:
    for compare in walk(cond) if cond is not None else []:
        if compare.subject != "attribute":
            raise ValueError(f"lifecycle conditions compare 'attribute', not {compare.subject!r}")
    return cond


AttributeCondition = Annotated[Condition | None, AfterValidator(_attribute_condition)]


class Stage(Frozen):
    id: Annotated[str, Field(pattern=RULE_ID), _unique("stage")]
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=2000)


# a named score (store/score_names.py): a lowercase letter, then lowercase letters, digits or _
SCORE_NAME = r"^[a-z][a-z0-9_]{0,62}$"


class Gate(Frozen):
    """What must hold for an automatic transition; every key given must hold (an empty gate always does).

    ``score`` names the score whose score, grade, level, band and ledger lines the gate tests (one per
    product line or persona, e.g. ``analytics``; default: the primary score); a lead without that score
    never passes the gate."""

    score: str | None = Field(default=None, pattern=SCORE_NAME, description="the named score tested")
    score_at_least: float | None = Field(default=None, ge=0, le=100)
    score_below: float | None = Field(default=None, ge=0, le=100, description="lowered by hysteresis")
    grade_at_least: Literal["A", "B", "C", "D"] | None = None
    level_at_least: int | None = Field(default=None, ge=1, le=4, description="1 is the most engaged")
    band_in: tuple[Literal["hot", "warm", "cold"], ...] | None = Field(default=None, min_length=1)
    attributes: AttributeCondition = None
    inactive_for: Duration | None = Field(default=None, description="no events and no move for this long")
    new_activity: bool = Field(default=False, description="an event after the lead entered its stage")
    rules_met: tuple[Annotated[str, Field(pattern=RULE_ID)], ...] | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="rule ids whose ledger lines give the lead points",
    )

    def is_empty(self) -> bool:
        return self == Gate()


class Transition(Frozen):
    model_config = Frozen.model_config | {"populate_by_name": True}
    id: Annotated[str, Field(pattern=RULE_ID), _unique("transition")]
    from_: tuple[FromRef, ...] = Field(alias="from", min_length=1, description="stage ids, or '*' for any")
    to: StageRef
    trigger: Literal["score", "accepted", "rejected", "opportunity", "won", "lost", "disqualified"] = "score"
    when: Gate = Gate()

    @model_validator(mode="after")
    def _sensible(self) -> Transition:
        if self.trigger == "score" and self.when.is_empty():
            raise ValueError(f"transition {self.id}: an automatic (trigger: score) transition needs 'when'")
        if self.trigger != "score" and self.when.inactive_for is not None:
            raise ValueError(f"transition {self.id}: inactive_for only applies to trigger: score")
        return self


class Webhook(Frozen):
    """A JSON POST, signed; ``slack`` sends Slack-compatible incoming-webhook JSON (``{"text": ...}``)."""

    url: str | None = Field(default=None, pattern=r"^https?://", max_length=2000)
    url_env: str | None = Field(default=None, pattern=r"^[A-Z_][A-Z0-9_]{0,99}$")
    format: Literal["json", "slack"] = "json"
    text: Template | None = None

    @model_validator(mode="after")
    def _one_target(self) -> Webhook:
        if (self.url is None) == (self.url_env is None):
            raise ValueError("a webhook has exactly one of 'url' or 'url_env'")
        return self


class Mail(Frozen):
    """A Jinja2 mail to the lead, the assigned seller, the team's manager, or a fixed address."""

    to: str = Field(pattern=r"^(lead|seller|manager|[^@\s]+@[^@\s]+)$")
    subject: Template
    body: Template


class ActionTrigger(Frozen):
    """When an action runs: exactly one of these keys (the key is ``trigger``: YAML reads ``on`` as true)."""

    enter: StageRef | None = None
    leave: StageRef | None = None
    crossing: tuple[Literal["band", "grade", "level"], str] | None = Field(
        default=None, description="[kind, to value], e.g. [band, hot]"
    )
    assigned: Literal[True] | None = None
    sla_breach: Literal[True] | None = None
    stage: HandoffRef | None = Field(
        default=None, description="with assigned or sla_breach: only assignments in this assignment stage"
    )
    score: str | None = Field(
        default=None,
        pattern=SCORE_NAME,
        description="with crossing: the named score crossing (default: primary)",
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> ActionTrigger:
        dumped = self.model_dump(exclude_none=True).items()
        given = [k for k, v in dumped if v is not None and k not in ("score", "stage")]
        if len(given) != 1:
            raise ValueError("'trigger' has exactly one of enter, leave, crossing, assigned, sla_breach")
        if self.score is not None and self.crossing is None:
            raise ValueError("'trigger' names a score only with crossing")
        if self.stage is not None and not (self.assigned or self.sla_breach):
            raise ValueError("'trigger' names a stage only with assigned or sla_breach")
        return self


class Action(Frozen):
    id: Annotated[str, Field(pattern=RULE_ID), _unique("action")]
    trigger: ActionTrigger
    webhook: Webhook | None = None
    mail: Mail | None = None
    quiet_for: Duration | None = Field(
        default=None,
        description="after running for a lead, not again for that lead within this long (a lead bouncing "
        "around a band's line alerts once)",
    )

    @model_validator(mode="after")
    def _one_channel(self) -> Action:
        if (self.webhook is None) == (self.mail is None):
            raise ValueError(f"action {self.id}: exactly one of 'webhook' or 'mail'")
        return self


class Person(Frozen):
    name: str = Field(min_length=1, max_length=200)
    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+$", max_length=320)


class Seller(Person):
    id: Annotated[str, Field(pattern=RULE_ID), _unique("seller")]


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CLOCK = r"^([01][0-9]|2[0-3]):[0-5][0-9]$|^24:00$"


def _time_zone(name: str) -> str:
    import zoneinfo  # only a model with business hours reads the time zone database

    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (an IANA name such as 'Europe/Stockholm')") from None
    return name


class BusinessHours(Frozen):
    """When an SLA's clock runs: ``start`` to ``end`` (local ``HH:MM``; ``end`` may be ``24:00``) on
    ``days``, in ``timezone`` (an IANA name). Holidays are not known."""

    timezone: Annotated[str, Field(min_length=1, max_length=100), AfterValidator(_time_zone)]
    days: tuple[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"], ...] = Field(
        default=("mon", "tue", "wed", "thu", "fri"), min_length=1, max_length=7
    )
    start: str = Field(default="09:00", pattern=_CLOCK)
    end: str = Field(default="17:00", pattern=_CLOCK)

    @model_validator(mode="after")
    def _ordered(self) -> BusinessHours:
        if self.minutes(self.end) <= self.minutes(self.start):
            raise ValueError(f"business hours end ({self.end}) before they start ({self.start})")
        if len(set(self.days)) != len(self.days):
            raise ValueError("business hours name a day twice")
        return self

    @staticmethod
    def minutes(clock: str) -> int:
        """Minutes after midnight of a ``HH:MM``."""
        hours, minutes = clock.split(":")
        return int(hours) * 60 + int(minutes)


class Team(Frozen):
    id: Annotated[str, Field(pattern=RULE_ID), _unique("team")]
    name: str = Field(min_length=1, max_length=200)
    manager: Person | None = None
    sellers: tuple[Seller, ...] = Field(min_length=1)
    business_hours: BusinessHours | None = Field(
        default=None, description="this team's SLA clock (instead of the assignment's business_hours)"
    )


class Territory(Frozen):
    """The team of the leads that match ``when`` (any lead when omitted) and, if ``stages`` is given,
    entered one of those assignment stages (each team's MQL stage: its score's)."""

    team: TeamRef
    when: AttributeCondition = None
    stages: tuple[HandoffRef, ...] | None = Field(
        default=None, max_length=100, description="only leads entering one of these assignment stages"
    )

    def applies(self, stage: str) -> bool:
        return self.stages is None or stage in self.stages


class Assignment(Frozen):
    """Who gets a lead entering one of the assignment stages (``stage``, or several as ``stages``: one per
    team or score): its account's owner in a team the stage routes to (``teams_for``), else the first
    territory that applies, else round-robin in the default team. The SLA is ``sla``, or the stage's own in
    ``sla_by_stage``, counted in the team's ``business_hours``, else the assignment's, else every hour
    (``lifecycle.sla``)."""

    stage: StageRef | None = None
    stages: tuple[StageRef, ...] | None = Field(default=None, min_length=1, max_length=100)
    territories: tuple[Territory, ...] = ()
    default_team: TeamRef
    sticky_accounts: bool = True
    sla: Duration | None = Field(default=None, description="untouched this long after assignment → escalate")
    sla_by_stage: dict[HandoffRef, Duration] = Field(
        default_factory=dict, max_length=100, description="an assignment stage's own SLA (instead of sla)"
    )
    business_hours: BusinessHours | None = Field(
        default=None,
        description="the SLA counts only these hours (a team may have its own); default: every hour",
    )

    @model_validator(mode="after")
    def _one_way(self) -> Assignment:
        if (self.stage is None) == (self.stages is None):
            raise ValueError("'assignment' has exactly one of 'stage' or 'stages'")
        ids = self.stage_ids
        if any(t.stages == () for t in self.territories):
            raise ValueError("a territory's 'stages' names one assignment stage or more")
        if len(set(ids)) != len(ids):
            raise ValueError("'assignment' names a stage twice in 'stages'")
        named = [s for t in self.territories for s in t.stages or ()] + list(self.sla_by_stage)
        problems = [s for s in dict.fromkeys(named) if s not in ids]
        if problems:
            raise ValueError(
                f"{', '.join(map(repr, problems))} is not an assignment stage (assignment stages: {', '.join(ids)})"
            )
        return self

    @property
    def stage_ids(self) -> tuple[str, ...]:
        """The stages leads are assigned in, in the order written."""
        return self.stages if self.stages is not None else (self.stage,) if self.stage is not None else ()

    def sla_of(self, stage: str) -> str | None:
        """The SLA of an assignment in ``stage`` (a duration), or None: no SLA."""
        return self.sla_by_stage.get(stage, self.sla)

    def teams_for(self, stage: str) -> tuple[str, ...]:
        """The teams a lead entering ``stage`` can be routed to, in routing order: the teams of the
        territories that apply to the stage, up to the first that matches every lead, then the default
        team unless such a territory hides it. An account's owner in one of these teams keeps the lead
        (``sticky_accounts``): the analytics team's owner of an account is not the core team's."""
        out: list[str] = []
        for territory in self.territories:
            if not territory.applies(stage):
                continue
            out.append(territory.team)
            if territory.when is None:
                return tuple(dict.fromkeys(out))
        return tuple(dict.fromkeys([*out, self.default_team]))


class Segment(Frozen):
    """A named set of leads: those for which every key given holds.

    ``score`` names the score whose band, grade and score the segment tests (as a gate's ``score``;
    default: the primary score); a lead without that score is a member of no segment that names it."""

    id: Annotated[str, Field(pattern=RULE_ID), _unique("segment")]
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=2000)
    score: str | None = Field(default=None, pattern=SCORE_NAME, description="the named score tested")
    stages: tuple[StageRef, ...] | None = Field(default=None, min_length=1)
    bands: tuple[Literal["hot", "warm", "cold"], ...] | None = Field(default=None, min_length=1)
    grades: tuple[Literal["A", "B", "C", "D"], ...] | None = Field(default=None, min_length=1)
    score_at_least: float | None = Field(default=None, ge=0, le=100)
    attributes: AttributeCondition = None
    webhook: Webhook | None = None


class Mqa(Frozen):
    score_at_least: float = Field(default=60, ge=0, le=100)
    engaged_contacts_at_least: int = Field(default=2, ge=1)


class Pqa(Frozen):
    """A product-qualified account: an MQA whose contacts use the product (each named rule's ledger line
    gives points for at least one of its contacts, scored as of the same time)."""

    rules_met: tuple[Annotated[str, Field(pattern=RULE_ID)], ...] = Field(
        min_length=1, max_length=100, description="rule ids; each must give points to one contact or more"
    )


class AccountWeights(Frozen):
    fit: float = Field(default=0.4, ge=0)
    engagement: float = Field(default=0.6, ge=0)

    @model_validator(mode="after")
    def _positive(self) -> AccountWeights:
        if self.fit + self.engagement <= 0:
            raise ValueError("weights must not both be 0")
        return self


class Accounts(Frozen):
    """Account score = weighted mean of account fit and buying-committee engagement; MQA above a line."""

    committee_size: int = Field(default=3, ge=1, le=50)
    engaged_at_least: float = Field(
        default=35, ge=0, le=100, description="engagement score of an engaged contact"
    )
    weights: AccountWeights = AccountWeights()
    mqa: Mqa = Mqa()
    pqa: Pqa | None = None
    target_list: ListRef | None = None


class Consent(Frozen):
    """Mail to a lead is not sent when it unsubscribed or (if ``consent_attribute`` is set) did not opt in."""

    unsubscribed_attribute: str = "unsubscribed"
    consent_attribute: str | None = None
    unsubscribe_event: str | None = "Unsubscribed"


class Lifecycle(Frozen):
    initial: StageRef
    hysteresis: float = Field(default=0, ge=0, le=50, description="score points; lowers every score_below")
    stages: tuple[Stage, ...] = Field(min_length=1)
    transitions: tuple[Transition, ...] = ()
    funnel: tuple[StageRef, ...] = ()
    nurture: tuple[StageRef, ...] = ()
    rejection_reasons: tuple[Annotated[str, Field(pattern=RULE_ID)], ...] = DEFAULT_REASONS
    teams: tuple[Team, ...] = ()
    assignment: Assignment | None = None
    actions: tuple[Action, ...] = ()
    segments: tuple[Segment, ...] = ()
    accounts: Accounts | None = None
    consent: Consent = Consent()

    @model_validator(mode="before")
    @classmethod
    def _declare(cls, raw: Any, info: ValidationInfo) -> Any:
        scratch = _scratch(info)
        if scratch is not None and isinstance(raw, dict):
            for kind, key in (("stage", "stages"), ("team", "teams")):
                items = raw.get(key)
                if isinstance(items, list):
                    scratch[kind] = {str(i["id"]) for i in items if isinstance(i, dict) and "id" in i}
                else:
                    scratch[kind] = set()
            rules = raw.get("assignment")
            named = rules.get("stages", rules.get("stage")) if isinstance(rules, dict) else None
            named = [named] if isinstance(named, str) else named if isinstance(named, list) else []
            scratch["assignment stage"] = {str(n) for n in named}
        return raw

    @model_validator(mode="after")
    def _references(self) -> Lifecycle:
        stages = {s.id for s in self.stages}
        teams = {t.id for t in self.teams}
        refs = [self.initial, *self.funnel, *self.nurture, *(t.to for t in self.transitions)]
        refs += [f for t in self.transitions for f in t.from_ if f != "*"]
        refs += [s for seg in self.segments for s in seg.stages or ()]
        refs += [x for a in self.actions for x in (a.trigger.enter, a.trigger.leave) if x is not None]
        if self.assignment is not None:
            refs += self.assignment.stage_ids
        problems = [f"unknown stage {r!r}" for r in dict.fromkeys(refs) if r not in stages]
        handoff = self.assignment.stage_ids if self.assignment is not None else ()
        problems += [
            f"action {a.id}: {a.trigger.stage!r} is not an assignment stage"
            for a in self.actions
            if a.trigger.stage is not None and a.trigger.stage not in handoff
        ]
        team_refs = [] if self.assignment is None else [self.assignment.default_team]
        team_refs += [t.team for t in self.assignment.territories] if self.assignment else []
        problems += [f"unknown team {r!r}" for r in dict.fromkeys(team_refs) if r not in teams]
        for kind, ids in (
            ("stage", [s.id for s in self.stages]),
            ("transition", [t.id for t in self.transitions]),
            ("action", [a.id for a in self.actions]),
            ("team", [t.id for t in self.teams]),
            ("seller", [s.id for t in self.teams for s in t.sellers]),
            ("segment", [s.id for s in self.segments]),
        ):
            problems += [f"duplicate {kind} id {i!r}" for i in dict.fromkeys(ids) if ids.count(i) > 1]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def stage(self, stage_id: str) -> Stage:
        return next(s for s in self.stages if s.id == stage_id)

    def team(self, team_id: str) -> Team:
        return next(t for t in self.teams if t.id == team_id)

    def seller(self, seller_id: str) -> tuple[Team, Seller] | None:
        for team in self.teams:
            for seller in team.sellers:
                if seller.id == seller_id:
                    return team, seller
        return None

    def funnel_stages(self) -> tuple[str, ...]:
        return self.funnel or tuple(s.id for s in self.stages)


def _with_lists(value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo) -> Any:
    """Validate the section knowing the model's list names (validated before it), for ``target_list``."""
    lists = info.data.get("lists") if isinstance(info.data, dict) else None
    scratch = _scratch(info)
    if scratch is not None:
        scratch["list"] = set(lists or ())
    section = handler(value)
    if scratch is None and isinstance(section, Lifecycle) and section.accounts is not None:
        target = section.accounts.target_list
        if target is not None and target not in (lists or {}):
            raise ValueError(f"unknown list {target!r}")
    return section


LifecycleSection = Annotated[Lifecycle | None, WrapValidator(_with_lists)]

__all__ = [
    "BANDS",
    "GRADES",
    "TRIGGERS",
    "Accounts",
    "Action",
    "ActionTrigger",
    "Assignment",
    "Consent",
    "Gate",
    "Lifecycle",
    "LifecycleSection",
    "Mail",
    "Segment",
    "Seller",
    "Stage",
    "Team",
    "Territory",
    "Transition",
    "Webhook",
]
