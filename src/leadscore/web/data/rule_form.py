"""The rule builder's form as data: the fields a marketer fills in ↔ a rule as the model's YAML spells it.

A rule the form can show is a fit rule, or an engagement rule counted each time or once, whose condition
is one comparison or several joined by all / any (what a pick-and-click form can say). Anything else (a
threshold or recency rule, a condition nested deeper) is edited in the YAML; the form says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from leadscore.model import AllOf, AnyOf, Compare, EachRule, FitRule, OnceRule, ScoringModel
from leadscore.model.conditions import OPERATORS

ROWS = 4  # condition rows the form offers
NO_VALUE = ("exists", "missing")
LISTS = ("in", "not_in")
NUMBERS = ("gt", "gte", "lt", "lte")
OP_WORDS = {
    "equals": "is",
    "not_equals": "is not",
    "in": "is one of",
    "not_in": "is none of",
    "contains": "contains",
    "prefix": "starts with",
    "glob": "matches the pattern",
    "regex": "matches the regular expression",
    "gt": "is more than",
    "gte": "is at least",
    "lt": "is less than",
    "lte": "is at most",
    "between": "is between (low, high)",
    "exists": "is set",
    "missing": "is not set",
    "in_list": "is on the list",
}


@dataclass
class Row:
    field: str = ""
    op: str = "equals"
    value: str = ""

    @property
    def filled(self) -> bool:
        return bool(self.field.strip())


@dataclass
class RuleForm:
    """What the form shows and what it sent back; strings as typed."""

    section: str = "fit"
    replaces: str = ""
    id: str = ""
    name: str = ""
    description: str = ""
    points: str = ""
    match: str = "all"
    rows: list[Row] = field(default_factory=lambda: [Row() for _ in range(ROWS)])
    event_type: str = "page"
    event_name: str = ""
    kind: str = "each"
    cap: str = ""
    window: str = ""
    half_life: str = ""
    group: str = ""
    editable: bool = True  # False: the rule exists but the form cannot show it (edit it in YAML)

    @property
    def subject(self) -> str:
        return "attribute" if self.section == "fit" else "property"


def _number(text: str) -> int | float | str:
    try:
        value = float(text)
    except ValueError:
        return text
    return int(value) if value.is_integer() and "." not in text else value


def _scalar(text: str) -> Any:
    """A value as YAML would read it from a person: numbers as numbers, true/false, else the text."""
    if text in ("true", "false"):
        return text == "true"
    return _number(text)


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def row_condition(row: Row, subject: str) -> dict[str, Any]:
    """One row as a comparison: ``{attribute: job_title, contains: growth}``."""
    op, text = row.op, row.value.strip()
    value: Any
    if op in NO_VALUE:
        value = True
    elif op in LISTS:
        value = [_scalar(v) for v in _split(text)]
    elif op == "between":
        value = [_number(v) for v in _split(text)]
    elif op in NUMBERS:
        value = _number(text)
    elif op in ("equals", "not_equals"):
        value = _scalar(text)
    else:
        value = text
    return {subject: row.field.strip(), op: value}


def condition(form: RuleForm) -> dict[str, Any] | None:
    """The form's condition: one comparison, or several under all / any; None when no row is filled."""
    parts = [row_condition(r, form.subject) for r in form.rows if r.filled]
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0]
    return {form.match if form.match in ("all", "any") else "all": parts}


def rule(form: RuleForm) -> dict[str, Any]:
    """The rule as the YAML spells it, keys in the order the house writes them."""
    out: dict[str, Any] = {"id": form.id.strip(), "name": form.name.strip()}
    if form.description.strip():
        out["description"] = form.description.strip()
    cond = condition(form)
    if form.section == "fit":
        out["when"] = cond if cond is not None else {}
        out["points"] = _number(form.points.strip())
        return out
    if form.kind == "once":
        out["kind"] = "once"
    event: dict[str, Any] = {"type": form.event_type}
    if form.event_name.strip():
        event["name"] = form.event_name.strip()
    out["event"] = event
    if cond is not None:
        out["where"] = cond
    out["points"] = _number(form.points.strip())
    for key in ("cap", "window", "half_life", "group"):
        text = getattr(form, key).strip()
        if text:
            out[key] = _number(text) if key == "cap" else text
    return out


def read_form(data: Any) -> RuleForm:
    """The form from a submitted form body (``data.get`` / ``data.getlist``, as Starlette's FormData)."""
    get = lambda key, default="": str(data.get(key) or default)[:2000]  # noqa: E731
    fields, ops, values = (data.getlist(k) for k in ("cond_field", "cond_op", "cond_value"))
    rows = [
        Row(str(f)[:200], str(o) if str(o) in OPERATORS else "equals", str(v)[:2000])
        for f, o, v in zip(fields, ops, values, strict=False)
    ][:ROWS]
    rows += [Row() for _ in range(ROWS - len(rows))]
    return RuleForm(
        section=get("section", "fit") if get("section") in ("fit", "engagement") else "fit",
        replaces=get("replaces"),
        id=get("id"),
        name=get("name"),
        description=get("description"),
        points=get("points"),
        match=get("match", "all"),
        rows=rows,
        event_type=get("event_type", "page"),
        event_name=get("event_name"),
        kind="once" if get("kind") == "once" else "each",
        cap=get("cap"),
        window=get("window"),
        half_life=get("half_life"),
        group=get("group"),
    )


def _row_of(c: Compare) -> Row:
    value = c.value
    if c.op in NO_VALUE:
        text = ""
    elif isinstance(value, list | tuple):
        text = ", ".join(_text(v) for v in value)
    else:
        text = _text(value)
    return Row(c.field, c.op, text)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def form_of(model: ScoringModel, section: str, rule_id: str) -> RuleForm:
    """The form showing an existing rule of ``section`` (``editable`` False where it cannot)."""
    rules = model.fit if section == "fit" else model.engagement
    found = next((r for r in rules if r.id == rule_id), None)
    form = RuleForm(section=section, replaces=rule_id, id=rule_id)
    if found is None:
        return form
    form.name, form.description = found.name, found.description or ""
    form.points = _text(found.points)
    cond = found.when if isinstance(found, FitRule) else getattr(found, "where", None)
    compares: list[Compare] = []
    if isinstance(cond, Compare):
        compares = [cond]
    elif isinstance(cond, AllOf | AnyOf):
        parts = list(cond.all if isinstance(cond, AllOf) else cond.any)
        form.match = "all" if isinstance(cond, AllOf) else "any"
        if all(isinstance(p, Compare) for p in parts) and len(parts) <= ROWS:
            compares = [p for p in parts if isinstance(p, Compare)]
        else:
            form.editable = False
    elif cond is not None:
        form.editable = False
    form.rows = [_row_of(c) for c in compares] + [Row() for _ in range(ROWS - len(compares))]
    if isinstance(found, EachRule | OnceRule):
        form.kind = "once" if isinstance(found, OnceRule) else "each"
        form.event_type = found.event.type
        form.event_name = found.event.name or ""
        cap = found.cap if isinstance(found, EachRule) else None
        form.cap = _text(cap) if cap is not None else ""
        form.window = str(found.window or "")
        form.half_life = str(found.half_life or "")
        form.group = found.group or ""
        if found.exclude is not None:
            form.editable = False
    elif not isinstance(found, FitRule):
        form.editable = False
    return form
