"""Conditions: comparisons on one field, combined with all / any / not.

Surface syntax (YAML)::

    {attribute: job_title, regex: "market|growth"}        # fit rules read lead/account attributes
    {property: path, prefix: /pricing}                    # event rules read event fields and properties
    {all: [..]}  {any: [..]}  {not: {..}}

Each comparison has exactly one subject key and exactly one operator key. Text comparisons are
case-insensitive; numeric comparisons only match numeric values.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Tag,
    ValidationInfo,
    model_serializer,
    model_validator,
)

from leadscore.model import regex_search
from leadscore.model.names import FIELD_NAME_WORDS, is_field_name
from leadscore.model.text_case import normalise_text

SUBJECTS = ("attribute", "property")
TEXT_OPS = ("contains", "prefix", "glob", "regex")
NUMERIC_OPS = ("gt", "gte", "lt", "lte")
SET_OPS = ("in", "not_in")
OPERATORS = (
    "equals",
    "not_equals",
    *SET_OPS,
    *TEXT_OPS,
    *NUMERIC_OPS,
    "between",
    "exists",
    "missing",
    "in_list",
)
# the operators whose numbers are compared as numbers (a double on every engine: ``compile.dialects.JsonNumber``)
COMPARED = ("equals", "not_equals", *SET_OPS, *NUMERIC_OPS, "between")
Operator = Literal[
    "equals",
    "not_equals",
    "in",
    "not_in",
    "contains",
    "prefix",
    "glob",
    "regex",
    "gt",
    "gte",
    "lt",
    "lte",
    "between",
    "exists",
    "missing",
    "in_list",
]
MAX_REGEX_LENGTH = 300
MAX_TEXT_LENGTH = 2000
MAX_DEPTH = 12
# Regexes run as Python ``re`` on SQLite and as POSIX AREs (~*) on PostgreSQL; these mean different things.
UNPORTABLE_REGEX = (
    ("\\b", "a word boundary in Python but a backspace in PostgreSQL; write (^|[^a-z0-9])word([^a-z0-9]|$)"),
    ("\\B", "not portable between Python and PostgreSQL regular expressions"),
    ("(?P", "named groups are Python-only"),
    ("(?<", "look-behind and named groups are not portable"),
)
Scalar = str | int | float | bool


def _field_name(value: str, info: ValidationInfo) -> str:
    if not is_field_name(value):
        raise ValueError(f"{info.field_name} {value!r} is not a field name ({FIELD_NAME_WORDS})")
    return value


# a field of a rule that names an attribute or property (``model.names.is_field_name``)
FieldName = Annotated[str, AfterValidator(_field_name)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Compare(_Frozen):
    """``subject`` (attribute|property) ``field`` ``op`` ``value``."""

    subject: Literal["attribute", "property"]
    field: str
    op: Operator
    value: Any = None

    @model_validator(mode="before")
    @classmethod
    def _from_surface(cls, raw: Any) -> Any:
        if not isinstance(raw, dict) or "op" in raw:
            return raw
        subjects = [k for k in raw if k in SUBJECTS]
        ops = [k for k in raw if k in OPERATORS]
        unknown = [k for k in raw if k not in SUBJECTS and k not in OPERATORS]
        if unknown:
            raise ValueError(
                f"unknown key {unknown[0]!r} in condition; operators are: {', '.join(OPERATORS)}"
            )
        if len(subjects) != 1:
            raise ValueError("a condition needs exactly one of 'attribute' or 'property'")
        if len(ops) != 1:
            raise ValueError(f"a condition needs exactly one operator ({', '.join(OPERATORS)})")
        field = raw[subjects[0]]
        if not isinstance(field, str) or not is_field_name(field):
            raise ValueError(f"{subjects[0]} {field!r} is not a field name ({FIELD_NAME_WORDS})")
        return {
            "subject": subjects[0],
            "field": field,
            "op": ops[0],
            "value": _check_value(ops[0], raw[ops[0]]),
        }

    @model_serializer
    def _to_surface(self) -> dict[str, Any]:
        value = list(self.value) if isinstance(self.value, tuple) else self.value
        return {self.subject: self.field, self.op: value}


def _check_value(op: str, value: Any) -> Any:
    if op in ("exists", "missing"):
        if value is not True:
            raise ValueError(f"{op} takes true")
        return True
    if op in ("equals", "not_equals"):
        if not isinstance(value, Scalar):
            raise ValueError(f"{op} takes a single text, number or boolean, not {type(value).__name__}")
        return _short(value)
    if op in SET_OPS:
        if not isinstance(value, list) or not value or not all(isinstance(v, Scalar) for v in value):
            raise ValueError(f"{op} takes a non-empty list of texts or numbers")
        return tuple(_short(v) for v in value)
    if op in TEXT_OPS or op == "in_list":
        if not isinstance(value, str) or not value:
            raise ValueError(f"{op} takes a non-empty text")
        if op == "regex":
            if len(value) > MAX_REGEX_LENGTH:
                raise ValueError(
                    f"regex is {len(value)} characters long; at most {MAX_REGEX_LENGTH} are allowed"
                )
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"bad regex {value!r}: {exc}") from None
            for construct, why in UNPORTABLE_REGEX:
                if construct in value:
                    raise ValueError(f"regex {value!r} uses {construct}: {why}")
            if re.search(r"\([^)]*[+*][^)]*\)[+*{]", value):
                raise ValueError(f"regex {value!r} nests repetition (catastrophic backtracking risk)")
            refused = regex_search.problem(value)
            if refused is not None:
                raise ValueError(f"regex {value!r} is outside the portable subset: {refused}")
        return value if op == "in_list" else _short(value)
    if op in NUMERIC_OPS:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{op} takes a number, not {value!r}")
        return value
    if op == "between":
        if (
            not isinstance(value, list)
            or len(value) != 2
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
        ):
            raise ValueError("between takes [low, high], two numbers")
        if value[0] > value[1]:
            raise ValueError(f"between [{value[0]}, {value[1]}]: low is above high")
        return tuple(value)
    raise ValueError(f"unknown operator {op!r}")  # pragma: no cover - guarded by OPERATORS


def _short(value: Scalar) -> Scalar:
    """A literal as compared: a text at most ``MAX_TEXT_LENGTH`` long, in NFC as values are kept."""
    if isinstance(value, str):
        value = normalise_text(value)  # bounded as compared: NFC lengthens a few letters (U+FB2C: 3)
        if len(value) > MAX_TEXT_LENGTH:
            raise ValueError(
                f"text value is {len(value)} characters long; at most {MAX_TEXT_LENGTH} are allowed"
            )
    return value


class AllOf(_Frozen):
    """True when every condition is."""

    all: tuple[Condition, ...]

    @model_validator(mode="after")
    def _non_empty(self) -> AllOf:
        if not self.all:
            raise ValueError("all needs at least one condition")
        return self


class AnyOf(_Frozen):
    """True when at least one condition is."""

    any: tuple[Condition, ...]

    @model_validator(mode="after")
    def _non_empty(self) -> AnyOf:
        if not self.any:
            raise ValueError("any needs at least one condition")
        return self


class Not(_Frozen):
    """True when the condition is not (a missing value makes a comparison false, so ``not`` true)."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)
    negated: Condition

    @model_validator(mode="before")
    @classmethod
    def _from_surface(cls, raw: Any) -> Any:
        if isinstance(raw, dict) and "not" in raw:
            return {"negated": raw["not"], **{k: v for k, v in raw.items() if k != "not"}}
        return raw

    @model_serializer
    def _to_surface(self) -> dict[str, Any]:
        return {"not": self.negated.model_dump()}


