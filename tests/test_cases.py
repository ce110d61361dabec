"""Hand-computed scoring cases (tests/cases/*.yaml), each run on SQLite and PostgreSQL.

Besides each case's own expectations, every lead's ledger must sum to its score, and its explanation
must add up (``case_runner.check_case``: the events under each line to the line, the lines to the score).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from case_runner import ROUNDED, Case, check_case, load_case, run_case
from leadscore.ingest.segment import parse_time
from leadscore.scoring.run import score_points, score_totals
from leadscore.store import Store

CASES_DIR = Path(__file__).resolve().parent / "cases"
CASES = [load_case(path) for path in sorted(CASES_DIR.glob("*.yaml"))]


def test_there_are_cases() -> None:
    assert len(CASES) >= 12


@pytest.mark.parametrize("case", CASES, ids=[c.name.removesuffix(".yaml") for c in CASES])
def test_case(store: Store, case: Case) -> None:
    problems = check_case(store, case)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("case", CASES, ids=[c.name.removesuffix(".yaml") for c in CASES])
def test_ledger_sums_to_score(store: Store, case: Case) -> None:
    ledgers = run_case(store, case)
    assert ledgers
    for user_id, ledger in ledgers.items():
        # the lines are not rounded, the score is kept to a millionth
        assert ledger.total == pytest.approx(ledger.score, rel=1e-9, abs=ROUNDED), user_id


@pytest.mark.parametrize("case", CASES, ids=[c.name.removesuffix(".yaml") for c in CASES])
def test_totals_query_gives_the_ledgers_totals(store: Store, case: Case) -> None:
    """``score_totals`` (the query without the explanation columns, which backtests replay) gives every
    lead the totals of the ledger query, whose ledgers ``test_case`` checks against the hand computation."""
    ledgers = {ledger.lead_id: ledger for ledger in run_case(store, case).values()}
    with store.connect() as conn:
        totals = list(
            score_totals(conn, case.model, store.sources(), [(lead, case.as_of) for lead in sorted(ledgers)])
        )
    assert sorted(t.lead_id for t in totals) == sorted(ledgers)
    for t in totals:
        want = ledgers[t.lead_id]
        assert t.lines == ()
        assert (t.as_of, t.grade, t.level, t.band) == (want.as_of, want.grade, want.level, want.band)
        for name in ("score", "fit_score", "engagement_score"):
            assert getattr(t, name) == pytest.approx(getattr(want, name), rel=1e-12, abs=1e-12), name


def test_a_burst_whose_heavy_match_falls_between_two_as_of_times(store: Store) -> None:
    """tests/cases/burst-as-of.yaml's leads scored at several as-of times in one statement (bursts are
    found once per person, whatever the number of targets), hand-computed as in the case's comments:
    fay's heavy match f4 (12:00:05) is after the first as-of and before the second; gil's g4 (11:00:05)
    after 10:59:35; hal's h4 (11:01:00) exactly at the second as-of (ts <= as-of counts)."""
    case = next(c for c in CASES if c.name == "burst-as-of.yaml")
    ledgers = run_case(store, case)
    lead = {user: ledger.lead_id for user, ledger in ledgers.items()}
    at = parse_time
    want = {
        ("fay", at("2024-06-01T12:00:00Z", "a")): 6.5,  # f1-f3 count; team: fay and gil (g6)
        ("fay", at("2024-06-01T12:00:20Z", "a")): 0.0,  # f1-f5 a burst; team: gil alone
        ("gil", at("2024-06-01T10:59:35Z", "a")): 1.5,  # g1-g3 count; team: gil alone
        ("gil", at("2024-06-01T12:00:00Z", "a")): 5.5,
        ("hal", at("2024-06-01T11:00:59Z", "a")): 1.5,  # h1-h3 count; team: hal alone
        ("hal", at("2024-06-01T11:01:00Z", "a")): 0.0,  # h1-h4 a burst
    }
    pairs = [(lead[user], as_of) for user, as_of in want]
    names = {ledger_id: user for user, ledger_id in lead.items()}
    with store.connect() as conn:
        scored = {
            (names[lg.lead_id], lg.as_of): lg.score
            for lg in score_points(conn, case.model, store.sources(), pairs)
        }
        totals = {
            (names[t.lead_id], t.as_of): t.score
            for t in score_totals(conn, case.model, store.sources(), pairs)
        }
    assert scored == want
    assert totals == want


def test_a_tie_goes_to_the_greater_message_id_by_code_point_whatever_the_collation(store: Store) -> None:
    """tests/cases/ties-by-code-point.yaml on a PostgreSQL store whose message ids sort by an English
    collation, as in a database created with the common en_US locale (ICU's ``en`` here): the tie still
    goes to q-a and m1, the greater by code point, as on SQLite, DuckDB and Spark."""
    if store.dialect == "postgresql":
        with store.begin() as conn:
            conn.execute(
                text('ALTER TABLE events ALTER COLUMN message_id TYPE varchar(300) COLLATE "en-x-icu"')
            )
    case = next(c for c in CASES if c.name == "ties-by-code-point.yaml")
    problems = check_case(store, case)
    assert not problems, "\n".join(problems)
