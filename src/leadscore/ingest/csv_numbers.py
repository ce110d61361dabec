"""Numbers in CSV cells, in the spellings spreadsheets export, decided per column.

``9.83E-05``, ``1,5``, ``1.000.000``, ``1,000,000``, ``1.234,5``, ``1'000``, ``1 000`` (no-break space) are
numbers. Whether ``.`` or ``,`` is the decimal mark is decided once for a whole column (or declared): a
value that only one convention can read (``1,5``, ``1.000.000``, ``9.83E-05``) settles it; ``1,000`` and
``1.000`` fit both and are reported as ambiguous when nothing in the column settles it. A column is
numeric when more than half of its non-blank values are numbers; its other values are reported, never
stored as text. A value with a leading zero (``02134``, ``0104``) makes the column a code column (zip
codes, ids): text. The rules are spelled out in docs/ingest.md.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

Mark = Literal[".", ","]
MARKS: tuple[Mark, Mark] = (".", ",")
GROUP_MARKS = {".": (",", "'", "\u00a0", "\u202f"), ",": (".", "'", "\u00a0", "\u202f")}
MAX_DIGITS = 30  # more digits than any quantity a lead has: refused before int() or float() sees them
INT_RANGE = 2**63  # what BIGINT and JSON integers on every store hold
_CODE = re.compile(r"^[+-]?0\d+$", re.ASCII)  # a leading zero: an id or a zip code, not a quantity
_SHAPE = re.compile(r"^[+-]?[\d.,'\u00a0\u202f]+(?:[eE][+-]?\d+)?$", re.ASCII)  # ASCII digits only


class NumberProblem(ValueError):
    """A cell of a numeric column that cannot be stored as a number; the message says why."""


def read(text: str, decimal: Mark) -> int | float | None:
    """``text`` as a number when ``decimal`` is the decimal mark, else None (not a number that way)."""
    if not _SHAPE.match(text) or _CODE.match(text):
        return None
    for group in ("", *GROUP_MARKS[decimal]):
        found = _pattern(decimal, group).match(text)
        if found:
            return _value(
                found.group("sign"), found.group("int"), group, found.group("frac"), found.group("exp")
            )
    return None


def _pattern(decimal: Mark, group: str) -> re.Pattern[str]:
    return _PATTERNS[(decimal, group)]


def _compile(decimal: str, group: str) -> re.Pattern[str]:
    d = re.escape(decimal)
    if not group:  # ungrouped: the only spelling that takes an exponent
        integer = r"(?P<int>0|[1-9]\d*)"
        return re.compile(
            rf"^(?P<sign>[+-]?){integer}(?:{d}(?P<frac>\d+))?(?:[eE](?P<exp>[+-]?\d+))?$", re.ASCII
        )
    g = re.escape(group)
    integer = rf"(?P<int>[1-9]\d{{0,2}}(?:{g}\d{{3}})+)"
    return re.compile(rf"^(?P<sign>[+-]?){integer}(?:{d}(?P<frac>\d+))?(?P<exp>)$", re.ASCII)


_PATTERNS = {(d, g): _compile(d, g) for d in MARKS for g in ("", *GROUP_MARKS[d])}


def _value(sign: str, integer: str, group: str, frac: str | None, exp: str | None) -> int | float:
    digits = integer.replace(group, "") if group else integer
    if len(digits) + len(frac or "") > MAX_DIGITS or (exp and len(exp.lstrip("+-")) > 4):
        raise NumberProblem("has too many digits to be stored as a number")
    if frac is None and not exp:
        number = int(sign + digits)
        if not -INT_RANGE <= number < INT_RANGE:
            raise NumberProblem("is outside the 64-bit integer range")
        return number
    value = float(f"{sign}{digits}.{frac or '0'}e{exp or '0'}")
    if not math.isfinite(value):
        raise NumberProblem("is too large to be stored as a number")
    return value


@dataclass
class ColumnProfile:
    """What a column's values look like, gathered in a first pass over the file."""

    values: int = 0  # non-blank
    numbers: int = 0  # readable with at least one decimal mark
    codes: int = 0  # digits with a leading zero
    settled: Counter[str] = field(default_factory=Counter)  # decimal mark → values only it can read
    example: dict[str, tuple[int, str]] = field(default_factory=dict)  # mark → (row, value) that shows it

    def add(self, row: int, text: str) -> None:
        self.values += 1
        if _CODE.match(text):
            self.codes += 1
            return
        try:
            readings = {mark: read(text, mark) for mark in MARKS}
        except NumberProblem:
            self.numbers += 1  # a number, only too big: reported when the row is read
            return
        fits = [mark for mark, value in readings.items() if value is not None]
        if fits:
            self.numbers += 1
        if len(fits) == 1:
            self.settled[fits[0]] += 1
            self.example.setdefault(fits[0], (row, text))


@dataclass(frozen=True)
class ColumnFormat:
    """How a column's cells are read: as numbers (with this decimal mark, None: undecided) or as text."""

    numeric: bool
    decimal: Mark | None = None
    why: str = ""  # how the decimal mark was decided, for problems

    @classmethod
    def decide(cls, profile: ColumnProfile, declared: Mark | None = None) -> ColumnFormat:
        if profile.codes or profile.numbers * 2 <= profile.values:
            return cls(numeric=False)
        if declared is not None:
            return cls(True, declared, f"the decimal mark was declared as {declared!r}")
        if not profile.settled:
            return cls(True, None, "no value in the column settles whether '.' or ',' is the decimal mark")
        # the mark most values settle; a tie goes to '.', what most exports use
        mark: Mark = max(MARKS, key=lambda m: (profile.settled[m], m == "."))
        row, text = profile.example[mark]
        return cls(True, mark, f"the column uses {mark!r} as the decimal mark (row {row}: {text!r})")

    def convert(self, text: str) -> int | float:
        """The cell as a number; NumberProblem says why it is not one."""
        if not self.numeric:
            raise ValueError("not a numeric column")
        try:
            readings = {mark: read(text, mark) for mark in MARKS}
        except NumberProblem as exc:  # a number only too big: say which cell's value
            raise NumberProblem(f"{text!r} {exc}") from None
        if self.decimal is not None:
            value = readings[self.decimal]
            if value is not None:
                return value
            other = readings["," if self.decimal == "." else "."]
            if other is not None:
                raise NumberProblem(f"{text!r} is only a number with the other decimal mark; {self.why}")
            raise NumberProblem(f"{text!r} is not a number, and the column holds numbers")
        fits = {value for value in readings.values() if value is not None}
        if len(fits) == 1:
            return fits.pop()
        if not fits:
            raise NumberProblem(f"{text!r} is not a number, and the column holds numbers")
        dot, comma = readings["."], readings[","]
        raise NumberProblem(
            f"{text!r} is ambiguous: {dot!r} with '.' as the decimal mark, {comma!r} with ','; {self.why} "
            "(declare it: --decimal . or --decimal ,)"
        )
