"""Case folding for text comparisons, one reading on every engine.

PostgreSQL's ``lower``, DuckDB's ``lower``/``ILIKE`` and RE2 lower-case each character by itself (Unicode's
simple mapping). Python's ``str.lower`` differs for two letters: ``İ`` (U+0130) becomes two characters
(``i`` and a combining dot), and ``Σ`` becomes ``ς`` at the end of a word. Rule values and SQLite's
``leadscore_lower`` fold with ``fold_case``, so ``İstanbul`` equals ``istanbul`` and ``ΟΔΟΣ`` equals
``οδοσ`` in the store as in the batch.
"""

from __future__ import annotations

# the only characters whose str.lower() is not their simple lower-case mapping
_CONTEXTUAL = ("İ", "Σ")


def fold_case(text: str) -> str:
    """``text`` lower-cased character by character (``İ`` → ``i``, ``Σ`` → ``σ`` wherever it stands)."""
    if not any(ch in text for ch in _CONTEXTUAL):
        return text.lower()
    return "".join("i" if ch == "İ" else ch.lower() for ch in text)
