"""SQL constructs whose spelling differs by engine, each compiled per dialect.

Every engine-specific piece of SQL lives here; the rest of the compiler builds portable expressions.
Float constants are bound as double precision so PostgreSQL never falls back to NUMERIC arithmetic.
"""

from __future__ import annotations

import itertools
import json
import re
import sqlite3
from bisect import bisect_left, bisect_right
from functools import cache
from typing import Any, TypeVar, cast

from sqlalchemy import BigInteger, Float, Text, literal
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement, FrameClause
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.sql.selectable import CTE, Join
from sqlalchemy.sql.visitors import InternalTraversal
from sqlalchemy.types import Boolean

# Engines and the constructs they lack; compile_model raises UnsupportedRuleError before any SQL runs.
# "distinct": count rules counting distinct days, sessions, people or property values;
# "account_scope": rules reading the events of every lead of the lead's account; "exclusions": machine
# events and bursts (window functions with RANGE frames over epoch ms).
CAPABILITIES: dict[str, frozenset[str]] = {
    "sqlite": frozenset({"regex", "decay", "json", "distinct", "account_scope", "exclusions"}),
    "postgresql": frozenset({"regex", "decay", "json", "distinct", "account_scope", "exclusions"}),
}


# ``WITH x AS MATERIALIZED (...)``: PostgreSQL 12+, SQLite 3.35+ (older SQLite libraries reject the word).
MATERIALIZED_HINT = ("postgresql", *(("sqlite",) if sqlite3.sqlite_version_info >= (3, 35, 0) else ()))


def computed_once(cte: CTE) -> CTE:
    """Ask the engine to compute the CTE once instead of inlining it into the query that reads it.

    Inlined, every reference to a column repeats the expression behind it, and the totals stages read
    their inputs many times over (a clamp reads its argument three times), so the rule values would be
    recomputed dozens of times per row. Materialized, each is computed once per row. Results are identical.
    """
    for dialect in MATERIALIZED_HINT:
        cte = cte.prefix_with("MATERIALIZED", dialect=dialect)
    return cte


def targets_in_place(cte: CTE) -> CTE:
    """The scoring targets as a CTE the engine reads in place (``NOT MATERIALIZED``) rather than stores.

    SQLite: for all leads, the leads table read in id order (no sort for the GROUP BY). PostgreSQL: the
    planner sees the targets' own filter and may aggregate the events with parallel workers (a
    materialized CTE is read by the leader only, which kept the whole query serial); the sums that
    would then depend on how the rows were split are exact (``RuleSum``), so scores stay reproducible
    to the bit. Both spell the hint since SQLite 3.35 and PostgreSQL 12.
    """
    cte = cte.prefix_with("NOT MATERIALIZED", dialect="postgresql")
    if sqlite3.sqlite_version_info >= (3, 35, 0):
        cte = cte.prefix_with("NOT MATERIALIZED", dialect="sqlite")
    return cte


@compiles(FrameClause)
def _frame_clause(element: FrameClause, compiler: Any, **kw: Any) -> str:
    """A window frame's offsets spelled as numbers (``RANGE BETWEEN 60000 PRECEDING AND CURRENT ROW``),
    never as parameters, on every engine (rendered at execution: a compiled statement stays cacheable).

    SQLite sorts the rows once for all the windows of a SELECT whose partition, order and frame compare
    equal, and two parameters never compare equal: with ``? PRECEDING`` every burst window of a model
    sorted every event of the lead again (2.5x the time of the whole query at 2,000 funnel leads).
    """
    return str(compiler.visit_frame_clause(element, **{**kw, "literal_execute": True}))


# SQLite's ``->`` (the JSON text at a path): 3.38 and later
JSON_ARROW = sqlite3.sqlite_version_info >= (3, 38, 0)


def _json_path_sqlite(path: tuple[str, ...]) -> str:
    return "$" + "".join(f'."{p}"' for p in path)


def _json_path_pg(path: tuple[str, ...]) -> str:
    """PostgreSQL's ``{"a","b"}``: each key quoted, as an unquoted ``null`` (any case) is an SQL NULL there
    (an attribute named ``null`` was never found). A key is a field name (``model.names.is_field_name``):
    no quote, backslash, comma or brace to escape."""
    return "{" + ",".join(f'"{key}"' for key in path) + "}"


