"""Rule kinds: one fit kind, five engagement kinds (each, once, threshold, recency, ratio), and groups.

The exact semantics of every field is in docs/model-language.md; the compiler in
``leadscore.compile`` is the only implementation of it.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator, model_validator

from leadscore.model.conditions import Condition, FieldName
from leadscore.model.durations import Duration, duration_seconds
from leadscore.model.names import FIELD_NAME_WORDS, is_field_name
from leadscore.model.text_case import normalise_text

RULE_ID = r"^[a-z][a-z0-9_]{0,62}$"
EVENT_TYPES = ("track", "page", "screen", "identify", "group", "alias")
MAX_POINTS = 1_000_000


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _Named(Frozen):
    id: str = Field(pattern=RULE_ID, description="stable identifier, used in ledgers and history")
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=2000)


class FitRule(_Named):
    """Points when a lead's attributes (or its account's) satisfy ``when``; counted once."""

    when: Condition
    points: float = Field(ge=-MAX_POINTS, le=MAX_POINTS)

    @field_validator("points")
    @classmethod
    def _non_zero(cls, v: float) -> float:
        if v == 0:
            raise ValueError("points must not be 0 (a rule worth nothing explains nothing)")
        return v


class EventMatch(Frozen):
    """Which events a rule looks at: a Segment message type and, optionally, the event or page name."""

    type: Literal["track", "page", "screen", "identify", "group", "alias"]
    name: str | None = Field(default=None, min_length=1, max_length=500)

    @field_validator("name", mode="before")
    @classmethod
    def _normal_form(cls, v: Any) -> Any:
        # as an event's name is kept (ingest.segment), before its length is checked: NFC lengthens a few
        # letters, and a name over the column's 500 would never match a stored one
        return normalise_text(v) if isinstance(v, str) else v


class Machine(Frozen):
    """An event less than ``within`` after the lead's latest ``after`` event with the same ``same`` property
    (an e-mail open or click right after its send) is a machine's, not a person's."""

    after: str = Field(min_length=1, max_length=500, description="the name of the send (track) event")
    same: FieldName = Field(description="the property both events share, e.g. email_id")
    within: Duration


class Burst(Frozen):
    """Matching events of which more than ``more_than`` fall within one span of ``within`` (a bot's burst)."""

    more_than: int = Field(ge=1, le=1_000_000)
    within: Duration


class Exclude(Frozen):
    """Matching events a rule does not count: machine opens and clicks, bursts."""

    machine: Machine | None = None
    burst: Burst | None = None

    @model_validator(mode="after")
    def _something(self) -> Exclude:
        if self.machine is None and self.burst is None:
            raise ValueError("exclude needs machine or burst")
        return self


class _EventRule(_Named):
    event: EventMatch
    where: Condition | None = None
    exclude: Exclude | None = Field(default=None, description="matching events not counted")
    points: float = Field(ge=-MAX_POINTS, le=MAX_POINTS)
    window: Duration | None = Field(
        default=None, description="only events within this long before as-of count"
    )
    group: str | None = Field(default=None, pattern=RULE_ID)

    @field_validator("points")
    @classmethod
    def _non_zero(cls, v: float) -> float:
        if v == 0:
            raise ValueError("points must not be 0 (a rule worth nothing explains nothing)")
        return v


class EachRule(_EventRule):
    """Points per matching event, decayed by age, bounded by ``cap``."""

    kind: Literal["each"] = "each"
    cap: float | None = Field(default=None, gt=0, description="bound on the rule's total (its magnitude)")
    half_life: Duration | Literal["none"] | None = Field(
        default=None, description="decay half-life; null takes the model default, 'none' turns decay off"
    )


class OnceRule(_EventRule):
    """Points once if any event matches, decayed by the age of the most recent match."""

    kind: Literal["once"]
    half_life: Duration | Literal["none"] | None = None


DISTINCT_KEYWORDS = ("day", "session", "person")


class DistinctProperty(Frozen):
    """Count distinct values of an event property (``{property: feature}``)."""

    property: FieldName = Field(description="the property whose values are counted")


class Count(Frozen):
    """What a count rule counts: matching events (the default) or distinct days, sessions, people or
    values of a property among them."""

    distinct: Literal["day", "session", "person"] | DistinctProperty

    @field_validator("distinct", mode="before")
    @classmethod
    def _one_of(cls, v: Any) -> Any:
        if v in DISTINCT_KEYWORDS or isinstance(v, DistinctProperty):
            return v
        if isinstance(v, dict) and set(v) == {"property"}:
            if not is_field_name(v["property"]):
                raise ValueError(f"property {v['property']!r} is not a field name ({FIELD_NAME_WORDS})")
            return v
        raise ValueError(f"distinct takes day, session, person or {{property: NAME}}, not {v!r}")


class _CountRule(_EventRule):
    """A rule that counts matching events: ``count`` says what is counted, ``scope`` whose events."""

    count: Count | None = Field(default=None, description="distinct day | session | person | {property: X}")
    scope: Literal["lead", "account"] = Field(
        default="lead", description="account: the events of every lead of the lead's account"
    )

    @model_validator(mode="after")
    def _person_needs_account(self) -> _CountRule:
        if self.count is not None and self.count.distinct == "person" and self.scope != "account":
            raise ValueError("count: {distinct: person} counts the people of an account: add scope: account")
        return self


class Share(Frozen):
    """The count as a share of a number the lead or its account holds (``account.seats``)."""

    of: FieldName = Field(description="a numeric attribute, e.g. account.seats")
    at_least: float = Field(gt=0, le=1_000_000)


class ThresholdRule(_CountRule):
    """Points once while at least ``at_least`` matching events (or distinct days, sessions, people,
    values) fall within ``within`` of as-of, or at least ``share.at_least`` x the attribute
    ``share.of`` (no decay)."""

    kind: Literal["threshold"]
    at_least: int | None = Field(default=None, ge=1, le=1_000_000)
    share: Share | None = Field(default=None, description="instead of at_least: a share of an attribute")
    within: Duration

    @model_validator(mode="after")
    def _one_bound(self) -> ThresholdRule:
        if (self.at_least is None) == (self.share is None):
            raise ValueError("a threshold rule needs exactly one of at_least or share")
        return self


class RatioRule(_CountRule):
    """Points while the count in the last ``within`` compared with the count in the ``within`` before it
    is at least ``at_least`` (growth) or at most ``at_most`` (a drop); no decay."""

    kind: Literal["ratio"]
    within: Duration
    at_least: float | None = Field(default=None, gt=0, le=1_000_000)
    at_most: float | None = Field(default=None, ge=0, le=1_000_000)

    @model_validator(mode="after")
    def _one_bound(self) -> RatioRule:
        if (self.at_least is None) == (self.at_most is None):
            raise ValueError("a ratio rule needs exactly one of at_least (growth) or at_most (a drop)")
        return self


MAX_STEPS = 20


class RecencyStep(Frozen):
    """``points`` when the newest matching event is less than ``within`` old."""

    within: Duration
    points: float = Field(ge=-MAX_POINTS, le=MAX_POINTS)

    @field_validator("points")
    @classmethod
    def _non_zero(cls, v: float) -> float:
        if v == 0:
            raise ValueError("points must not be 0 (a step worth nothing: end the steps before it)")
        return v


class RecencyRule(_EventRule):
    """Points by the age of the newest matching event: those of the first step it is within (no decay).

    ``points`` is derived (the first step's), so every rule has one; write only ``steps``.
    """

    kind: Literal["recency"]
    points: float = Field(default=0.0, exclude=True)
    steps: tuple[RecencyStep, ...] = Field(max_length=MAX_STEPS)

    @model_validator(mode="before")
    @classmethod
    def _derived_points(cls, raw: Any) -> Any:
        if isinstance(raw, dict) and "points" in raw:
            raise ValueError("a recency rule gives the points of its steps; remove 'points'")
        if isinstance(raw, dict) and isinstance(raw.get("steps"), list | tuple) and raw["steps"]:
            first = raw["steps"][0]
            points = first.get("points") if isinstance(first, dict) else getattr(first, "points", None)
            if isinstance(points, int | float) and not isinstance(points, bool) and points:
                return {**raw, "points": points}
        return raw

    @model_validator(mode="after")
    def _ascending(self) -> RecencyRule:
        if not self.steps:
            raise ValueError("a recency rule needs at least one of its steps")
        spans = [duration_seconds(s.within) for s in self.steps]
        if any(b <= a for a, b in pairwise(spans)):
            raise ValueError("recency steps must be in increasing order of within")
        return self


ENGAGEMENT_KINDS = ("each", "once", "threshold", "recency", "ratio")


def _rule_kind(raw: Any) -> str:
    """The rule's kind (``each`` when unset); an unknown one is returned as written, so the error names
    it and the kinds there are instead of checking the rule against ``each``."""
    if isinstance(raw, dict):
        return str(raw.get("kind", "each"))
    return str(getattr(raw, "kind", "each"))


EventRule = Annotated[
    Annotated[EachRule, Tag("each")]
    | Annotated[OnceRule, Tag("once")]
    | Annotated[ThresholdRule, Tag("threshold")]
    | Annotated[RecencyRule, Tag("recency")]
    | Annotated[RatioRule, Tag("ratio")],
    Discriminator(_rule_kind),
]
CountRule = ThresholdRule | RatioRule


class Group(_Named):
    """Engagement rules sharing a cap, e.g. all e-mail engagement together at most 15."""

    cap: float = Field(gt=0)
