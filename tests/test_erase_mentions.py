"""The scan for mentions of an erased person (``privacy.erase.mentions``) with hostile identifiers: pattern
characters of LIKE and of regular expressions, a backslash, letters beyond ASCII in other cases, a very
long identifier, hundreds of identifiers each a prefix of the next, a NUL. Every count below is worked out
by hand from the whole-word rule: an identifier, folded by ``fold_case`` as the text is, not preceded by a
word character or one of ``.@+-``, not followed by a word character or one of ``@+-``, nor by ``.`` and a
word character.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest

from leadscore.privacy.erase import mentions
from leadscore.store import Store
from leadscore.store.schema import events

LONG = "L" + "x" * 5_000
# 300 identifiers, each a prefix of the next (a browser's ids are whatever a write key sends)
PREFIXES = tuple("n-" + "7" * k for k in range(1, 301))
IDENTIFIERS = (
    "50%OFF",
    "a_b",
    "back\\slash",
    "dot.*star",
    "paren(1",
    "JÜRGEN",
    "İstanbul",
    LONG,
    "nul\x00id",
    *PREFIXES,
)

NOTES = [
    ("get 50%OFF today", True),  # 50%off between spaces
    ("the 50xoff deal", False),  # % is no wildcard
    ("50%off.com", False),  # followed by "." and a word character: a longer name
    ("it was 50%OFF.", True),  # "." then the end of the string: the end of a sentence
    ("axb", False),  # _ is no wildcard
    ("mail x@a_b", False),  # after @: part of an address
    ("dot.*star", True),
    ("dotxxstar", False),  # .* is no pattern
    ("see paren(1)", True),  # ")" ends a word
    ("paren1", False),
    ("Hallo JÜRGEN!", True),  # jürgen, in another case and escaped as \u00dc in SQLite's JSON text
    ("jürgenx", False),
    ("trip to İSTANBUL", True),  # fold_case: İ is i, as PostgreSQL's lower() reads it
    (f"x {LONG.lower()} y", True),
    (f"x {LONG[:-1]} y", False),  # one x short: no identifier
    ("call n-777 now", True),  # one of the prefixes
    ("n-" + "7" * 301, False),  # longer than the longest: its prefixes are followed by a 7
    ("n-7-x", False),  # followed by "-": part of a longer id
    ("back\\slash", False),  # a JSON text writes the backslash doubled: back\\slash
]
# event names are text as they are: a single backslash stays one
NAMES = [("clicked back\\slash", True), ("clicked backslash", False), ("50%off", True)]


def _event(n: int, **fields: Any) -> dict[str, Any]:
    return {"message_id": f"m{n}", "type": "track", "name": "E", "person_key": "u:bob", "user_id": "bob", "anonymous_id": None,
            "properties": {}, "context": {}, "ts": n, "received_ms": n, "source": "test", **fields}  # fmt: skip


def _rows(with_nul: bool) -> list[dict[str, Any]]:
    rows = [_event(n, properties={"note": note}) for n, (note, _) in enumerate(NOTES)]
    rows += [_event(100 + n, name=name) for n, (name, _) in enumerate(NAMES)]
    if with_nul:  # PostgreSQL's text holds no NUL: only SQLite can store one
        rows += [_event(200, anonymous_id="nul\x00id"), _event(201, anonymous_id="nul\x00idx")]
    return rows


def test_mentions_of_hostile_identifiers_are_counted_exactly(store: Store) -> None:
    sqlite = store.dialect == "sqlite"
    with store.begin() as conn:
        conn.execute(events.insert(), _rows(with_nul=sqlite))
    expected = {"events.properties": 8, "events.name": 2}  # the True rows of NOTES and NAMES
    if sqlite:
        expected["events.anonymous_id"] = 1
    with store.connect() as conn:
        assert mentions(conn, IDENTIFIERS) == expected
        # each alone finds its own rows only
        assert mentions(conn, ("İSTANBUL",)) == {"events.properties": 1}
        assert mentions(conn, ("n-777",)) == {"events.properties": 1}
        assert mentions(conn, ("back\\slash",)) == {"events.name": 1}
        assert mentions(conn, ("nul\x00id",)) == ({"events.anonymous_id": 1} if sqlite else {})


def test_the_scan_leaves_no_identifier_on_the_connection(sqlite_store: Store) -> None:
    """SQLite: the scan's function (it holds her identifiers) is dropped from the pooled connection after
    the scan: a later statement calling it fails instead of answering."""
    with sqlite_store.connect() as conn:
        assert mentions(conn, ("Ann",)) == {}
        driver = conn.connection.driver_connection
        assert driver is not None
        with pytest.raises(sqlite3.OperationalError):  # no such function (or, Python 3.11, none to call)
            driver.execute("SELECT leadscore_mentions('Ann')").fetchone()
