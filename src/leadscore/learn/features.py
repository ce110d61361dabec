"""What a learned feature reads: a lead or account attribute, or a count or recency of matching events.

A feature's source decides which rules it becomes in the model YAML (``to_model``): attribute bins become
fit rules; event counts become ``threshold`` rules, recencies ``once`` rules and ratios (the last window
against the one before) ``ratio`` rules, so a learned model is the same model language as a hand-written
one and is scored by the same compiled query.
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
    """A lead attribute (``job_title``) or, with ``account.``, an account attribute; with ``fallback``,
    the account's value where it has one, else the lead's (``account.employees`` else ``employees``: the
    lead's and the account's copy of one quantity are one feature)."""

    field: str
    fallback: str | None = None

    def value(self, row: dict[str, Any]) -> Any:
        own = row.get(self.field)
        return row.get(self.fallback) if own is None and self.fallback is not None else own

    @property
    def monotone(self) -> bool:
        """Bins whose conversion rate only rises or only falls with the value: a firmographic quantity
        of the account (employees, revenue) says more the larger (or the smaller) it is, never in a
        zig-zag of campaign-sized bins."""
        return self.field.startswith("account.")


# Words of a free-text title that say the same thing, one feature each: "VP of Marketing" mentions
# seniority VP and function marketing. Other frequent words are features of their own.
TITLE_GROUPS: dict[str, tuple[str, ...]] = {
    "C-level / Founder": ("chief", "ceo", "cto", "cfo", "cmo", "coo", "cio", "founder", "owner", "president"),
    "VP / Head / Director": ("vp", "vice", "head", "director"),
    "Manager / Lead": ("manager", "lead", "supervisor"),
    "Student / Intern": ("student", "intern", "trainee"),
}
STOP_WORDS = frozenset({"of", "and", "the", "for", "in", "at", "to", "a", "an", "on", "with"})
WORD = re.compile(r"[a-z]{2,}")


@dataclass(frozen=True)
class TitleWords:
    """Whether a free-text attribute (a job title) mentions any of ``words``, as whole words ignoring
    case: True or False for a present text, missing for a missing one. The fit rule is the same test as
    the model language's ``regex`` operator reads it (the pattern in ``pattern``)."""

    field: str
    words: tuple[str, ...]
    label: str  # "VP / Head / Director"
    placeholders: tuple[str, ...] = PLACEHOLDERS

    @property
    def pattern(self) -> str:
        return f"(^|[^a-z0-9])({'|'.join(self.words)})([^a-z0-9]|$)"

    def value(self, raw: Any) -> bool | None:
        key = category(raw, self.placeholders)
        if key is None:
            return None
        return isinstance(raw, str) and re.search(self.pattern, raw.lower()) is not None


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
        if self.distinct == "day" and self.scope == "account":
            return f"the account's people on {self.label} on {at_least}+ separate days in {span}"
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


# The growth factors a ratio feature is measured on: powers of two, so ``recent >= factor * before`` is
# exact in floating point, and a ladder as coarse as a marketer reads it ("half", "as many", "twice").
RATIO_LADDER: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0)


@dataclass(frozen=True)
class EventRatio:
    """Matching events in the last ``within`` against the ``within`` before it (velocity, or a drop).

    The value is the largest factor of ``RATIO_LADDER`` with ``recent >= factor x before`` and at least
    one recent event (the ratio rule's growth test), 0 when none holds (a drop, or nothing recent), and
    missing when neither window has an event. So ``value >= factor`` is exactly the rule
    ``kind: ratio, at_least: factor`` for every factor of the ladder, and "not missing" is a threshold
    rule of at least 1 event within ``2 x within``.
    """

    event: dict[str, str]
    within: str  # the length of each window, e.g. "14d"
    where: dict[str, Any] | None = None
    exclude: dict[str, Any] | None = None
    label: str = ""

    @staticmethod
    def value(recent: int, before: int) -> float | None:
        if recent == 0 and before == 0:
            return None
        met = [f for f in RATIO_LADDER if recent > 0 and recent >= f * before]
        return max(met) if met else 0.0

    @property
    def both(self) -> str:
        """Both windows together, as a duration."""
        return f"{2 * int(self.within.removesuffix('d'))}d"

    def any_name(self) -> str:
        return f"{self.label} in the last {self.both.removesuffix('d')} days"

    def rule_name(self, factor: float) -> str:
        """The name of the rule ``recent >= factor x before``, as a marketer reads it."""
        days = self.within.removesuffix("d")
        times = {0.25: "a quarter as many", 0.5: "half as many", 1.0: "as many", 2.0: "twice as many"}
        said = times.get(factor, f"{factor:g}x as many")
        return f"{self.label}: {said} in the last {days} days as in the {days} before"


Source = Attribute | TitleWords | EventCount | EventRecency | EventRatio


@dataclass(frozen=True)
class Feature:
    name: str
    kind: Kind
    source: Source = field(default_factory=lambda: Attribute("x"))

    @property
    def section(self) -> Literal["fit", "engagement"]:
        return "fit" if isinstance(self.source, Attribute | TitleWords) else "engagement"


FAMILIES = ("attributes", "counts", "distinct days", "recency", "committee", "ratios")


def family(feature: Feature) -> str:
    """The family of features a feature belongs to (the learner chooses which families to use)."""
    src = feature.source
    if isinstance(src, Attribute | TitleWords):
        return "attributes"
    if isinstance(src, EventRecency):
        return "recency"
    if isinstance(src, EventRatio):
        return "ratios"
    if src.scope == "account":
        return "committee"
    return "distinct days" if src.distinct == "day" else "counts"


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
        return (
            None if math.isnan(value) else float(value) + 0.0
        )  # -0.0 is 0.0: one key, whichever comes first
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