def _json_arguments(column: ColumnElement[Any], path: tuple[str, ...]) -> list[ColumnElement[Any]]:
    """A JSON element's arguments: the column, SQLite's path, PostgreSQL's ``{"a","b"}`` and, for a key
    beyond ASCII, SQLite's path with the key spelled as json.dumps escapes it (``_sqlite_json``)."""
    arguments: list[ColumnElement[Any]] = [
        column, literal(_json_path_sqlite(path)), literal(_json_path_pg(path))
    ]  # fmt: skip
    if not all(key.isascii() for key in path):
        arguments.append(literal(_json_path_sqlite(tuple(json.dumps(key)[1:-1] for key in path))))
    return arguments


def _sqlite_json(element: FunctionElement[Any], compiler: Any, **kw: Any) -> tuple[str, str]:
    """The column and the path of a JSON element on SQLite. SQLite (3.40) finds a key by its text as
    stored: the JSON SQLAlchemy writes (a lead's attributes) escapes every character beyond ASCII
    (``"gr\\u00f6\\u00dfe"``), the event log's does not (``"größe"``); a key beyond ASCII is looked
    up as stored unescaped, else as escaped (a fourth argument only then: an ASCII key costs nothing)."""
    col, path, _, *escaped = (compiler.process(c, **kw) for c in element.clauses)
    if escaped:
        path = f"(CASE WHEN json_type({col}, {path}) IS NULL THEN {escaped[0]} ELSE {path} END)"
    return col, path


class JsonText(FunctionElement[str]):
    """The value at a JSON path as text; NULL when absent or JSON null."""

    type = Text()
    inherit_cache = True
    name = "json_text"

    def __init__(self, column: ColumnElement[Any], path: tuple[str, ...]) -> None:
        self.path = path
        super().__init__(*_json_arguments(column, path))


@compiles(JsonText, "sqlite")
def _json_text_sqlite(element: JsonText, compiler: Any, **kw: Any) -> str:
    col, path = _sqlite_json(element, compiler, **kw)
    # json_extract gives 1/0 for JSON true/false; PostgreSQL's #>> gives 'true'/'false'. A JSON real read as
    # text by json_extract keeps 15 digits (0.30000000000000004 became '0.3'); ``->`` gives its JSON text
    real = f"WHEN 'real' THEN ({col} -> {path}) " if JSON_ARROW else ""
    return (
        f"(CASE json_type({col}, {path}) WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' {real}"
        f"ELSE json_extract({col}, {path}) END)"
    )


@compiles(JsonText, "postgresql")
def _json_text_pg(element: JsonText, compiler: Any, **kw: Any) -> str:
    col, _, path = list(element.clauses)[:3]
    return f"({compiler.process(col, **kw)} #>> CAST({compiler.process(path, **kw)} AS TEXT[]))"


class JsonNumber(FunctionElement[float]):
    """The value at a JSON path if it is a JSON number, as a 64-bit float on every engine, else NULL (text
    never parses as a number)."""

    type = Float()
    inherit_cache = True
    name = "json_number"

    def __init__(self, column: ColumnElement[Any], path: tuple[str, ...]) -> None:
        super().__init__(*_json_arguments(column, path))


@compiles(JsonNumber, "sqlite")
def _json_number_sqlite(element: JsonNumber, compiler: Any, **kw: Any) -> str:
    col, path = _sqlite_json(element, compiler, **kw)
    # as a double, as on PostgreSQL, DuckDB and Spark: SQLite compares an integer with a real exactly, so
    # past 2**53 a JSON integer matched on one engine and not on another
    return (
        f"(CASE WHEN json_type({col}, {path}) IN ('integer', 'real') "
        f"THEN CAST(json_extract({col}, {path}) AS REAL) END)"
    )


@compiles(JsonNumber, "postgresql")
def _json_number_pg(element: JsonNumber, compiler: Any, **kw: Any) -> str:
    col, _, path = (compiler.process(c, **kw) for c in list(element.clauses)[:3])
    node = f"({col} #> CAST({path} AS TEXT[]))"
    return f"(CASE WHEN jsonb_typeof({node}) = 'number' THEN CAST({node} #>> '{{}}' AS DOUBLE PRECISION) END)"


class JsonBool(FunctionElement[bool]):
    """TRUE/FALSE for a JSON boolean at a path, else NULL."""

    type = Boolean()
    inherit_cache = True
    name = "json_bool"

    def __init__(self, column: ColumnElement[Any], path: tuple[str, ...]) -> None:
        super().__init__(*_json_arguments(column, path))


