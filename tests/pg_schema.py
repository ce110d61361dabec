"""A PostgreSQL store in a schema of its own (search_path), dropped afterwards: parallel runs never collide."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text

from leadscore.store import Store

PG_URL = os.environ.get("LEADSCORE_TEST_POSTGRES_URL")


def schema_url(schema: str) -> str:
    assert PG_URL
    sep = "&" if "?" in PG_URL else "?"
    return f"{PG_URL}{sep}options=-csearch_path%3D{schema}"


@contextmanager
def pg_schema_store(prefix: str = "t") -> Iterator[Store]:
    """A migrated store in a fresh schema of LEADSCORE_TEST_POSTGRES_URL's database."""
    assert PG_URL, "LEADSCORE_TEST_POSTGRES_URL is not set"
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL.replace("postgresql://", "postgresql+psycopg://", 1))
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    store = Store.from_url(schema_url(schema))
    try:
        yield store
    finally:
        store.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
