"""Spark SQL: a minimal SQLAlchemy dialect that renders Spark SQL, the engine's spellings and capabilities.

Why a dialect rather than transpiling (e.g. rendering PostgreSQL and converting it with sqlglot): the
compiler's engine-specific pieces are a handful of ``@compiles`` functions, and each needs a deliberate
Spark spelling anyway (typed JSON access through ``from_json``, Java regex flags, backslash escapes in
literals). A transpiler would re-parse SQL text that was written for another engine and would have to
guess those semantics; a dialect states them once, here, next to the other engines' spellings, and the
rendered text is exactly what ``spark.sql`` runs (and what the snapshots show).

Spark specifics handled here: every identifier is quoted with backticks (no reserved-word surprises in
ANSI mode); string literals escape ``\\`` and ``'`` with a backslash (Spark's default literal syntax);
floats are written as DOUBLE literals (``0.5D``; a bare ``0.5`` is DECIMAL); a JSON number or boolean is
read with ``from_json`` and a one-field schema, which yields NULL for a JSON string such as ``"60"``
(numeric operators only match JSON numbers, and the texts ``NaN`` or ``Infinity`` are no numbers); regexes
are spelled case-sensitively to match as RE2 does ignoring case (``dialects.case_folded_regex``).
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy.engine import default
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import compiler as sql_compiler

from leadscore.compile.dialects import (
    CAPABILITIES,
    DAY_MS,
    DECAY_HALF_LIVES,
    DayNumber,
    HalfLifeDecay,
    JsonBool,
    JsonNumber,
    JsonText,
    LowerText,
    RegexI,
    TextLike,
)
from leadscore.compile.engines.literals import finite, json_path

CAPABILITIES["spark"] = frozenset({"regex", "decay", "json", "distinct", "account_scope", "exclusions"})

_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def string_literal(value: str) -> str:
    """A Spark SQL string literal (backslash is the escape character)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class SparkIdentifierPreparer(sql_compiler.IdentifierPreparer):
    def __init__(self, dialect: Any) -> None:
        super().__init__(dialect, initial_quote="`", escape_quote="``")

    def _requires_quotes(self, value: str) -> bool:
        return True


class SparkCompiler(sql_compiler.SQLCompiler):
    def render_literal_value(self, value: Any, type_: Any) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, float):
            return f"{finite(value)}D"
        if isinstance(value, int):
            return f"{value}L" if not -(2**31) <= value < 2**31 else str(value)
        if isinstance(value, str):
            return string_literal(value)
        return str(super().render_literal_value(value, type_))


class SparkTypeCompiler(sql_compiler.GenericTypeCompiler):
    def visit_FLOAT(self, type_: Any, **kw: Any) -> str:
        return "DOUBLE"

    def visit_REAL(self, type_: Any, **kw: Any) -> str:
        return "DOUBLE"

    def visit_TEXT(self, type_: Any, **kw: Any) -> str:
        return "STRING"

    def visit_VARCHAR(self, type_: Any, **kw: Any) -> str:
        return "STRING"

    def visit_INTEGER(self, type_: Any, **kw: Any) -> str:
        return "INT"


class SparkDialect(default.DefaultDialect):
    """Renders Spark SQL 3.4+ text (standard CTEs, ``FILTER (WHERE ...)``, backtick identifiers)."""

    name = "spark"
    statement_compiler = SparkCompiler
    type_compiler_cls = SparkTypeCompiler
    preparer = SparkIdentifierPreparer  # type: ignore[assignment]
    supports_native_boolean = True
    default_paramstyle = "named"


def _json_text_path(path: tuple[str, ...]) -> str:
    return "$" + "".join(f".{k}" if _PLAIN_KEY.fullmatch(k) else f"['{k}']" for k in path)