@compiles(JsonBool, "sqlite")
def _json_bool_sqlite(element: JsonBool, compiler: Any, **kw: Any) -> str:
    col, path = _sqlite_json(element, compiler, **kw)
    return f"(CASE json_type({col}, {path}) WHEN 'true' THEN 1 WHEN 'false' THEN 0 END)"


@compiles(JsonBool, "postgresql")
def _json_bool_pg(element: JsonBool, compiler: Any, **kw: Any) -> str:
    col, _, path = (compiler.process(c, **kw) for c in list(element.clauses)[:3])
    node = f"({col} #> CAST({path} AS TEXT[]))"
    return f"(CASE WHEN jsonb_typeof({node}) = 'boolean' THEN CAST({node} #>> '{{}}' AS BOOLEAN) END)"


class NotIndexed(FunctionElement[str]):
    """A column compared without its index: ``+column`` on SQLite (unary plus, a no-op on any value, keeps
    the planner off indexes on it), the column itself elsewhere.

    The scoring query reaches events through the (person_key, ts) index, from each target's identities.
    With an index on (type, ts) beside it (the rule builder's counts), SQLite chose that one for the
    account-scope join: every page event of the last 30 days once per colleague, 16 CPU-s instead of
    2.4 at 2,000 funnel leads.
    """

    type = Text()
    inherit_cache = True
    name = "not_indexed"


@compiles(NotIndexed)
def _not_indexed(element: NotIndexed, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.clauses, **kw))


@compiles(NotIndexed, "sqlite")
def _not_indexed_sqlite(element: NotIndexed, compiler: Any, **kw: Any) -> str:
    return f"+{compiler.process(element.clauses, **kw)}"


# SQLite's built-in lower() and LIKE fold ASCII only. A rule value that is ASCII compares with the built-ins
# (a text's non-ASCII letters cannot fold to it, but for two: İ (U+0130) folds to i and the Kelvin sign
# (U+212A) to k on PostgreSQL and DuckDB, not here; testing every text for them made the whole scoring
# statement 2x slower, so they are the documented exception, docs/model-language.md); a non-ASCII value
# compares the Unicode-lowered text (``leadscore_lower``).

_CACHED_FLAGS = [
    ("unicode", InternalTraversal.dp_boolean),
    ("any_text", InternalTraversal.dp_boolean),
]


class LowerText(FunctionElement[str]):
    """lower(text). SQLite's built-in lower() folds ASCII only, so comparisons with non-ASCII values use
    the Unicode-aware ``leadscore_lower`` the store registers (``unicode``); ASCII values keep the fast
    built-in."""

    type = Text()
    inherit_cache = True
    name = "lower_text"
    # the flags change the SQL, so they are part of the statement cache key (a bound value would not be)
    _traverse_internals = [*FunctionElement._traverse_internals, *_CACHED_FLAGS]  # noqa: RUF012

    def __init__(self, expr: ColumnElement[Any], unicode: bool, any_text: bool = False) -> None:
        self.unicode = unicode
        self.any_text = any_text
        super().__init__(expr)

    @classmethod
    def of_any_text(cls, expr: ColumnElement[Any]) -> LowerText:
        """A text folded to compare with other texts, not with known values (distinct property values, the
        value an event shares with its send): on SQLite, ASCII texts by the built-in and others by
        ``leadscore_lower``, so ``Ö`` and ``ö`` are one value as on PostgreSQL and DuckDB."""
        return cls(expr, unicode=False, any_text=True)


@compiles(LowerText)
def _lower(element: LowerText, compiler: Any, **kw: Any) -> str:
    return f"lower({compiler.process(element.clauses, **kw)})"


@compiles(LowerText, "sqlite")
def _lower_sqlite(element: LowerText, compiler: Any, **kw: Any) -> str:
    expr = compiler.process(element.clauses, **kw)
    if element.unicode:
        return f"leadscore_lower({expr})"
    if element.any_text:
        # fewer bytes than characters only in an ASCII text
        return f"(CASE WHEN length(CAST({expr} AS BLOB)) = length({expr}) THEN lower({expr}) ELSE leadscore_lower({expr}) END)"
    return f"lower({expr})"


