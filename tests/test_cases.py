"""Hand-computed scoring cases (tests/cases/*.yaml), each run on SQLite and PostgreSQL.

Besides each case's own expectations, every lead's ledger must sum to its score, and its explanation
must add up (``case_runner.check_case``: the events under each line to the line, the lines to the score).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from case_runner import Case, check_case, load_case, run_case
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
