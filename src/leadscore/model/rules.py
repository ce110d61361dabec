"""Rule kinds: one fit kind, three engagement kinds (each, once, threshold), and groups.

The exact semantics of every field is in docs/model-language.md; the compiler in
``leadscore.compile`` is the only implementation of it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator

from leadscore.model.conditions import Condition
from leadscore.model.durations import Duration

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


class _EventRule(_Named):
    event: EventMatch
    where: Condition | None = None
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


class ThresholdRule(_EventRule):
    """Points once while at least ``at_least`` matching events fall within ``within`` of as-of (no decay)."""

    kind: Literal["threshold"]
    at_least: int = Field(ge=1, le=1_000_000)
    within: Duration


def _rule_kind(raw: Any) -> str:
    if isinstance(raw, dict):
        kind = raw.get("kind", "each")
        return kind if kind in ("each", "once", "threshold") else "each"
    return str(getattr(raw, "kind", "each"))


EventRule = Annotated[
    Annotated[EachRule, Tag("each")]
    | Annotated[OnceRule, Tag("once")]
    | Annotated[ThresholdRule, Tag("threshold")],
    Discriminator(_rule_kind),
]


class Group(_Named):
    """Engagement rules sharing a cap, e.g. all e-mail engagement together at most 15."""

    cap: float = Field(gt=0)
