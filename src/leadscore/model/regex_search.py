"""A model's ``regex`` searched in time linear in the text: RE2 (pyarrow's compute kernel), not Python ``re``.

Python's backtracking ``re`` takes exponential time on ``(a|aa)+$`` and polynomial time on ordinary
patterns: ``a[a-z]*b`` over a 32 KB property value (one tracked event) took 10 s, ``a.*b.*c`` over 8,000
characters 163 s, each time the lead is rescored. RE2 reads the documented subset as PostgreSQL's ``~*``
does (``\\d`` and ``\\w`` are ASCII, ``$`` is the end of the text) and refuses what is outside it
(back-references, look-around, a repetition count over 1,000). pyarrow is imported on first use: the CLI
starts without it."""

from __future__ import annotations

import importlib
import re
from functools import lru_cache
from typing import Any

CACHED_TEXT = 256  # texts up to this length keep their answer (titles, paths, URLs repeat)
PROBLEM_PREFIX = "Invalid regular expression: "
MOST_PATHS = 64  # ways a repetition-free pattern may match at one position and still go to Python's ``re``
_PARSER: Any = importlib.import_module("re._parser")
_PLAIN = frozenset({"LITERAL", "NOT_LITERAL", "ANY"})
_PLAIN_IN_CLASS = frozenset({"LITERAL", "RANGE", "NEGATE"})  # no \d \w \s: Python's are wider than RE2's
_ANCHORS = frozenset({"AT_BEGINNING", "AT_END"})


def _paths(items: Any) -> int | None:
    """How many ways a backtracking engine tries the items at one position; None for a repetition, a class
    shorthand or anything else whose cost is not that count times the pattern's length."""
    total = 1
    for op, arg in items:
        name = str(op)
        if name in _PLAIN or (name == "AT" and str(arg) in _ANCHORS):
            continue
        if name == "IN" and all(str(o) in _PLAIN_IN_CLASS for o, _ in arg):
            continue
        if name == "SUBPATTERN":
            inner = _paths(arg[3])
        elif name == "BRANCH":
            ways = [_paths(alternative) for alternative in arg[1]]
            inner = None if None in ways else sum(w for w in ways if w is not None)
        else:
            return None
        if inner is None or total * inner > MOST_PATHS:
            return None
        total *= inner
    return total


@lru_cache(maxsize=512)
def _backtracking(pattern: str) -> re.Pattern[str] | None:
    """Python's ``re`` for an ASCII pattern without repetition and with few alternatives (``market|growth``):
    linear in the text there, and 50 times cheaper per call than RE2 through pyarrow; None otherwise."""
    if not pattern.isascii():
        return None
    try:
        paths = _paths(_PARSER.parse(pattern, 0).data)
    except re.error:
        return None
    return re.compile(pattern, re.IGNORECASE) if paths is not None else None


@lru_cache(maxsize=1)
def _kernel() -> tuple[Any, Any, Any]:
    import pyarrow as pa
    import pyarrow.compute as pc

    return pa, pc, pc.get_function("match_substring_regex")


@lru_cache(maxsize=512)
def _options(pattern: str) -> Any:
    _pa, pc, _search = _kernel()
    return pc.MatchSubstringOptions(pattern, ignore_case=True)


def _search(pattern: str, text: str) -> bool:
    pa, _pc, search = _kernel()
    return bool(search.call([pa.scalar(text, pa.string())], _options(pattern)).as_py())


@lru_cache(maxsize=16384)
def _search_short(pattern: str, text: str) -> bool:
    return _search(pattern, text)


def search(pattern: str, text: str) -> bool:
    """Whether ``pattern`` matches somewhere in ``text``, ignoring case."""
    quick = _backtracking(pattern)
    # on ASCII text without a final newline (where Python's $ also matches) both engines agree
    if quick is not None and text.isascii() and not text.endswith("\n"):
        return quick.search(text) is not None
    if len(text) <= CACHED_TEXT:
        return _search_short(pattern, text)
    return _search(pattern, text)


def problem(pattern: str) -> str | None:
    """Why RE2 refuses ``pattern`` (``invalid perl operator: (?=``), or None."""
    if _backtracking(pattern) is not None:
        return None  # literals, classes, anchors and groups only: RE2 reads them (pyarrow is not loaded)
    pa, _pc, kernel = _kernel()
    try:
        kernel.call([pa.scalar("", pa.string())], _options(pattern))
    except pa.ArrowInvalid as exc:
        return str(exc).removeprefix(PROBLEM_PREFIX)
    return None
