"""Hand-computed scoring cases (tests/cases/*.yaml), each run on SQLite and PostgreSQL.

Besides each case's own expectations, every lead's ledger must sum to its score, and its explanation
must add up (``case_runner.check_case``: the events under each line to the line, the lines to the score).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from case_runner import Case, check_case, load_case, run_case
from leadscore.scoring.run import score_totals
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
        assert ledger.total == pytest.approx(ledger.score, rel=1e-9, abs=1e-9), user_id


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
