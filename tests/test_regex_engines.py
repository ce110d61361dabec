"""A model's ``regex`` matches the same texts on SQLite (RE2), PostgreSQL (``~*`` with the pattern spelled by
``dialects.posix_regex``) and DuckDB (RE2): ``.`` is any character but a newline, ``\\d \\s \\w`` are ASCII,
and escaped or bracketed metacharacters stay literal (docs/model-language.md, operator ``regex``)."""

from __future__ import annotations

import pytest
from sqlalchemy import literal, select

from leadscore.compile import render_sql
from leadscore.compile.dialects import RegexI
from leadscore.store import Store

# (pattern, text, matches), each answer as RE2 reads the pattern
CASES = [
    ("a.b", "a-b", True),
    ("a.b", "a\nb", False),  # PostgreSQL's . matched the newline
    ("a[^x]b", "a\nb", True),  # a negated class still matches it
    (r"a\.b", "a-b", False),
    (r"a\.b", "a.b", True),
    ("a[.]b", "a-b", False),
    ("a[.]b", "a.b", True),
    ("[]x]", "]", True),
    ("[^]x]", "]", False),
    (r"^\w+$", "Straße", False),  # ß is a word character to PostgreSQL's locale
    (r"^\w+$", "Malmo_2", True),
    (r"\W", "Straße", True),
    (r"\W", "Malmo", False),
    (r"^[\w-]+$", "göteborg", False),
    (r"^[\w-]+$", "gote-borg", True),
    (r"^\d+$", "٣", False),  # ARABIC-INDIC DIGIT THREE
    (r"^\d+$", "2024", True),
    (r"a\sb", "a\tb", True),
    (r"a\sb", "a\u00a0b", False),  # a no-break space
    (r"a\Sb", "a-b", True),
    (r"\\", "a\\b", True),
    ("STRASSE", "strasse", True),
    # case ignored as RE2 ignores it: letters whose case folds together match each other, also in classes
    # and in \w (PostgreSQL's ~* paired a letter with its upper and lower case only; Java's (?iu) with
    # the Turkish dotted and dotless i too)
    ("k", "\u212a", True),  # KELVIN SIGN
    ("[a-z]", "\u212a", True),
    ("[^a-z]", "\u212a", False),
    (r"\w", "\u017f", True),  # LATIN SMALL LETTER LONG S
    (r"\W", "\u017f", False),
    ("s", "\u017f", True),
    ("σ", "ς", True),
    ("οδοσ", "ΟΔΟς", True),
    ("ς", "Σ", True),
    ("ǆ", "ǅ", True),  # dz digraph: lower case, title case
    ("μ", "µ", True),  # MICRO SIGN
    ("ß", "ẞ", True),
    ("å", "\u212b", True),  # ANGSTROM SIGN
    ("i", "ı", False),  # Turkish dotless i: no case of i in RE2's folding
    ("i", "İ", False),
    ("ı", "I", False),
    ("[^k]", "\u212a", False),
    ("a.b", "a\rb", True),  # only a newline is not "any character" (Java's . refused \r and \u2028)
    ("a.b", "a\u2028b", True),
    ("x$", "x\n", False),  # $ is the end of the text (Java's also matched before a final newline)
    ("x$", "x", True),
    ("[ab-]", "-", True),
    ("[ab-]", "B", True),
    ("[-a]", "A", True),
    (r"\x41", "a", True),  # a hex escape folds as the character it stands for
    (r"\x4a", "J", True),
    (r"\x41B", "ab", True),  # two hex digits (PostgreSQL read \x41B as U+041B)
    (r"[\x00-\x1f]", "F", False),
    (r"[\x41-\x43]", "b", True),
    (r"[\x{3c3}]", "Σ", True),
    (r"a\x2eb", "a-b", False),  # \x2e is a literal dot
]
IDS = [f"{i}-{p}" for i, (p, _, _) in enumerate(CASES)]


@pytest.mark.parametrize(("pattern", "text", "matches"), CASES, ids=IDS)
def test_regex_on_the_store(store: Store, pattern: str, text: str, matches: bool) -> None:
    with store.connect() as conn:
        got = conn.execute(select(RegexI(literal(text), pattern))).scalar_one()
    assert bool(got) is matches


@pytest.mark.parametrize(("pattern", "text", "matches"), CASES, ids=IDS)
def test_regex_on_duckdb(pattern: str, text: str, matches: bool) -> None:
    import duckdb

    sql = render_sql(select(RegexI(literal(text), pattern)), "duckdb")
    with duckdb.connect() as con:
        rows = con.execute(sql).fetchall()
    assert rows == [(matches,)]