class TextLike(FunctionElement[bool]):
    """Case-insensitive LIKE of a text against a lower-cased pattern (``\\`` escapes).

    SQLite's LIKE already ignores ASCII case, so an ASCII pattern needs no lower() on the column (the
    same answer, without a function call per row); a non-ASCII pattern compares the Unicode-lowered text.
    PostgreSQL compares lower(text): measured faster than ILIKE (C.UTF-8: 0.37 s against 0.60 s per 1M rows).
    """

    type = Boolean()
    inherit_cache = True
    name = "text_like"
    _traverse_internals = [  # noqa: RUF012
        *FunctionElement._traverse_internals,
        ("ascii", InternalTraversal.dp_boolean),
    ]

    def __init__(self, expr: ColumnElement[Any], pattern: str, ascii: bool | None = None) -> None:
        # ``ascii``: whether the value the pattern was folded from is ASCII (``İST`` folds to ``ist``,
        # which SQLite's LIKE would not match in ``İstanbul``)
        self.ascii = pattern.isascii() if ascii is None else ascii and pattern.isascii()
        super().__init__(expr, literal(pattern))


@compiles(TextLike)
def _text_like(element: TextLike, compiler: Any, **kw: Any) -> str:
    expr, pattern = (compiler.process(c, **kw) for c in element.clauses)
    return f"(lower({expr}) LIKE {pattern} ESCAPE '\\')"


@compiles(TextLike, "sqlite")
def _text_like_sqlite(element: TextLike, compiler: Any, **kw: Any) -> str:
    expr, pattern = (compiler.process(c, **kw) for c in element.clauses)
    unicode = f"(leadscore_lower({expr}) LIKE {pattern} ESCAPE '\\')"
    if not element.ascii:
        return unicode
    return f"({expr} LIKE {pattern} ESCAPE '\\')"


# RE2's ASCII class shorthands spelled as explicit sets: PostgreSQL reads ``\\d \\s \\w`` through the
# locale (``\\w`` matches ``ß`` and ``Ö``, ``\\d`` Arabic-Indic digits, ``\\s`` a no-break space)
_ASCII_SETS = {"d": "0-9", "w": "0-9A-Za-z_", "s": "\t\n\f\r "}
_SET_RANGES = {"d": [("0", "9")], "w": [("0", "9"), ("A", "Z"), ("a", "z"), ("_", "_")], "s": []}


def _simple_fold(ch: str) -> str:
    """Unicode's simple case folding of one character (CaseFolding.txt, statuses C and S)."""
    folded = ch.casefold()
    if len(folded) == 1:
        return folded
    lower = ch.lower()  # ẞ: full folding "ss", simple folding ß
    return lower if len(lower) == 1 else ch


# no character from here on has a case (the last are Adlam's, U+1E900 to U+1E943)
_LAST_CASED = 0x1F000


@cache
def _fold_orbits() -> tuple[dict[str, str], list[str]]:
    """Each character whose case folds together with others, to all of them (``k`` → ``Kk\u212a``): RE2's
    case-insensitive reading, where ``k`` also matches the Kelvin sign and ``σ`` the final ``ς``; and the
    sorted list of those characters. Computed once, when a regex is first spelled for PostgreSQL or Spark."""
    groups: dict[str, set[str]] = {}
    for code in range(_LAST_CASED):
        ch = chr(code)
        folded = _simple_fold(ch)
        if folded != ch:
            groups.setdefault(folded, {folded}).add(ch)
    orbits = {ch: "".join(sorted(group)) for group in groups.values() for ch in group}
    return orbits, sorted(orbits)


def _orbit(ch: str) -> str:
    return _fold_orbits()[0].get(ch, ch)


def _folded_extras(ranges: list[tuple[str, str]]) -> str:
    """The characters that fold together with one in ``ranges`` (inclusive pairs) and lie outside all of them."""
    orbits, cased = _fold_orbits()
    inside: set[str] = set()
    for low, high in ranges:
        inside.update(cased[bisect_left(cased, low) : bisect_right(cased, high)])
    extras = {o for ch in inside for o in orbits[ch]}
    return "".join(sorted(o for o in extras if not any(low <= o <= high for low, high in ranges)))


_HEX = re.compile(r"x(?:\{([0-9A-Fa-f]{1,6})\}|([0-9A-Fa-f]{2}))")


