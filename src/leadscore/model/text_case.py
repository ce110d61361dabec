"""Text as it is compared: one normal form (``normalise_text``) and case folding, one reading on every engine.

Normal form: a text may spell ``ä`` as one character (NFC: what a keyboard types) or as ``a`` and a
combining diaeresis U+0308 (NFD: a CSV exported on a Mac, a trait from some SDKs). Attribute values,
traits and event properties are kept in NFC (``ingest``), and a model's literals and list entries are
read in NFC (``model``), so a comparison in SQL stays a plain, indexed one. A value stored in another form
before ingest normalised it keeps that form; a model's literal is also compared with its NFD spelling
(``text_forms``) so such a value still matches, and importing or identifying it again stores it in NFC.

PostgreSQL's ``lower``, DuckDB's ``lower``/``ILIKE`` and RE2 lower-case each character by itself (Unicode's
simple mapping). Python's ``str.lower`` differs for two letters: ``İ`` (U+0130) becomes two characters
(``i`` and a combining dot), and ``Σ`` becomes ``ς`` at the end of a word. Rule values and SQLite's
``leadscore_lower`` fold with ``fold_case``, so ``İstanbul`` equals ``istanbul`` and ``ΟΔΟΣ`` equals
``οδοσ`` in the store as in the batch.
"""

from __future__ import annotations

import unicodedata
from typing import Any

import orjson

# the only characters whose str.lower() is not their simple lower-case mapping
_CONTEXTUAL = ("İ", "Σ")


def fold_case(text: str) -> str:
    """``text`` lower-cased character by character (``İ`` → ``i``, ``Σ`` → ``σ`` wherever it stands)."""
    if not any(ch in text for ch in _CONTEXTUAL):
        return text.lower()
    return "".join("i" if ch == "İ" else ch.lower() for ch in text)


def normalise_text(text: str) -> str:
    """``text`` in Unicode NFC (canonical composition: no letter or meaning changes, unlike NFKC's ``ﬁ``
    → ``fi``). ASCII and NFC texts are returned as they are (the same object, byte for byte). A NUL or a
    lone surrogate passes through unchanged: such values are refused where values are checked."""
    if text.isascii():
        return text
    return unicodedata.normalize("NFC", text)


def normalise_values(value: Any) -> Any:
    """``value`` with every text in it (nested in objects and arrays, not their keys) in NFC
    (``normalise_text``); the value itself when nothing changes. Nearly every message's properties are
    ASCII: one ``orjson.dumps`` (its UTF-8 is ASCII only when every text is) decides that in a fraction of
    the walk's time."""
    kind = value.__class__
    if kind is str:
        return normalise_text(value)
    if kind is not dict and kind is not list:
        return value
    try:
        ascii_only = orjson.dumps(value).isascii()
    except TypeError:  # an integer beyond 64 bits, nesting too deep: walked
        ascii_only = False
    return value if ascii_only else _walk(value)


def _walk(value: Any) -> Any:
    kind = value.__class__
    if kind is str:
        return normalise_text(value)
    if kind is dict:
        out = {k: _walk(v) for k, v in value.items()}
        return value if all(out[k] is v for k, v in value.items()) else out
    if kind is list:
        items = [_walk(v) for v in value]
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    return value


def text_forms(text: str) -> tuple[str, ...]:
    """The spellings a model's (NFC) literal is compared with: itself and, where it differs, its NFD,
    which values stored before ingest normalised them may still have."""
    if text.isascii():
        return (text,)
    decomposed = unicodedata.normalize("NFD", text)
    return (text,) if decomposed == text else (text, decomposed)
