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