def _hex_escape(pattern: str, i: int) -> tuple[str, int] | None:
    """The character of a ``\\xHH`` or ``\\x{H...}`` escape at ``pattern[i]`` (the backslash), and the index
    after it; None for any other escape. Read as the character itself, it folds like one (PostgreSQL reads
    ``\\x`` with any number of hex digits after it, so ``\\x41B`` was one character there)."""
    found = _HEX.match(pattern, i + 1)
    if found is None:
        return None
    return chr(int(found.group(1) or found.group(2), 16)), found.end()


def _literal(ch: str) -> str:
    """One character as a literal in a pattern or a class, read alike by PostgreSQL and Java: a control
    character as ``\\uHHHH``, other ASCII punctuation escaped, letters, digits and the rest as they are."""
    if ch.isalnum() or not ch.isascii() or ch == " ":
        return ch
    return f"\\u{ord(ch):04x}" if ord(ch) < 0x20 or ord(ch) == 0x7F else "\\" + ch


def _class(pattern: str, i: int) -> tuple[str, int]:
    """The ``[...]`` class starting at ``pattern[i]`` spelled without a case-insensitive flag: its sets
    (``\\d \\s \\w``) ASCII, and every character that folds together with one it holds added to it; and the
    index after it."""
    j = i + 1
    negate = pattern[j : j + 1] == "^"
    j += negate
    parts: list[str] = []
    ranges: list[tuple[str, str]] = []
    first = True
    while j < len(pattern) and (pattern[j] != "]" or first):
        first = False
        ch = pattern[j]
        if ch == "\\" and (hex_escape := _hex_escape(pattern, j)) is not None:
            # a range between two escapes (``[\\x41-\\x43]``) reads each end as its character
            low, j = hex_escape
            high = low
            if pattern[j : j + 1] == "-" and pattern[j + 1 : j + 2] not in ("]", ""):
                end = _hex_escape(pattern, j + 1) if pattern[j + 1] == "\\" else (pattern[j + 1], j + 2)
                if end is not None:
                    high, j = end
            parts.append(_literal(low) + (f"-{_literal(high)}" if high != low else ""))
            ranges.append((low, high))
            continue
        if ch == "\\" and j + 1 < len(pattern):
            nxt = pattern[j + 1]
            if nxt in _ASCII_SETS:
                parts.append(_ASCII_SETS[nxt])
                ranges += _SET_RANGES[nxt]
            else:
                parts.append(ch + nxt)
                if not nxt.isalnum():
                    ranges.append((nxt, nxt))
            j += 2
            continue
        if pattern[j + 1 : j + 2] == "-" and j + 2 < len(pattern) and pattern[j + 2] not in "]\\":
            parts.append(pattern[j : j + 3])
            ranges.append((ch, pattern[j + 2]))
            j += 3
            continue
        # Java reads ``[`` in a class as a nested class and ``&&`` as an intersection; escaped, both engines
        # read the character itself
        parts.append("\\" + ch if ch in "[&" else ch)
        ranges.append((ch, ch))
        j += 1
    body = "".join(parts)
    extras = _folded_extras(ranges)
    if body.endswith("-") and not body.endswith("\\-"):
        body = body[:-1] + extras + "-"  # a last literal ``-`` stays last (``[ab-]``)
    else:
        body += extras
    return f"[{'^' if negate else ''}{body}]", j + 1


def case_folded_regex(pattern: str, end: str = "$") -> str:
    """A pattern of the portable subset (docs/model-language.md) spelled to match case-sensitively as RE2
    matches it ignoring case, for PostgreSQL's ``~`` and Java's (Spark's) ``RLIKE``: each letter becomes the
    class of the letters whose case folds together with it (``k`` → ``[Kk\u212a]``, ``σ`` → ``[Σςσ]``), and
    a class gets those of its members (``[a-z]`` also holds ``K``, ``ſ`` and the Kelvin sign). ``.`` is any
    character but a newline (PostgreSQL's also matches a newline, Java's neither ``\\r`` nor ``\\u2028``),
    ``\\d \\s \\w`` (and ``\\D \\S \\W`` outside a class) are the ASCII sets and ``$`` is spelled ``end`` (Java's
    ``$`` also matches before a final newline). Everything else is copied; ``\\.`` and ``[.]`` stay a
    literal dot.

    Both engines' own case-insensitive modes pair a letter with its upper and lower case only (``σ`` never
    matched ``ς``), and Java's ``(?iu)`` pairs ``i`` with the Turkish ``ı`` and ``İ`` besides.
    """
    out: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and (hex_escape := _hex_escape(pattern, i)) is not None:
            ch, i = hex_escape
            orbit = _orbit(ch)
            out.append(f"[{orbit}]" if len(orbit) > 1 else _literal(ch))
            continue
        if ch == "\\" and i + 1 < len(pattern):
            nxt = pattern[i + 1]
            if nxt.lower() in _ASCII_SETS:
                word = _ASCII_SETS[nxt.lower()] + (
                    _folded_extras(_SET_RANGES["w"]) if nxt.lower() == "w" else ""
                )
                out.append(f"[{'^' if nxt.isupper() else ''}{word}]")
            else:
                out.append(ch + nxt)
            i += 2
        elif ch == "[":
            spelled, i = _class(pattern, i)
            out.append(spelled)
        else:
            orbit = _orbit(ch)
            out.append(f"[{orbit}]" if len(orbit) > 1 else "[^\n]" if ch == "." else end if ch == "$" else ch)
            i += 1
    return "".join(out)