def _from_json(element: Any, compiler: Any, leaf_type: str, **kw: Any) -> str:
    """The typed value at the element's path: NULL unless the JSON value there has that type."""
    col = compiler.process(next(iter(element.clauses)), **kw)
    path = json_path(element)
    schema = leaf_type
    for key in reversed(path[1:]):
        schema = f"STRUCT<`{key}`: {schema}>"
    fields = "".join(f".`{key}`" for key in path)
    # allowNonNumericNumbers off: Spark's reader otherwise takes the texts "NaN", "Infinity", "+INF" (and
    # their negatives) for doubles, and a text never meets a numeric operator on the other engines
    options = "map('allowNonNumericNumbers', 'false')"
    return f"(from_json({col}, {string_literal(f'`{path[0]}` {schema}')}, {options})){fields}"


@compiles(JsonText, "spark")
def _json_text(element: JsonText, compiler: Any, **kw: Any) -> str:
    col = compiler.process(next(iter(element.clauses)), **kw)
    text = f"get_json_object({col}, {string_literal(_json_text_path(json_path(element)))})"
    # get_json_object writes a JSON number that is no whole number as Java does, 1.2345678901234567E14 from
    # 10^7 on and below 10^-3; the other engines write it in plain digits (123456789012345.67): a number
    # (from_json reads it as one, a text never) spelled with an E is written with its exact decimal digits,
    # trailing zeros dropped but one (10000000.0, as the others write 1e7), from 10^-4 up to 10^16, the
    # range where every engine writes plain digits (docs/model-language.md)
    number = _from_json(element, compiler, "DOUBLE", **kw)
    digits = f"CAST(CAST({text} AS DECIMAL(38, 20)) AS STRING)"
    plain = f"regexp_replace(regexp_replace({digits}, '0+$', ''), '[.]$', '.0')"
    between = f"abs({number}) >= 1.0E-4D AND abs({number}) < 1.0E16D"  # the digits DECIMAL(38, 20) holds
    return f"(CASE WHEN {text} LIKE '%E%' AND {between} THEN {plain} ELSE {text} END)"


@compiles(JsonNumber, "spark")
def _json_number(element: JsonNumber, compiler: Any, **kw: Any) -> str:
    return _from_json(element, compiler, "DOUBLE", **kw)


@compiles(JsonBool, "spark")
def _json_bool(element: JsonBool, compiler: Any, **kw: Any) -> str:
    return _from_json(element, compiler, "BOOLEAN", **kw)


def _folded(expr: str) -> str:
    """lower(text) by Unicode's simple mapping, as the other engines fold (model.text_case.fold_case): Java's
    toLowerCase makes İ two characters (i and a combining dot) and a word's last Σ a ς, so both are
    translated first."""
    return f"lower(translate({expr}, 'İΣ', 'iσ'))"


@compiles(LowerText, "spark")
def _lower(element: LowerText, compiler: Any, **kw: Any) -> str:
    return _folded(compiler.process(element.clauses, **kw))


@compiles(TextLike, "spark")
def _text_like(element: TextLike, compiler: Any, **kw: Any) -> str:
    expr, pattern = (compiler.process(c, **kw) for c in element.clauses)
    return f"({_folded(expr)} LIKE {pattern} ESCAPE '\\\\')"


@compiles(RegexI, "spark")
def _regex(element: RegexI, compiler: Any, **kw: Any) -> str:
    value, _, _, pattern = (compiler.process(c, **kw) for c in element.clauses)
    # case-sensitive, the pattern spelled to match as RE2 does ignoring case (dialects.case_folded_regex):
    # Java's (?iu) pairs i with the Turkish ı and İ, never σ with ς, and its . and $ read line terminators
    return f"({value} RLIKE {pattern})"


@compiles(HalfLifeDecay, "spark")
def _decay(element: HalfLifeDecay, compiler: Any, **kw: Any) -> str:
    age, half_life = (compiler.process(c, **kw) for c in element.clauses)
    return f"power(0.5D, least(CAST(({age}) AS DOUBLE) / {half_life}, {DECAY_HALF_LIVES}.0D))"


@compiles(DayNumber, "spark")
def _day_number(element: DayNumber, compiler: Any, **kw: Any) -> str:
    # integer division ("/" divides as DOUBLE here)
    return f"(({compiler.process(element.clauses, **kw)}) div {DAY_MS})"
