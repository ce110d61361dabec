"""A model's ``regex`` searched in time linear in the text: RE2 (``google-re2``), not Python ``re``.

Python's backtracking ``re`` takes exponential time on ``(a|aa)+$`` and polynomial time on ordinary
patterns: ``a[a-z]*b`` over a 32 KB property value (one tracked event) took 10 s, ``a.*b.*c`` over 8,000
characters 163 s, each time the lead is rescored. RE2 reads the documented subset as PostgreSQL's ``~*``
does (``\\d`` and ``\\w`` are ASCII, ``$`` is the end of the text) and refuses what is outside it
(back-references, look-around, a repetition count over 1,000). Patterns without repetition stay on
Python's ``re`` (linear there, and cheaper a call); RE2 costs 1.6–4.4 µs a call (pyarrow's kernel, tried
first, 13–40 µs).
"""

from __future__ import annotations

import importlib
import re
from functools import lru_cache
from typing import Any

CACHED_TEXT = 256  # texts up to this length keep their answer (titles, paths, URLs repeat)
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
    linear in the text there, and several times cheaper a call than RE2; None otherwise."""
    if not pattern.isascii():
        return None
    try:
        paths = _paths(_PARSER.parse(pattern, 0).data)
    except re.error:
        return None
    return re.compile(pattern, re.IGNORECASE) if paths is not None else None


@lru_cache(maxsize=512)
def _compiled(pattern: str) -> Any:
    """RE2's program for ``pattern``, case-insensitive; ``re2.error`` where RE2 refuses it."""
    import re2

    options = re2.Options()
    options.case_sensitive = False
    options.log_errors = False  # a refused pattern is reported by ``problem``, not on stderr
    return re2.compile(pattern, options)


@lru_cache(maxsize=16384)
def _search_short(pattern: str, text: str) -> bool:
    return _re2_search(pattern, text)


def _re2_search(pattern: str, text: str) -> bool:
    try:
        return _compiled(pattern).search(text) is not None
    except UnicodeEncodeError:  # a lone surrogate (no UTF-8 store holds one): searched as "?"
        return _compiled(pattern).search(text.encode("utf-8", "replace").decode()) is not None


def search(pattern: str, text: str) -> bool:
    """Whether ``pattern`` matches somewhere in ``text``, ignoring case."""
    quick = _backtracking(pattern)
    # on ASCII text without a final newline (where Python's $ also matches) both engines agree
    if quick is not None and text.isascii() and not text.endswith("\n"):
        return quick.search(text) is not None
    if len(text) <= CACHED_TEXT:
        return _search_short(pattern, text)
    return _re2_search(pattern, text)


def problem(pattern: str) -> str | None:
    """Why RE2 refuses ``pattern`` (``invalid perl operator: (?=``), or None."""
    if _backtracking(pattern) is not None:
        return None  # literals, classes, anchors and groups only: RE2 reads them
    import re2

    try:
        _compiled(pattern)
    except re2.error as exc:
        detail = exc.args[0] if exc.args else exc
        return detail.decode("utf-8", "replace") if isinstance(detail, bytes) else str(detail)
    return None
