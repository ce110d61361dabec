"""Plain multi-row INSERTs for the real-time path: rows go to the driver as tuples.

``conn.execute(table.insert(), dicts)`` runs every row through SQLAlchemy's parameter processing (a
few microseconds a row), which the processor pays for each ledger line and history row of every batch.
The tables written here hold plain numbers and text (no JSON, no types to convert), so the driver can
take the values as they are. One statement text per (dialect, table, columns), rendered once.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Table


@lru_cache(maxsize=64)
def _statement(dialect: str, table: str, columns: tuple[str, ...]) -> str:
    mark = "%s" if dialect == "postgresql" else "?"
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join([mark] * len(columns))})"


def insert_rows(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert ``rows`` (dicts with the same keys, columns of ``table``) in one executemany."""
    if not rows:
        return
    columns = tuple(rows[0])
    unknown = set(columns) - set(table.c.keys())
    if unknown:
        raise ValueError(f"{table.name} has no column {', '.join(sorted(unknown))}")
    sql = _statement(conn.dialect.name, table.name, columns)
    conn.exec_driver_sql(sql, [tuple(row[c] for c in columns) for row in rows])
