"""Shared fixtures: a fresh store on SQLite and, when LEADSCORE_TEST_POSTGRES_URL is set, on PostgreSQL.

PostgreSQL tests each get their own schema (search_path), so parallel runs never collide.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from leadscore.store import Store

ROOT = Path(__file__).resolve().parent.parent
PG_URL = os.environ.get("LEADSCORE_TEST_POSTGRES_URL")
PG_SKIP = "PostgreSQL not configured: set LEADSCORE_TEST_POSTGRES_URL (e.g. postgresql://postgres@127.0.0.1:5432/test)"


def _pg_store() -> Iterator[Store]:
    assert PG_URL
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL.replace("postgresql://", "postgresql+psycopg://", 1))
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in PG_URL else "?"
    store = Store.from_url(f"{PG_URL}{sep}options=-csearch_path%3D{schema}")
    try:
        yield store
    finally:
        store.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


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