class RegexI(FunctionElement[bool]):
    """Case-insensitive regular-expression search of the portable subset with RE2's reading: RE2 itself on
    SQLite (``leadscore_regexp``) and DuckDB; PostgreSQL's case-sensitive ``~`` and Spark's ``RLIKE`` with
    the pattern spelled by ``case_folded_regex``."""

    type = Boolean()
    inherit_cache = True
    name = "regex_i"

    def __init__(self, expr: ColumnElement[Any], pattern: str) -> None:
        super().__init__(
            expr,
            literal(pattern),
            literal(case_folded_regex(pattern)),
            literal(case_folded_regex(pattern, end="\\z")),
        )


@compiles(RegexI, "sqlite")
def _regex_sqlite(element: RegexI, compiler: Any, **kw: Any) -> str:
    value, pattern, _, _ = (compiler.process(c, **kw) for c in element.clauses)
    # leadscore_regexp is registered on every SQLite connection by the store
    return f"leadscore_regexp({pattern}, {value})"


@compiles(RegexI, "postgresql")
def _regex_pg(element: RegexI, compiler: Any, **kw: Any) -> str:
    value, _, pattern, _ = (compiler.process(c, **kw) for c in element.clauses)
    return f"({value} ~ {pattern})"


def double(value: float) -> ColumnElement[float]:
    """A float constant typed as double precision on every engine."""
    return literal(float(value), Float(precision=53))


# Decimals a score keeps (``Quantized``): a millionth of a point, far below the one or two decimals a
# screen shows and far above the float noise of adding points (ulps of 1e-14) or of PostgreSQL's
# fixed-point sums (``RuleSum``: under 5e-13 a term).
SCORE_DECIMALS = 6
_SCORE_UNIT = 10.0**SCORE_DECIMALS

Kept = TypeVar("Kept")


