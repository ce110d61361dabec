"""Shared fixtures: a fresh store on SQLite and, when LEADSCORE_TEST_POSTGRES_URL is set, on PostgreSQL.

PostgreSQL tests each get their own schema (search_path), so parallel runs never collide.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from leadscore.store import Store
from pg_schema import PG_URL, pg_schema_store

ROOT = Path(__file__).resolve().parent.parent
# the tests read the evaluation's and the review's numbers on the first request on their small stores: the
# page waits for them as long as it takes there (a deployment answers within 0.1 s and shows them when
# done; tests/test_web_remembered.py checks that with a short wait). Under the 30 s of the tests' client: on a loaded
# machine (load 14 on 2 cores) the evaluation's worker took over 10 s and the page answered "pending"
os.environ.setdefault("LEADSCORE_REPORT_WAIT_S", "25")
PG_SKIP = "PostgreSQL not configured: set LEADSCORE_TEST_POSTGRES_URL (e.g. postgresql://postgres@127.0.0.1:5432/test)"


def _pg_store() -> Iterator[Store]:
    with pg_schema_store("t") as store:
        yield store


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    store = Store.from_url(str(tmp_path / "leadscore.db"))
    yield store
    store.dispose()


@pytest.fixture
def pg_store() -> Iterator[Store]:
    if not PG_URL:
        pytest.skip(PG_SKIP)
    yield from _pg_store()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A fresh, migrated store on each engine."""
    if request.param == "sqlite":
        s = Store.from_url(str(tmp_path / "leadscore.db"))
        yield s
        s.dispose()
    else:
        if not PG_URL:
            pytest.skip(PG_SKIP)
        yield from _pg_store()


@pytest.fixture
def small_history_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    """History's points budget small enough for a test's few events: a lead's points in one replay at most
    max(2, 150 / her events) (``scoring.history.thinned``)."""
    from leadscore.scoring import history

    monkeypatch.setattr(history, "POINT_EVENTS", 150)
    monkeypatch.setattr(history, "FEW_POINTS", 2)
