"""The characters of a name: what an attribute name keeps (``ingest.attributes.canonical``) and what a
model's attribute or property name may hold (``conditions.is_field_name``).

ASCII letters and digits, and every letter, mark and digit beyond ASCII (Unicode categories L, M and N:
``ß``, ``名``, the vowel signs of Devanagari, Arabic-Indic digits). Python's ``\\w`` leaves out the marks
(``नाम`` is a letter, a mark and a letter) and reads ``_``, so the test is by category.
"""

from __future__ import annotations

import unicodedata

_ASCII_NAME = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")


def is_name_char(ch: str) -> bool:
    """A letter or digit (ASCII), or a letter, mark or digit beyond ASCII."""
    if ch.isascii():
        return ch in _ASCII_NAME
    return unicodedata.category(ch)[0] in "LMN"


FIELD_NAME_WORDS = "letters, digits, _ and -, dot-separated for nesting"
MAX_FIELD_PARTS = 6
MAX_FIELD_PART = 100


def is_field_name(text: object) -> bool:
    """A model's attribute or property name: 1 to 6 dot-separated parts (``account.größe``), each of 1 to
    100 letters, digits (``is_name_char``), ``_`` or ``-``: nothing a JSON path, a PostgreSQL array
    literal or a Spark schema would read as syntax (quotes, dots, commas, braces, backticks, spaces)."""
    if not isinstance(text, str):
        return False
    parts = text.split(".")
    return len(parts) <= MAX_FIELD_PARTS and all(
        0 < len(part) <= MAX_FIELD_PART and all(ch in "_-" or is_name_char(ch) for ch in part)
        for part in parts
    )