def kept(score: Kept) -> Kept:
    """A score (a float or a NumPy array of them, never negative) as ``Quantized`` keeps it: the same
    operations, so the same float, for what computes a score the query also computes
    (``learn.Scorecard.score_100``)."""
    return cast(Kept, (score * _SCORE_UNIT + 0.5) // 1.0 / _SCORE_UNIT)  # type: ignore[operator]


class Quantized(FunctionElement[float]):
    """A score (never negative) rounded half up to ``SCORE_DECIMALS`` decimals: ``floor(x * 10^6 + 0.5) /
    10^6``, the same float on every engine (the same IEEE operations, and the integer division of the
    rounded units is exact before its one correctly rounded division).

    Points that add up to a threshold in decimals add up to a few ulps on either side of it as floats,
    on one side on one engine and on the other side on another (0.8 + 32.8 + 26.4 is 59.99999999999999;
    five terms of 0.2 are 1.0 added in order and 0.9999999999990905 in PostgreSQL's fixed point), so a lead
    at a threshold would be an MQL on one engine and not on another, and a screen (which reads a number
    within a millionth of a shown unit as that unit: ``scoring.shown.cut``) would show 60.0 beside a gate
    that said no. Rounded, every engine gives the decimal, and what a screen shows is what a gate reads.
    """

    type = Float()
    inherit_cache = True
    name = "quantized"

    def __init__(self, value: ColumnElement[Any]) -> None:
        unit = double(_SCORE_UNIT)
        super().__init__(value * unit + double(0.5), unit)


@compiles(Quantized)
def _quantized(element: Quantized, compiler: Any, **kw: Any) -> str:
    shifted, unit = (compiler.process(c, **kw) for c in element.clauses)
    return f"(floor({shifted}) / {unit})"


@compiles(Quantized, "sqlite")
def _quantized_sqlite(element: Quantized, compiler: Any, **kw: Any) -> str:
    shifted, unit = (compiler.process(c, **kw) for c in element.clauses)
    # floor() needs SQLite's math functions, which not every build has; CAST truncates towards zero, which
    # is floor for a score (never negative: the floor stage)
    return f"(CAST({shifted} AS INTEGER) / {unit})"


# Half-lives after which an event's weight stops decreasing: 0.5 ** 1075 is below the smallest double,
# and PostgreSQL's ``power`` (as its ``*``) raises "value out of range: underflow" where SQLite, DuckDB and
# Spark give 0, so an event of 1970 under a 7-day half-life (any sender may date one so) failed every
# rescoring of its lead there. 2**-1000 times any rule's points is nothing at a score's six decimals (and a
# PostgreSQL sum's fixed point rounds it to 0), and times points of at least 2**-74 still a normal double
DECAY_HALF_LIVES = 1000


class HalfLifeDecay(FunctionElement[float]):
    """0.5 ** (age_ms / half_life_ms): the weight of an event ``age_ms`` old, at least
    0.5 ** ``DECAY_HALF_LIVES`` (on every engine alike)."""

    type = Float()
    inherit_cache = True
    name = "half_life_decay"


@compiles(HalfLifeDecay)
def _decay(element: HalfLifeDecay, compiler: Any, **kw: Any) -> str:
    age, half_life = (compiler.process(c, **kw) for c in element.clauses)
    # SQLite's two-argument min() is the least of its arguments
    return f"power(0.5, min(({age}) / {half_life}, {DECAY_HALF_LIVES}.0))"


@compiles(HalfLifeDecay, "postgresql")
def _decay_pg(element: HalfLifeDecay, compiler: Any, **kw: Any) -> str:
    age, half_life = (compiler.process(c, **kw) for c in element.clauses)
    exponent = f"CAST(({age}) AS DOUBLE PRECISION) / {half_life}"
    return f"power(CAST(0.5 AS DOUBLE PRECISION), LEAST({exponent}, CAST({DECAY_HALF_LIVES} AS DOUBLE PRECISION)))"


# Fixed-point unit of PostgreSQL's exact sums: 2^-40 (about 9.1e-13). A term is at most MAX_POINTS
# (1e6 < 2^20) in magnitude, so a scaled term stays below 2^60 and fits a BIGINT.
FIXED_POINT_SCALE = 2.0**40


class RuleSum(FunctionElement[float]):
    """A rule's points summed over the events it matches, ``sum(value) FILTER (WHERE match)``; NULL when
    none match.

    A score must be reproducible to the bit (history records changes), but a float sum depends on the
    order of its terms, and parallel workers' partial sums are added in an order that depends on how the
    rows were split. Whole-number terms (``exact``: no decay, whole points) add exactly in any order. Other
    terms (decayed points) are summed on PostgreSQL in fixed point: each rounded to a multiple of 2^-40,
    summed as BIGINT (exact, 128-bit accumulator) and scaled back once, so the result is the same on every
    plan, serial or parallel. Rounding costs at most 4.6e-13 a term; rounding is monotone, so decay still
    never raises a score.
    """

    type = Float()
    inherit_cache = True
    name = "rule_sum"
    # ``exact`` changes the SQL, so it is part of the statement cache key (a bound value would not be)
    _traverse_internals = [*FunctionElement._traverse_internals, ("exact", InternalTraversal.dp_boolean)]  # noqa: RUF012

    def __init__(self, value: ColumnElement[Any], match: ColumnElement[bool], exact: bool) -> None:
        self.exact = exact
        super().__init__(value, match)


@compiles(RuleSum)
def _rule_sum(element: RuleSum, compiler: Any, **kw: Any) -> str:
    value, match = (compiler.process(c, **kw) for c in element.clauses)
    return f"sum({value}) FILTER (WHERE {match})"


@compiles(RuleSum, "postgresql")
def _rule_sum_pg(element: RuleSum, compiler: Any, **kw: Any) -> str:
    value, match = (compiler.process(c, **kw) for c in element.clauses)
    if element.exact:
        return f"sum({value}) FILTER (WHERE {match})"
    scale = f"CAST({FIXED_POINT_SCALE!r} AS DOUBLE PRECISION)"
    scaled = f"CAST(({value}) * {scale} AS BIGINT)"
    return f"(CAST(sum({scaled}) FILTER (WHERE {match}) AS DOUBLE PRECISION) / {scale})"


class MatchCount(FunctionElement[int]):
    """How many rows match: ``count(*) FILTER (WHERE match)``.

    ``value`` is what the rule aggregates over the same rows (its points, or ``ts``), never NULL on a
    matching row. DuckDB counts it: ``count(CASE WHEN match THEN value END)`` is then the very expression
    the rule's ``sum``/``max`` reads, so DuckDB computes it once per row for both aggregates, the match
    tested only where cheaper tests passed. Counting a separate ``CASE WHEN match THEN 1 END`` makes
    DuckDB hoist the shared match into a column computed for every event (every ILIKE on every row).
    """

    type = BigInteger()
    inherit_cache = True
    name = "match_count"

    def __init__(self, match: ColumnElement[bool], value: ColumnElement[Any]) -> None:
        super().__init__(match, value)


@compiles(MatchCount)
def _match_count(element: MatchCount, compiler: Any, **kw: Any) -> str:
    match, _ = element.clauses
    return f"count(*) FILTER (WHERE {compiler.process(match, **kw)})"


class DrivingJoin(Join):
    """An inner join whose left side is read first, each row looking up its matches on the right.

    Scoring reads events per target: targets → identities → events through the (person_key, ts) index,
    already in target order for the GROUP BY. SQLite without planner statistics (no ANALYZE yet) may scan
    every event instead and sort them all for the GROUP BY; its CROSS JOIN is an inner join whose order the
    planner keeps. Other engines plan this join well on their own and get a plain JOIN.
    """

    inherit_cache = True

    def __init__(self, left: Any, right: Any, onclause: ColumnElement[bool]) -> None:
        super().__init__(left, right, onclause)


@compiles(DrivingJoin)
def _driving_join(element: DrivingJoin, compiler: Any, **kw: Any) -> str:
    return str(compiler.visit_join(element, **kw))


@compiles(DrivingJoin, "sqlite")
def _driving_join_sqlite(element: DrivingJoin, compiler: Any, from_linter: Any = None, **kw: Any) -> str:
    if from_linter is not None:
        # what visit_join records, so SQLAlchemy's cartesian-product check sees the join
        from_linter.edges.update(
            itertools.product(
                (f._de_clone() for f in element.left._from_objects),
                (f._de_clone() for f in element.right._from_objects),
            )
        )
    kw.pop("asfrom", None)
    assert element.onclause is not None  # DrivingJoin always has one
    left = element.left._compiler_dispatch(compiler, asfrom=True, from_linter=from_linter, **kw)
    right = element.right._compiler_dispatch(compiler, asfrom=True, from_linter=from_linter, **kw)
    on = element.onclause._compiler_dispatch(compiler, from_linter=from_linter, **kw)
    return f"{left} CROSS JOIN {right} ON {on}"


class CodePointOrder(FunctionElement[str]):
    """A text that sorts by code point on every engine, for tie-breaks that decide a number (the newest of
    two matches at the same millisecond is the one with the greater message id).

    PostgreSQL sorts text by the database's collation: an English one (a database created with the common
    en_US locale) puts ``q-a`` before ``Q-b``, ignoring case first, where SQLite (BINARY), DuckDB and Spark
    put ``Q-b`` first. ``COLLATE "C"`` sorts UTF-8 text by byte, which is code point order.
    """

    type = Text()
    inherit_cache = True
    name = "code_point_order"


@compiles(CodePointOrder)
def _code_point_order(element: CodePointOrder, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.clauses, **kw))


@compiles(CodePointOrder, "postgresql")
def _code_point_order_pg(element: CodePointOrder, compiler: Any, **kw: Any) -> str:
    return f'({compiler.process(element.clauses, **kw)} COLLATE "C")'


DAY_MS = 86_400_000


class DayNumber(FunctionElement[int]):
    """The UTC calendar day of an epoch-ms time, as a whole number of days since 1970 (times are >= 0)."""

    type = BigInteger()
    inherit_cache = True
    name = "day_number"


@compiles(DayNumber)
def _day_number(element: DayNumber, compiler: Any, **kw: Any) -> str:
    # BIGINT / BIGINT divides in integers on SQLite and PostgreSQL
    return f"(({compiler.process(element.clauses, **kw)}) / {DAY_MS})"
