"""Conditions → SQL booleans that are never NULL (a missing value makes a comparison false)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Float, String, and_, bindparam, false, func, not_, or_, true
from sqlalchemy.sql.elements import ColumnElement

from leadscore.compile.dialects import (
    JsonBool,
    JsonNumber,
    JsonText,
    LowerText,
    RegexI,
    TextLike,
)
from leadscore.errors import CompileError
from leadscore.model import AllOf, AnyOf, Compare, Condition, Not, ScoringModel
from leadscore.model.text_case import fold_case, text_forms


@dataclass(frozen=True)
class Field:
    """How to read one field: a text column, or a path inside a JSON column."""

    column: ColumnElement[Any]
    json_path: tuple[str, ...] | None = None

    def text(self) -> ColumnElement[Any]:
        return JsonText(self.column, self.json_path) if self.json_path else self.column

    def number(self) -> ColumnElement[Any] | None:
        return JsonNumber(self.column, self.json_path) if self.json_path else None

    def boolean(self) -> ColumnElement[Any] | None:
        return JsonBool(self.column, self.json_path) if self.json_path else None


Resolver = Callable[[str], Field]


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def contains_like(text: str) -> str:
    """A LIKE pattern (``\\`` escapes) matching any text that contains ``text``."""
    return f"%{_like_escape(text)}%"


def glob_to_like(pattern: str) -> str:
    """Translate a glob (``*`` any run, ``?`` one character) to a LIKE pattern with ``\\`` escapes."""
    return "".join("%" if ch == "*" else "_" if ch == "?" else _like_escape(ch) for ch in pattern)


def _lower_text(field: Field, *values: str) -> ColumnElement[Any]:
    """The field lower-cased for comparison with ``values`` (Unicode-aware when they are not ASCII)."""
    return LowerText(field.text(), unicode=not all(v.isascii() for v in values))


def compile_condition(
    cond: Condition, resolve: Resolver, model: ScoringModel, rule_id: str
) -> ColumnElement[bool]:
    """The condition as a SQL boolean expression; NULLs collapse to false at each comparison."""
    if isinstance(cond, AllOf):
        return and_(*(compile_condition(c, resolve, model, rule_id) for c in cond.all))
    if isinstance(cond, AnyOf):
        return or_(*(compile_condition(c, resolve, model, rule_id) for c in cond.any))
    if isinstance(cond, Not):
        return not_(compile_condition(cond.negated, resolve, model, rule_id))
    expr = _compare(cond, resolve(cond.field), model, rule_id)
    return func.coalesce(expr, false())


def _compare(c: Compare, field: Field, model: ScoringModel, rule_id: str) -> ColumnElement[Any]:
    op, value = c.op, c.value
    if op == "exists":
        return field.text().is_not(None)
    if op == "missing":
        return field.text().is_(None)
    if op in ("equals", "not_equals"):
        expr = _equals(field, value, rule_id, c)
        return not_(expr) if op == "not_equals" else expr
    if op in ("in", "not_in"):
        expr = _in(field, value, rule_id, c)
        return not_(expr) if op == "not_in" else expr
    if op == "in_list":
        values = model.lists[value].values
        if not values:
            return false()
        return one_of(_lower_text(field, *values), _folded(values))
    if op == "contains":
        return _like(field, value, contains_like)
    if op == "prefix":
        return _like(field, value, lambda text: f"{_like_escape(text)}%")
    if op == "glob":
        return _like(field, value, glob_to_like)
    if op == "regex":
        return RegexI(field.text(), value)
    number = _number(field, rule_id, c)
    if op == "gt":
        return number > value
    if op == "gte":
        return number >= value
    if op == "lt":
        return number < value
    if op == "lte":
        return number <= value
    if op == "between":
        return and_(number >= value[0], number <= value[1])
    raise CompileError(f"rule {rule_id}: unknown operator {op}")  # pragma: no cover


def _folded(texts: Sequence[str]) -> list[str]:
    """The texts a case-insensitive comparison with ``texts`` (NFC literals) looks for: each folded, in
    each spelling a stored value may have (``text_forms``: values stored before ingest kept NFC may be NFD)."""
    return [form for text in texts for form in text_forms(fold_case(text))]


def _like(field: Field, value: str, pattern: Callable[[str], str]) -> ColumnElement[Any]:
    """A case-insensitive LIKE of the field against ``pattern`` of the folded literal, in each spelling."""
    likes = [TextLike(field.text(), pattern(form), ascii=value.isascii()) for form in _folded([value])]
    return likes[0] if len(likes) == 1 else or_(*likes)


def same_text(column: ColumnElement[Any], value: str) -> ColumnElement[bool]:
    """A case-sensitive equality (an event's name) with an NFC literal, in each spelling (``text_forms``)."""
    forms = text_forms(value)
    return column == value if len(forms) == 1 else column.in_(forms)


def one_of(expr: ColumnElement[Any], texts: list[str]) -> ColumnElement[bool]:
    """``expr IN (texts)`` with the texts written into the statement as literals, not bound: a model's
    list may hold ``MAX_LIST_VALUES`` (200,000), and bound they passed PostgreSQL's 65,535 parameters of a
    statement (SQLite's limit is lower still on many builds): publishing such a model failed on both
    stores. Written, PostgreSQL still reads them as one constant array it looks values up in by hash,
    SQLite as a list it looks up in an index it builds once."""
    return expr.in_(bindparam(None, texts, type_=String, expanding=True, literal_execute=True, unique=True))


def _number(field: Field, rule_id: str, c: Compare) -> ColumnElement[Any]:
    number = field.number()
    if number is None:
        raise CompileError(f"rule {rule_id}: {c.field} is a text field; {c.op} compares numbers")
    return number


def _in(field: Field, values: list[Any], rule_id: str, c: Compare) -> ColumnElement[Any]:
    """Any of ``values``: the text ones as one ``lower(text) IN (...)``, so the field is read once (a JSON
    lookup per value otherwise); case-insensitive equality exactly as ``_equals`` compares one text."""
    texts = [v for v in values if isinstance(v, str)]
    numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    tests = [_equals(field, v, rule_id, c) for v in values if isinstance(v, bool)]
    number = field.number()
    if len(numbers) <= 1:
        tests += [_equals(field, v, rule_id, c) for v in numbers]
    elif number is None:  # a text column: each number's text, as ``_equals`` compares one
        tests.append(one_of(field.text(), [str(v) for v in numbers]))
    else:  # one IN, as the texts: a list of 70,000 numbers was 70,000 bound parameters
        tests.append(number.in_(bindparam(None, [float(v) for v in numbers], type_=Float, expanding=True,
                                          literal_execute=True, unique=True)))  # fmt: skip
    if len(texts) == 1:
        tests.insert(0, _equals(field, texts[0], rule_id, c))
    elif texts:
        tests.insert(0, one_of(_lower_text(field, *texts), _folded(texts)))
    return or_(*tests)


def _equals(field: Field, value: Any, rule_id: str, c: Compare) -> ColumnElement[Any]:
    if isinstance(value, bool):
        flag = field.boolean()
        if flag is None:
            raise CompileError(f"rule {rule_id}: {c.field} is a text field; it is never true or false")
        return flag == (true() if value else false())
    if isinstance(value, int | float):
        number = field.number()
        if number is not None:
            return number == float(value)
        return field.text() == str(value)
    return _like(field, value, _like_escape)
