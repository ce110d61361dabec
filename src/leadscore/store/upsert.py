"""INSERT ... ON CONFLICT for SQLite and PostgreSQL (the two share the syntax, not the SQLAlchemy construct)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite


def dialect_insert(conn: Connection, table: Table) -> Any:
    """``INSERT`` with the ``ON CONFLICT`` clauses of the connection's dialect."""
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


@lru_cache(maxsize=64)
def insert_ignore_statement(dialect: str, table: Table, keys: tuple[str, ...]) -> Any:
    """Built once per (dialect, table, keys): SQLAlchemy then finds its compiled form by a memoised key."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(table).on_conflict_do_nothing(index_elements=list(keys)).returning(table.c[keys[0]])


def insert_ignore(conn: Connection, table: Table, rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> int:
    """Insert rows, skipping those whose ``keys`` already exist; returns how many were inserted."""
    if not rows:
        return 0
    result = conn.execute(insert_ignore_statement(conn.dialect.name, table, tuple(keys)), list(rows))
    return len(result.fetchall())


def upsert(conn: Connection, table: Table, rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> None:
    """Insert rows, replacing the non-key columns of rows whose ``keys`` exist."""
    if not rows:
        return
    stmt = dialect_insert(conn, table)
    update = {c: stmt.excluded[c] for c in rows[0] if c not in keys}
    stmt = (
        stmt.on_conflict_do_update(index_elements=list(keys), set_=update)
        if update
        else stmt.on_conflict_do_nothing()
    )
    conn.execute(stmt, list(rows))