def _condition_kind(raw: Any) -> str:
    if isinstance(raw, dict):
        for key in ("all", "any"):
            if key in raw:
                return key
        if "not" in raw or "negated" in raw:
            return "not"
        return "compare"
    if isinstance(raw, AllOf):
        return "all"
    if isinstance(raw, AnyOf):
        return "any"
    if isinstance(raw, Not):
        return "not"
    return "compare"


Condition = Annotated[
    Annotated[Compare, Tag("compare")]
    | Annotated[AllOf, Tag("all")]
    | Annotated[AnyOf, Tag("any")]
    | Annotated[Not, Tag("not")],
    Discriminator(_condition_kind),
]
AllOf.model_rebuild()
AnyOf.model_rebuild()
Not.model_rebuild()


def walk(condition: Condition) -> list[Compare]:
    """Every comparison inside a condition, depth first."""
    if isinstance(condition, Compare):
        return [condition]
    if isinstance(condition, AllOf):
        return [c for item in condition.all for c in walk(item)]
    if isinstance(condition, AnyOf):
        return [c for item in condition.any for c in walk(item)]
    return walk(condition.negated)


def depth(condition: Condition) -> int:
    """Nesting depth (a comparison is 1)."""
    if isinstance(condition, Compare):
        return 1
    items = (
        condition.all
        if isinstance(condition, AllOf)
        else condition.any
        if isinstance(condition, AnyOf)
        else (condition.negated,)
    )
    return 1 + max(depth(c) for c in items)
