"""What a learned feature reads: a lead or account attribute, or a count or recency of matching events.

A feature's source decides which rules it becomes in the model YAML (``to_model``): attribute bins become
fit rules; event counts become ``threshold`` rules and recencies ``once`` rules, so a learned model is the
same model language as a hand-written one and is scored by the same compiled query.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["numeric", "categorical"]
# Form defaults and export placeholders that mean "not filled in"; they share the missing bin.
PLACEHOLDERS: tuple[str, ...] = ("select", "n/a", "null", "-")


@dataclass(frozen=True)
class Attribute:
    """A lead attribute (``job_title``) or, with ``account.``, an account attribute."""

    field: str


@dataclass(frozen=True)
class EventCount:
    """How many matching events happened within ``window`` before the as-of time."""

    event: dict[str, str]  # {type: ..., name: ...} as in a rule's ``event``
    window: str  # a duration such as "30d"
    where: dict[str, Any] | None = None
    distinct: str | None = None  # "day" or "person": count distinct days (people) instead of events
    scope: str | None = None  # "account": the events of every lead of the lead's account
    exclude: dict[str, Any] | None = None  # as a rule's ``exclude`` (machine opens, bursts)
    label: str = ""  # what is counted, for rule names ("/pricing pages")

    def rule_name(self, at_least: int) -> str:
        """The name of the threshold rule ``count >= at_least``, as a marketer reads it."""
        days = self.window.removesuffix("d")
        span = f"{days} days" if days != self.window else self.window
        if self.distinct == "person":
            return f"{at_least}+ people of the account on {self.label} in {span}"
        if self.distinct == "day":
            return f"{self.label} on {at_least}+ separate days in {span}"
        return f"{self.label}: {at_least}+ in {span}"


@dataclass(frozen=True)
class EventRecency:
    """Whole days since the most recent matching event (missing: never)."""

    event: dict[str, str]
    where: dict[str, Any] | None = None
    exclude: dict[str, Any] | None = None
    label: str = ""  # what is looked for, for rule names ("/pricing pages")


Source = Attribute | EventCount | EventRecency


@dataclass(frozen=True)
class Feature:
    name: str
    kind: Kind
    source: Source = field(default_factory=lambda: Attribute("x"))

    @property
    def section(self) -> Literal["fit", "engagement"]:
        return "fit" if isinstance(self.source, Attribute) else "engagement"


def attribute_features(names: list[str], kinds: dict[str, Kind]) -> tuple[Feature, ...]:
    return tuple(Feature(n, kinds[n], Attribute(n)) for n in names)


def number(value: Any) -> float:
    """The value as a number if it is one (JSON number semantics: booleans and texts are not), else NaN."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return math.nan
    return float(value)


class Other:
    """A value no category condition can name (a nested object or list): it falls in the 'other' bin."""

    def __repr__(self) -> str:
        return "OTHER"


OTHER = Other()
Category = str | float | bool


def category(value: Any, placeholders: tuple[str, ...] = PLACEHOLDERS) -> Category | Other | None:
    """The key a categorical value is compared by: texts ignore case, placeholders are missing (None)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return None if math.isnan(value) else float(value)
    if isinstance(value, str):
        key = value.lower()
        if not key:  # "" is present but no `in` list can name it
            return OTHER
        return None if key in placeholders else key
    return OTHER


_SLUG = re.compile(r"[^a-z0-9]+")


def slug(text: str, limit: int = 48) -> str:
    """A rule-id-safe stem: lower case letters, digits and ``_``, starting with a letter."""
    out = _SLUG.sub("_", text.lower()).strip("_")[:limit].strip("_")
    return out if out and out[0].isalpha() else f"f_{out}"[:limit]
